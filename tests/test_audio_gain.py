"""Level-normalised audio with blocks by content (kind-10 files): gain, silence, allocation, batches, corrupt files."""
import dataclasses

import numpy as np
import pytest

from engine import audio_gain, container
from engine.audio_codec import allocate, decode_audio, decode_audio_full, encode_audio, level_grid
from engine.codec import run
from engine.errors import CmbFormatError
from engine.metrics import snr

from .conftest import FAST_FIT, voiced_audio


def enc(x, prior, kbps=16.0, **kw):
    return run(encode_audio(x, 16000, kbps, prior=prior, fit=FAST_FIT, **kw))


def test_level_measure_and_gain_codes():
    x = voiced_audio(1.0)
    lv = audio_gain.level_dbfs(x, 16000)
    assert audio_gain.level_dbfs(x * 10 ** (-30 / 20), 16000) == pytest.approx(lv - 30, abs=1e-6)
    assert audio_gain.level_dbfs(np.zeros(100), 16000) == float("-inf")
    code = audio_gain.gain_code(x, 16000)
    assert abs(lv + code * audio_gain.GAIN_STEP_DB - audio_gain.REF_DBFS) <= audio_gain.GAIN_STEP_DB / 2
    assert audio_gain.gain_code(np.zeros(100), 16000) is None
    lo, hi = audio_gain.code_range()
    assert lo < code < 0 < hi   # the test signal is louder than the reference


def test_gain_round_trips_through_the_file(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.5, seed=4) * 0.1
    r = enc(x, tiny_audio_prior)
    hdr, _ = container.read(r.data)
    assert hdr.gain == audio_gain.gain_code(x, 16000) and hdr.gain == r.header.gain
    y, sr = decode_audio(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    assert r.snr > 3   # the decoded clip is at the input's level, not at the reference level


def test_quiet_and_loud_copies_give_the_same_snr(tiny_audio_prior):
    x = voiced_audio(0.6, seed=5)
    quiet = x * np.float32(10 ** (-41.1 / 20))   # about -60 dBFS; not a whole number of gain steps
    loud, soft = enc(x, tiny_audio_prior), enc(quiet, tiny_audio_prior)
    assert loud.snr > 3 and abs(loud.snr - soft.snr) < 1.0
    # the error follows the level: the quiet copy's noise is about 41 dB lower
    err_loud = np.sqrt(np.mean((loud.reconstruction[:, 0] - x) ** 2))
    err_soft = np.sqrt(np.mean((soft.reconstruction[:, 0] - quiet) ** 2))
    assert 20 * np.log10(err_loud / err_soft) == pytest.approx(41.1, abs=1.5)
    assert abs(len(loud.data) - len(soft.data)) <= 0.02 * len(loud.data)   # same rate


def test_silence_stays_silent_and_costs_nothing(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.6, seed=6)
    x[2000:6000] = 0.0          # a digitally silent gap of 20 chunks of 200 samples
    r = enc(x, tiny_audio_prior)
    y, _ = decode_audio(r.data, [tiny_audio_prior_dir])
    assert not np.any(y[2000:6000]) and np.all(r.unit_blocks[10:30] == 0) and np.all(r.unit_blocks[:10] > 0)
    assert snr(x, y[:, 0]) > 3
    stereo_silence = np.zeros((3000, 2), dtype=np.float32)
    s = enc(stereo_silence, tiny_audio_prior)
    ys, _ = decode_audio(s.data, [tiny_audio_prior_dir])
    assert ys.shape == (3000, 2) and not np.any(ys) and s.header.n_indices == 0


def test_loud_chunks_get_more_blocks_than_pauses(tiny_audio_prior):
    x = voiced_audio(0.8, seed=7)
    x[6400:] *= np.float32(10 ** (-40 / 20))   # the last 0.4 s is a pause 40 dB down (breath, room noise)
    r = enc(x, tiny_audio_prior, 12.0)
    loud, pause = r.unit_blocks[:32], r.unit_blocks[32:]
    assert loud.mean() > 2 * pause.mean() and pause.min() >= 1
    uniform = enc(x, tiny_audio_prior, 12.0, adaptive=False)
    assert np.ptp(uniform.unit_blocks) <= 1
    # by content beats one count for all at the same file size
    assert abs(len(r.data) - len(uniform.data)) / len(uniform.data) < 0.05
    assert r.snr > uniform.snr


def test_allocation_meets_the_budget_on_a_fixed_grid():
    rs = np.random.default_rng(0)
    kl = rs.lognormal(3, 1, 500)
    grid = level_grid(20.0, 400)
    n = allocate(kl, 20 * 500, grid)
    assert set(np.unique(n)) <= set(grid) and abs(int(n.sum()) - 10_000) < 0.02 * 10_000
    assert np.all(np.diff(n[np.argsort(kl)]) >= 0)   # more KL, never fewer blocks


def test_a_clip_coded_in_several_batches(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.5, seed=8)
    r = enc(x, tiny_audio_prior, 16.0, max_units=16)   # 40 units in batches of 16, 16, 8
    y, _, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    assert hdr.units == 40 and abs(r.kbps - 16.0) / 16.0 < 0.05 and r.snr > 3
    one = enc(x, tiny_audio_prior, 16.0)
    assert abs(len(one.data) - len(r.data)) / len(one.data) < 0.03 and abs(one.snr - r.snr) < 1.5


def test_new_header_fields_are_checked(tiny_audio_prior, tiny_audio_prior_dir):
    r = enc(voiced_audio(0.3, seed=9), tiny_audio_prior)
    data = r.data
    for cut in range(len(data)):
        with pytest.raises(CmbFormatError):
            container.read(data[:cut])
    rs = np.random.default_rng(1)
    hdr_len = len(container.header_bytes(r.header))
    for _ in range(150):   # bit flips, half of them inside the header (gain, classes)
        bad = bytearray(data)
        i = int(rs.integers(hdr_len if rs.random() < 0.5 else len(bad)))
        bad[i] ^= 1 << int(rs.integers(8))
        with pytest.raises(CmbFormatError):
            decode_audio(bytes(bad), [tiny_audio_prior_dir])
    hdr, idx = container.read(data)
    lo, hi = audio_gain.code_range()
    for gain in (hi + 1, lo - 1):   # valid checksum, gain out of range
        with pytest.raises(CmbFormatError, match="gain"):
            container.read(container.write(dataclasses.replace(hdr, gain=gain), idx))
    big = dataclasses.replace(hdr, class_blocks=(hdr.class_blocks[0], tiny_audio_prior.n_params + 1),
                              n_blocks=tiny_audio_prior.n_params + 1,
                              unit_class=(1,) + (0,) * (hdr.units - 1))
    forged = container.write(big, np.zeros(big.n_indices, dtype=np.int64))
    with pytest.raises(CmbFormatError, match="blocks"):
        decode_audio(forged, [tiny_audio_prior_dir])
