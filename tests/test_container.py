import numpy as np
import pytest

from engine import container
from engine.container import CmbHeader
from engine.errors import CmbFormatError


@pytest.mark.parametrize("bits", [1, 3, 8, 13, 16, 20])
def test_bit_packing_round_trip(bits):
    rs = np.random.default_rng(bits)
    for n in [1, 2, 7, 58, 301]:
        idx = rs.integers(0, 1 << bits, n)
        data = container.pack_indices(idx, bits)
        assert len(data) == (n * bits + 7) // 8  # no per-index byte rounding
        assert np.array_equal(container.unpack_indices(data, n, bits), idx)


def _file(nb=58):
    h = CmbHeader("image", (32, 32, 3), b"\x01\x02\x03", 0, 16, nb)
    idx = np.random.default_rng(0).integers(0, 1 << 16, nb)
    return h, idx, container.write(h, idx)


def test_header_round_trip_and_size():
    h, idx, data = _file()
    assert len(data) == 128  # 1 bpp for a 32x32 image
    assert len(container.header_bytes(h)) + container.CRC_BYTES <= 12
    h2, idx2 = container.read(data)
    assert h2 == h and np.array_equal(idx2, idx)
    a = CmbHeader("audio", (48000, 2, 44100), b"abc", 300, 16, 1000)
    assert container.read(container.write(a, np.arange(1000)))[0] == a


def _every_truncation_is_reported(data: bytes) -> None:
    for n in range(len(data)):
        with pytest.raises(CmbFormatError):
            container.read(data[:n])


def _every_single_bit_flip_is_detected(data: bytes) -> None:
    for pos in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(CmbFormatError):
                container.read(bytes(bad))


def test_every_truncation_is_reported():
    _every_truncation_is_reported(_file()[2])


def test_every_single_bit_flip_is_detected():
    _every_single_bit_flip_is_detected(_file()[2])


def test_messages_name_the_problem():
    _, _, data = _file()
    with pytest.raises(CmbFormatError, match="magic"):
        container.read(b"PNG" + data[3:])
    with pytest.raises(CmbFormatError, match="version"):
        container.read(bytes([data[0], (7 << 4) | 3]) + data[2:])
    with pytest.raises(CmbFormatError, match="truncated"):
        container.read(data[:-5])
    with pytest.raises(CmbFormatError, match="checksum"):
        container.read(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(CmbFormatError, match="unexpected bytes"):
        container.read(data + b"\0")


def test_random_bytes_never_crash():
    rs = np.random.default_rng(0)
    for n in range(300):
        blob = bytes(rs.integers(0, 256, rs.integers(0, 200)).astype(np.uint8))
        if n % 2:
            blob = bytes([container.MAGIC, 0x13]) + blob
        with pytest.raises(CmbFormatError):
            container.read(blob)


def _delta_file(scales=(30, 26, 29), nd=5):
    """A kind-11 file: a 2x3-patch image whose network delta (nd blocks) is coded before the patches."""
    h = CmbHeader("image", (100, 150, 3), b"\x01\x02\x03", 7, 16, 4, 6, 64, (2, 4), (0, 1, 1, 0, 1, 0), b"",
                  delta_scales=scales, delta_blocks=nd)
    idx = np.random.default_rng(1).integers(0, 1 << 16, h.n_indices)
    return h, idx, container.write(h, idx)


def test_image_delta_fields_round_trip_and_guard_the_payload():
    h, idx, data = _delta_file()
    assert h.n_indices == 5 + 2 + 4 + 4 + 2 + 4 + 2
    assert data[1] & 0x0F == container.KIND_PATCHES_DELTA
    h2, idx2 = container.read(data)
    assert h2 == h and np.array_equal(idx2, idx)
    plain = CmbHeader("image", (100, 150, 3), b"\x01\x02\x03", 7, 16, 4, 6, 64, (2, 4), (0, 1, 1, 0, 1, 0))
    assert container.write(plain, idx[5:])[1] & 0x0F == container.KIND_PATCHES   # no delta: still kind 9
    _every_truncation_is_reported(data)
    _every_single_bit_flip_is_detected(data)


def test_audio_delta_fields_round_trip_and_guard_the_payload():
    """Kind 12: a kind-10 clip (gain, classes with a silent one) followed by the clip's network delta fields."""
    h = CmbHeader("audio", (4000, 1, 16000), b"\x01\x02\x03", 7, 16, 3, 5, 0, (0, 3), (1, 0, 1, 1, 1), b"", -4,
                  (40, 30, 31), 6)
    idx = np.random.default_rng(2).integers(0, 1 << 16, h.n_indices)
    assert h.n_indices == 6 + 4 * 3
    data = container.write(h, idx)
    assert data[1] & 0x0F == container.KIND_AUDIO_DELTA
    h2, idx2 = container.read(data)
    assert h2 == h and np.array_equal(idx2, idx)
    plain = CmbHeader(**{**h.__dict__, "delta_scales": (), "delta_blocks": 0})
    assert container.write(plain, idx[6:])[1] & 0x0F == container.KIND_AUDIO_GAIN   # no delta: still kind 10
    _every_truncation_is_reported(data)
    _every_single_bit_flip_is_detected(data)


@pytest.mark.parametrize("scales,nd,match", [((), 3, "delta"), (tuple(range(17)), 3, "delta layers"),
                                             ((1, 2, 3), 0, "delta blocks"), ((1, 2, 3), 70000, "delta blocks")])
def test_bad_image_delta_fields_are_format_errors(scales, nd, match):
    """Header fields out of range, with a valid checksum, are reported, not trusted."""
    import binascii

    from engine.container import _put_varint
    body = bytearray([container.MAGIC, container.VERSION << 4 | container.KIND_PATCHES_DELTA])
    for v in (64, 64, 3, 64):
        _put_varint(body, v)
    body += b"\x01\x02\x03"
    _put_varint(body, 0)
    body.append(16)
    _put_varint(body, 1), _put_varint(body, 2)              # one class of 2 blocks
    _put_varint(body, len(scales))
    body += bytes(scales)
    _put_varint(body, nd)
    body += container.pack_indices(np.zeros(2 + max(0, min(nd, 10)), dtype=np.int64), 16)
    data = bytes(body) + binascii.crc_hqx(bytes(body), 0).to_bytes(2, "little")
    with pytest.raises(CmbFormatError, match=match if scales else "delta layers"):
        container.read(data)
    with pytest.raises((ValueError, CmbFormatError)):      # and the writer refuses to make such a header
        container.write(CmbHeader("image", (64, 64, 3), b"\x01\x02\x03", 0, 16, 2, 1, 64, (2,), (0,),
                                  delta_scales=scales, delta_blocks=nd), np.zeros(2 + nd, dtype=np.int64))
