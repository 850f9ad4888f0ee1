"""Property tests (hypothesis) of the container's building blocks: varints, index packing, header round trips."""
import binascii

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import container
from engine.container import CmbHeader
from engine.errors import CmbFormatError

SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(st.integers(min_value=0, max_value=(1 << 70) - 1))
def test_varint_round_trip(v):
    out = bytearray()
    container._put_varint(out, v)
    r = container._Reader(bytes(out))
    assert r.varint("v") == v and r.pos == len(out)
    assert len(out) == max(1, -(-v.bit_length() // 7))
    assert container.varint_fits(v)


@SETTINGS
@given(st.integers(min_value=1 << 70, max_value=1 << 200))
def test_varints_the_reader_refuses_are_not_written(v):
    out = bytearray()
    container._put_varint(out, v)
    with pytest.raises(CmbFormatError, match="too long"):
        container._Reader(bytes(out)).varint("seed")
    assert not container.varint_fits(v)


@SETTINGS
@given(st.integers(1, 24), st.data())
def test_index_packing_round_trip(bits, data):
    n = data.draw(st.integers(0, 300))
    idx = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=n, max_size=n)), dtype=np.int64)
    packed = container.pack_indices(idx, bits)
    assert len(packed) == (n * bits + 7) // 8
    assert np.array_equal(container.unpack_indices(packed, n, bits), idx)
    # the reference definition: bit k of index i is bit i*bits+k of the stream, LSB first
    stream = np.unpackbits(np.frombuffer(packed, np.uint8), bitorder="little")
    for i in range(min(n, 5)):
        assert sum(int(stream[i * bits + k]) << k for k in range(bits)) == idx[i]


@SETTINGS
@given(st.binary(max_size=64), st.integers(1, 24), st.integers(0, 100))
def test_unpacking_any_bytes_matches_the_bitwise_definition(raw, bits, n):
    n = min(n, len(raw) * 8 // bits)
    got = container.unpack_indices(raw, n, bits)
    stream = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little")
    want = [sum(int(stream[i * bits + k]) << k for k in range(bits)) for i in range(n)]
    assert got.tolist() == want


seeds = st.integers(0, (1 << 63) - 1)
pid = st.binary(min_size=3, max_size=3)
kappa = st.integers(1, 24)


@st.composite
def image_headers(draw):
    return CmbHeader("image", (draw(st.integers(1, 5000)), draw(st.integers(1, 5000)), draw(st.integers(1, 4))),
                     draw(pid), draw(seeds), draw(kappa), draw(st.integers(1, 50)))


@st.composite
def audio_headers(draw):
    return CmbHeader("audio", (draw(st.integers(1, 10 ** 7)), draw(st.integers(1, 64)),
                               draw(st.integers(1, 1_536_000))), draw(pid), draw(seeds), draw(kappa),
                     draw(st.integers(1, 20)), draw(st.integers(1, 20)))


@st.composite
def patch_headers(draw):
    patch = draw(st.sampled_from([8, 16, 64]))
    hh, ww = draw(st.integers(1, 200)), draw(st.integers(1, 200))
    c = draw(st.integers(1, 4))
    units = container.patch_units(hh, ww, patch)
    ncls = draw(st.integers(1, 6))
    blocks = tuple(sorted(draw(st.sets(st.integers(1, 40), min_size=ncls, max_size=ncls))))
    cls = tuple(draw(st.lists(st.integers(0, len(blocks) - 1), min_size=units, max_size=units)))
    alpha = draw(st.binary(max_size=40)) if c in (2, 4) else b""
    return CmbHeader("image", (hh, ww, c), draw(pid), draw(seeds), draw(kappa), max(blocks), units, patch, blocks,
                     cls, alpha)


@st.composite
def gain_audio_headers(draw):
    """Kind 10: level-normalised audio with per-unit block counts (0 = a silent unit)."""
    from engine.audio_gain import code_range

    units = draw(st.integers(1, 300))
    ncls = draw(st.integers(1, 6))
    blocks = tuple(sorted(draw(st.sets(st.integers(0, 40), min_size=ncls, max_size=ncls))))
    cls = tuple(draw(st.lists(st.integers(0, len(blocks) - 1), min_size=units, max_size=units)))
    return CmbHeader("audio", (draw(st.integers(1, 10 ** 7)), draw(st.integers(1, 64)),
                               draw(st.integers(1, 1_536_000))), draw(pid), draw(seeds), draw(kappa), max(blocks),
                     units, 0, blocks, cls, b"", draw(st.integers(*code_range())))


@SETTINGS
@given(st.one_of(image_headers(), audio_headers(), patch_headers(), gain_audio_headers()), st.data())
def test_header_round_trip(h, data):
    # the indices come from a drawn seed: a header may need thousands of them
    rs = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    idx = rs.integers(0, 1 << h.kappa, h.n_indices, dtype=np.int64)
    blob = container.write(h, idx)
    h2, idx2 = container.read(blob)
    assert h2 == h and np.array_equal(idx2, idx)
    assert container.read_header(blob) == h
    assert len(blob) == len(container.header_bytes(h)) + container.payload_bytes(h.n_indices, h.kappa) + 2
    # every proper prefix is refused, and so is any change with a stale checksum
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(CmbFormatError):
        container.read(blob[:cut])
    pos = data.draw(st.integers(0, len(blob) - 1))
    bad = bytearray(blob)
    bad[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CmbFormatError):
        container.read(bytes(bad))


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_with_a_valid_checksum_read_or_fail_cleanly(body):
    blob = bytes([container.MAGIC]) + body
    blob += binascii.crc_hqx(blob, 0).to_bytes(2, "little")
    try:
        h, idx = container.read(blob)
    except CmbFormatError:
        return
    assert len(idx) == h.n_indices
