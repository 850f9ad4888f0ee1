"""Audio codec: round trips over rates, channel counts and sample formats, edge cases, corrupt files."""
import binascii
import dataclasses

import numpy as np
import pytest
import soundfile as sf

from engine import container
from engine.audio_codec import audio_psnr, decode_audio, decode_audio_full, encode_audio
from engine.audio_io import read_audio, resample
from engine.codec import run
from engine.errors import CmbFormatError, MediaError, PriorError

from .conftest import FAST_FIT, voiced_audio


def enc(x, sr, prior, kbps=16.0, **kw):
    return run(encode_audio(x, sr, kbps, prior=prior, fit=FAST_FIT, **kw))


@pytest.fixture(scope="module")
def mono_result(tiny_audio_prior):
    x = voiced_audio(0.5)
    return x, enc(x, 16000, tiny_audio_prior)


def test_round_trip_mono(mono_result, tiny_audio_prior_dir):
    x, r = mono_result
    y, sr = decode_audio(r.data, [tiny_audio_prior_dir])
    assert sr == 16000 and y.shape == (len(x), 1) and y.dtype == np.float32
    np.testing.assert_array_equal(y, r.reconstruction)   # the sender's view is the receiver's
    # a real reconstruction, not silence: far better than predicting zero, and within a band
    zero_psnr = audio_psnr(x[:, None], np.zeros_like(y))
    assert zero_psnr + 3 < r.psnr < 80
    assert r.snr > 3


def test_rate_from_file_bytes(mono_result):
    _, r = mono_result
    assert r.kbps == pytest.approx(8 * len(r.data) / 0.5 / 1000)
    assert abs(r.kbps - 16.0) / 16.0 < 0.05


def test_more_bits_less_distortion(tiny_audio_prior):
    x = voiced_audio(0.3, seed=3)
    lo, hi = enc(x, 16000, tiny_audio_prior, 6.0), enc(x, 16000, tiny_audio_prior, 30.0)
    assert len(hi.data) > 3 * len(lo.data)
    assert hi.psnr > lo.psnr + 1


@pytest.mark.parametrize("sr", [8000, 44100, 48000])
def test_other_rates_restored(sr, tiny_audio_prior, tiny_audio_prior_dir):
    x = resample(voiced_audio(0.25)[:, None], 16000, sr)
    r = enc(x, sr, tiny_audio_prior)
    y, sr2, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    assert sr2 == sr and y.shape == x.shape and hdr.shape == (len(x), 1, sr)
    assert r.psnr > audio_psnr(x, np.zeros_like(x)) + 2


def test_stereo_channels_kept_apart(tiny_audio_prior, tiny_audio_prior_dir):
    a, b = voiced_audio(0.25, seed=1), voiced_audio(0.25, seed=2)
    x = np.stack([a, 0.2 * b], axis=1)
    r = enc(x, 16000, tiny_audio_prior, 24.0)
    y, sr = decode_audio(r.data, [tiny_audio_prior_dir])
    assert y.shape == (len(a), 2)
    assert r.header.units == 2 * (len(a) // 200) and r.header.shape[1] == 2   # 200-sample chunks per channel
    # each decoded channel is nearer its own original than the other channel
    for c in range(2):
        own = np.mean((y[:, c] - x[:, c]) ** 2)
        other = np.mean((y[:, c] - x[:, 1 - c]) ** 2)
        assert own < other


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "PCM_U8"])
def test_sample_formats_read(subtype, tmp_path, tiny_audio_prior):
    x = voiced_audio(0.1)
    p = tmp_path / f"x_{subtype}.wav"
    sf.write(p, x, 16000, subtype=subtype)
    y, sr, warns = read_audio(p)
    assert sr == 16000 and y.shape == (len(x), 1) and y.dtype == np.float32 and not warns
    tol = 1 / 100 if subtype == "PCM_U8" else 1e-4
    assert np.max(np.abs(y[:, 0] - x)) < tol
    r = enc(y, sr, tiny_audio_prior)
    assert r.reconstruction.shape == y.shape


def test_flac_and_ogg_inputs(tmp_path):
    x = voiced_audio(0.2)
    for name, kw in (("a.flac", {}), ("a.ogg", {"subtype": "VORBIS"})):
        sf.write(tmp_path / name, x, 16000, **kw)
        y, sr, _ = read_audio(tmp_path / name)
        assert sr == 16000 and abs(len(y) - len(x)) < 2000


@pytest.mark.parametrize("n", [1, 2, 199, 201])
def test_very_short_clips(n, tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.05)[:n]
    r = enc(x, 16000, tiny_audio_prior)
    y, sr = decode_audio(r.data, [tiny_audio_prior_dir])
    assert y.shape == (n, 1)
    if n < 10:  # the smallest file is one block per unit: far above 16 kbps, and the encoder says so
        assert r.warnings and "below the smallest file" in r.warnings[0]


def test_silence_clipping_and_dc(tiny_audio_prior):
    silent = np.zeros(4000, dtype=np.float32)
    r = enc(silent, 16000, tiny_audio_prior)
    assert not np.any(r.reconstruction) and np.isnan(r.snr)   # digital silence comes back as digital silence
    assert len(r.data) < 40 and not any(r.unit_blocks)           # and costs only its header
    clipped = np.clip(voiced_audio(0.25) * 4, -1, 1)
    assert enc(clipped, 16000, tiny_audio_prior).reconstruction.shape == (len(clipped), 1)
    dc = voiced_audio(0.25) * 0.5 + 0.3
    r = enc(dc, 16000, tiny_audio_prior)
    assert abs(float(r.reconstruction.mean()) - float(dc.mean())) < 0.05


def test_integer_and_out_of_range_input(tiny_audio_prior):
    x = (voiced_audio(0.1) * 32767).astype(np.int16)
    r = enc(x, 16000, tiny_audio_prior)
    assert r.reconstruction.shape == (len(x), 1)
    with pytest.raises(MediaError):
        enc(np.array([np.nan, 0.0], dtype=np.float32), 16000, tiny_audio_prior)
    with pytest.raises(MediaError):
        enc(np.zeros(10, dtype=np.float32), 0, tiny_audio_prior)


def test_unreadable_audio_files(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    with pytest.raises(MediaError, match="not a readable audio file"):
        read_audio(bad)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match="no samples"):
        read_audio(empty)
    with pytest.raises(MediaError, match="no such file"):
        read_audio(tmp_path / "missing.wav")


def test_corrupt_audio_files_raise_documented_error(mono_result, tiny_audio_prior_dir):
    _, r = mono_result
    data = r.data
    for cut in range(len(data)):
        with pytest.raises(CmbFormatError):
            decode_audio(data[:cut], [tiny_audio_prior_dir])
    rs = np.random.default_rng(0)
    for _ in range(100):
        bad = bytearray(data)
        i = int(rs.integers(len(bad)))
        bad[i] ^= 1 << int(rs.integers(8))
        with pytest.raises(CmbFormatError):
            decode_audio(bytes(bad), [tiny_audio_prior_dir])


def test_unit_count_must_match_layout(mono_result, tiny_audio_prior_dir):
    _, r = mono_result
    hdr, idx = container.read(r.data)
    n, c, sr = hdr.shape
    # a consistent file (valid CRC) whose header claims a different length than its units cover
    forged = container.write(dataclasses.replace(hdr, shape=(n * 3, c, sr)), idx)
    with pytest.raises(CmbFormatError, match="units"):
        decode_audio(forged, [tiny_audio_prior_dir])


def test_image_prior_is_refused_for_audio(tiny_prior):
    with pytest.raises(PriorError):
        enc(voiced_audio(0.1), 16000, tiny_prior)


def test_crc_covers_header(mono_result):
    _, r = mono_result
    body = r.data[:-2]
    assert binascii.crc_hqx(body, 0) == int.from_bytes(r.data[-2:], "little")
