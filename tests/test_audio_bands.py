"""Band gains (engine/audio_bands.py, kind-5 audio files): the filter, the sender's choice, the file fields."""
import binascii
import dataclasses

import numpy as np
import pytest
from scipy import signal

from engine import audio_bands as ab, container
from engine.audio_codec import decode_audio_full, encode_audio
from engine.codec import run
from engine.container import CmbHeader
from engine.errors import CmbFormatError
from engine.metrics import snr

from .conftest import FAST_FIT, voiced_audio

L = 800   # the shipped speech priors' chunk


def unity(m: int, band_set: int, chunk: int = L) -> np.ndarray:
    """Codes that change nothing: every gain at one (and every noise floor at 0)."""
    bs = ab.SETS[band_set]
    codes = np.full((bs.rows(-(-m // chunk)), bs.bands), bs.unity)
    if bs.floors:
        codes[0] = 0
    return codes


def low_passed_with_noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x: noise low-passed at 2 kHz (16 kHz); y: x plus white noise 10 dB down (most of it above 2 kHz)."""
    rs = np.random.default_rng(seed)
    b, a = signal.butter(6, 0.25)
    x = signal.lfilter(b, a, rs.normal(0, 1, n))
    return x, x + 0.3 * x.std() * rs.normal(0, 1, n)


SETS = range(len(ab.SETS))


@pytest.mark.parametrize("band_set", SETS)
@pytest.mark.parametrize("m", [1, 5, 199, 200, 201, 3199, 3200, 12345])
def test_unit_gains_give_back_the_signal(m, band_set):
    """The windows' squares sum to one over every sample, the ends included."""
    y = np.random.default_rng(m).normal(0, 1, m)
    np.testing.assert_allclose(ab.apply(y, unity(m, band_set), L, band_set), y, atol=1e-5)


def test_band_edges_at_16_khz():
    edges = [[ab._band_of_bins(bs, L // 2).tolist().index(b) * 40 for b in range(bs.bands)] for bs in ab.SETS]
    coarse, fine = [0, 480, 1000, 2000, 3000, 4000, 6000], [0, 240, 480, 1000, 1480, 2000, 3000, 4000, 6000]
    assert edges == [coarse, fine, coarse, fine]


@pytest.mark.parametrize("band_set", SETS)
def test_the_sender_lowers_the_noisy_bands_and_the_error_falls(band_set):
    bs = ab.SETS[band_set]
    x, y = low_passed_with_noise(48000)
    codes = ab.choose(x, y, L, band_set)
    assert codes.shape == (bs.rows(60), bs.bands)
    gains = codes[-bs.segments(60):]
    low = [b for b in range(bs.bands) if bs.edges[b + 1] <= 8]     # bands below 1 kHz: mostly signal
    high = [b for b in range(bs.bands) if bs.edges[b] >= 32]       # above 4 kHz: noise alone, the gain is zero
    assert (np.abs(np.asarray(bs.gains)[gains[:, low]] - 1) <= 0.13).mean() > 0.9
    assert (gains[:, high] == 0).all()
    z = ab.apply(y, codes, L, band_set)
    assert snr(x, z) > snr(x, y) + 3
    # the codes are the nearest gains to the least-squares ones, and each band's floor the best one given its
    # gains: any other single code does worse (the floors' row included)
    rs = np.random.default_rng(1)
    for i in range(12):
        s, b = (0 if i < 4 else int(rs.integers(codes.shape[0]))), int(rs.integers(bs.bands))
        other = codes.copy()
        other[s, b] = (codes[s, b] + int(rs.integers(1, len(bs.gains)))) % len(bs.gains)
        assert np.sum((x - ab.apply(y, other, L, band_set)) ** 2) >= np.sum((x - z) ** 2) * (1 - 1e-3)


def harmonics_with_noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x: a 150 Hz harmonic series whose level falls by 6 dB per octave (16 kHz); y: x plus white noise."""
    rs = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    x = sum(np.sin(2 * np.pi * 150 * k * t + rs.uniform(0, 2 * np.pi)) / k for k in range(1, 50))
    return x, x + 0.05 * rs.normal(0, 1, n)


@pytest.mark.parametrize("plain, floored", [(0, 2), (1, 3)])
def test_noise_floors_take_out_the_noise_between_harmonics(plain, floored):
    """A band gain scales a band's harmonics and the noise between them alike; the floors' filter keeps the
    harmonics' bins and lowers the noisy bins between them."""
    x, y = harmonics_with_noise(32000)
    a = ab.apply(y, ab.choose(x, y, L, plain), L, plain)
    codes = ab.choose(x, y, L, floored)
    b = ab.apply(y, codes, L, floored)
    assert (codes[0] > 0).sum() >= ab.SETS[floored].bands // 2
    assert snr(x, b) > snr(x, a) + 0.5
    # where no band is worth a floor, the floors' sets choose what their plain twins choose
    x, y = low_passed_with_noise(24000, seed=4)
    assert (ab.choose(x, 0.0 * y + x, L, floored)[1:] == ab.choose(x, 0.0 * y + x, L, plain)).all()


@pytest.mark.parametrize("band_set", SETS)
def test_a_segment_codes_reach_only_its_own_samples_and_half_a_frame_each_side(band_set):
    x, y = low_passed_with_noise(20000, seed=2)
    codes = ab.choose(x, y, L, band_set)
    s = 2
    other = codes.copy()
    row = s + bool(ab.SETS[band_set].floors)
    other[row] = (codes[row] + 3) % len(ab.SETS[band_set].gains)
    d = np.flatnonzero(ab.apply(y, other, L, band_set) != ab.apply(y, codes, L, band_set))
    seg = ab.SETS[band_set].segment * L
    assert d.min() >= s * seg - L // 2 and d.max() < (s + 1) * seg + L // 2


@pytest.mark.parametrize("band_set", SETS)
def test_blockwise_transforms_equal_the_whole(monkeypatch, band_set):
    x, y = low_passed_with_noise(30011, seed=3)
    codes = ab.choose(x, y, L, band_set)
    z = ab.apply(y, codes, L, band_set)
    monkeypatch.setattr(ab, "FRAMES_AT_ONCE", 6)
    np.testing.assert_array_equal(ab.choose(x, y, L, band_set), codes)
    np.testing.assert_allclose(ab.apply(y, codes, L, band_set), z, rtol=0, atol=1e-6)


def test_the_set_follows_the_rate_per_channel():
    assert [ab.set_for(k) for k in (3, 6, 8.9, 9, 12, 24, 48)] == [2, 2, 2, 3, 3, 3, 3]


def enc(x, prior, kbps=16.0, **kw):
    return run(encode_audio(x, 16000, kbps, prior=prior, fit=FAST_FIT, **kw))


def test_band_gains_round_trip_through_the_file_and_decode_exactly(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.8, seed=21)
    x[4000:4400] = 0.0
    r = enc(x, tiny_audio_prior)
    assert r.data[1] & 0x0F == container.KIND_AUDIO_FLAGS
    y, _, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    bs = ab.SETS[hdr.band_set]
    assert hdr == r.header and hdr.envelope is not None and hdr.band_set == ab.set_for(16.0) == 3
    assert len(hdr.bands) == bs.n_codes(hdr.units, 1) == (bs.segments(64) + 1) * bs.bands
    # the same coded units with every band at one decode worse: the chosen gains lower the error
    flat = container.write(dataclasses.replace(hdr, bands=(bs.unity,) * len(hdr.bands)), container.read(r.data)[1])
    y1, *_ = decode_audio_full(flat, [tiny_audio_prior_dir])
    assert snr(x, y[:, 0]) > snr(x, y1[:, 0])
    plain = enc(x, tiny_audio_prior, bands=False)
    assert plain.data[1] & 0x0F == container.KIND_AUDIO_ENV and plain.header.bands is None
    # the codes' bits come out of the same file budget
    assert abs(len(plain.data) - len(r.data)) <= 0.03 * len(plain.data)
    low = enc(x, tiny_audio_prior, 6.0)          # at 6 kbps the coarser set
    assert low.header.band_set == 2 and len(low.header.bands) == ab.SETS[2].n_codes(64, 1)
    np.testing.assert_array_equal(decode_audio_full(low.data, [tiny_audio_prior_dir])[0], low.reconstruction)


def test_stereo_clips_get_codes_per_channel_and_silence_gets_none(tiny_audio_prior, tiny_audio_prior_dir):
    x = np.stack([voiced_audio(0.5, seed=22), 0.5 * voiced_audio(0.5, seed=23)], 1)
    r = enc(x, tiny_audio_prior)
    y, _, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    bs = ab.SETS[hdr.band_set]
    assert hdr.band_set == ab.set_for(8.0) == 2        # 16 kbps over two channels
    assert len(hdr.bands) == 2 * (bs.segments(hdr.units // 2) + 1) * bs.bands
    quiet = enc(np.zeros(8000, dtype=np.float32), tiny_audio_prior)
    assert quiet.header.bands is None and not quiet.reconstruction.any()


def _kind5(flags: int, band_set: int = 0, codes: int = 2 * ab.SETS[0].bands, units: int = 5, channels: int = 1
           ) -> bytes:
    """A hand-made kind-5 file: kind 10's fields, the flags and what they announce, a valid checksum."""
    body = bytearray([container.MAGIC, container.VERSION << 4 | container.KIND_AUDIO_FLAGS])
    for v in (4000, channels, 16000, units):
        container._put_varint(body, v)
    body += b"\x01\x02\x03"
    container._put_varint(body, 7), body.append(16)
    container._put_varint(body, 0)                           # gain
    container._put_varint(body, 1), container._put_varint(body, 1)   # one class of 1 block
    container._put_varint(body, flags)
    if flags & container.AUDIO_FLAG_BANDS:
        container._put_varint(body, band_set)
        body += container.pack_indices(np.full(codes, ab.SETS[0].unity), ab.SETS[0].bits)
    body += container.pack_indices(np.zeros(units, dtype=np.int64), 16)
    return bytes(body) + binascii.crc_hqx(bytes(body), 0).to_bytes(2, "little")


def test_kind5_header_fields_round_trip_and_are_checked():
    h = CmbHeader("audio", (4000, 1, 16000), b"\x01\x02\x03", 7, 16, 3, 5, 0, (0, 3), (1, 0, 1, 1, 1), b"", -4,
                  envelope=(4, 0, 5, 6, 7), bands=tuple(range(8)) + (1, 2, 3, 4, 5, 6))   # 2 segments x 7 bands
    idx = np.random.default_rng(2).integers(0, 1 << 16, h.n_indices)
    data = container.write(h, idx)
    assert data[1] & 0x0F == container.KIND_AUDIO_FLAGS
    back, bidx = container.read(data)
    assert back == h and np.array_equal(bidx, idx)
    both = dataclasses.replace(h, delta_scales=(3, 4, 5), delta_blocks=2)      # with a clip delta too
    back, bidx = container.read(container.write(both, np.concatenate([[7, 9], idx])))
    assert back == both and list(bidx[:2]) == [7, 9]
    for n in range(len(data)):                                # every truncation, every bit flip
        with pytest.raises(CmbFormatError):
            container.read(data[:n])
    for pos in range(2, len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[pos] ^= 1 << bit
            with pytest.raises(CmbFormatError):
                container.read(bytes(bad))
    for bands in (h.bands[1:], h.bands + (0,), (8,) + h.bands[1:], (-1,) + h.bands[1:]):
        with pytest.raises(ValueError, match="band gains"):   # the writer refuses what the reader would not take
            container.write(dataclasses.replace(h, bands=bands), idx)
    with pytest.raises(ValueError, match="band gains"):
        container.write(dataclasses.replace(h, band_set=len(ab.SETS)), idx)
    fine = dataclasses.replace(h, band_set=1, bands=tuple(range(16)) + (15, 0) * 3 + (12,) * 5)   # 3 x 9 codes, 4 bits
    data1 = container.write(fine, idx)
    assert container.read(data1)[0] == fine and len(data1) == len(data) + (27 * 4 + 7) // 8 - (14 * 3 + 7) // 8
    assert container.read(_kind5(container.AUDIO_FLAG_BANDS))[0].bands == (ab.SETS[0].unity,) * (2 * ab.SETS[0].bands)
    assert container.read(_kind5(0))[0].bands is None          # a kind-5 file may announce nothing extra
    with pytest.raises(CmbFormatError, match="flags"):
        container.read(_kind5(8))
    with pytest.raises(CmbFormatError, match="band-gain set"):
        container.read(_kind5(container.AUDIO_FLAG_BANDS, band_set=len(ab.SETS)))
    with pytest.raises(CmbFormatError, match="units"):
        container.read(_kind5(container.AUDIO_FLAG_BANDS, units=5, channels=2))


def test_every_set_names_as_many_floors_as_its_codes_can():
    for bs in ab.SETS:
        assert len(bs.gains) == 1 << bs.bits and bs.gains.count(1.0) == 1
        assert bs.floors == () or (len(bs.floors) == 1 << bs.bits and bs.floors[0] == 0.0
                                   and list(bs.floors) == sorted(set(bs.floors)))
