"""Perceptual noise shaping of the speech fit (engine/audio_shaping.py): the filters, the shaped error, and a
shaped encode decoding like any other file."""
import dataclasses

import numpy as np
import pytest
import scipy.signal
import torch

from engine import audio_shaping as sh
from engine.audio_codec import decode_audio_full, encode_audio
from engine.codec import run
from engine.errors import CombinerError
from engine.fitting import masked_mse

from .conftest import FAST_FIT, voiced_audio


def resonant(n: int, seed: int = 0) -> np.ndarray:
    """(3, n) frames of an AR(2) process with a resonance near 0.1 of the sampling rate."""
    noise = np.random.default_rng(seed).standard_normal((3, n))
    return scipy.signal.lfilter([1.0], [1.0, -1.6, 0.9], noise, axis=1)


def test_lpc_finds_the_resonance_and_silence_gets_no_filter():
    a = sh.lpc(resonant(16000), 2)
    np.testing.assert_allclose(a[:, 1:], [[-1.6, 0.9]] * 3, atol=0.05)
    assert np.all(a[:, 0] == 1.0)
    np.testing.assert_array_equal(sh.lpc(np.zeros((1, 800)), 16), np.eye(1, 17))


def test_the_weighting_filter_moves_error_weight_off_the_formant_and_keeps_its_scale():
    s = sh.Shaping(0.92, 0.6)
    h = sh.impulse_responses(resonant(800), s)                                      # (3, taps)
    assert h.shape == (3, s.taps) and np.all(h[:, 0] == 1.0)
    f, resp = scipy.signal.freqz(h[0], worN=1024, fs=1.0)
    mag = np.abs(resp)
    assert abs(np.mean(np.log(mag))) < 0.02          # monic, minimum phase: log-gain averages to zero
    peak = np.argmin(np.abs(f - np.arccos(0.8 / np.sqrt(0.9)) / (2 * np.pi)))   # the AR(2) pole angle
    assert mag[peak] < 0.5 and mag[-1] > 1.2        # error under the formant weighs less, far from it more
    silent = sh.impulse_responses(np.zeros((1, 800)), s)
    np.testing.assert_array_equal(silent[0], np.eye(1, s.taps)[0])


def test_an_identity_filter_gives_the_plain_weighted_error_and_rows_select_units():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 50, 1, generator=g), torch.randn(4, 50, 1, generator=g)
    weight = torch.rand(4, 50, 1, generator=g)
    weight[1, 40:] = 0
    ident = torch.zeros(4, 8)
    ident[:, 0] = 1
    shaped = sh.ShapedWeight(weight, ident)
    torch.testing.assert_close(masked_mse(pred, target, shaped), masked_mse(pred, target, weight))
    rows = torch.tensor([2, 0])
    torch.testing.assert_close(masked_mse(pred[rows], target[rows], shaped[rows]),
                               masked_mse(pred[rows], target[rows], weight[rows]))
    # a two-tap filter is a causal convolution inside each unit
    h = ident.clone()
    h[:, 1] = -0.5
    e = pred - target
    want = e.clone()
    want[:, 1:] -= 0.5 * e[:, :-1]
    torch.testing.assert_close(sh.ShapedWeight(weight, h).filtered(e), want)


def test_a_shaped_encode_decodes_like_any_file(tiny_audio_prior, tiny_audio_prior_dir):
    x = voiced_audio(0.5, seed=3)
    plain = run(encode_audio(x, 16000, 16.0, prior=tiny_audio_prior, fit=FAST_FIT))
    fit = dataclasses.replace(FAST_FIT, shape_g1=0.92, shape_g2=0.75)
    r = run(encode_audio(x, 16000, 16.0, prior=tiny_audio_prior, fit=fit))
    y, _, hdr, _ = decode_audio_full(r.data, [tiny_audio_prior_dir])
    np.testing.assert_array_equal(y, r.reconstruction)
    assert hdr == r.header and r.data[1] == plain.data[1] and r.data != plain.data   # same kind, another fit
    assert abs(len(r.data) - len(plain.data)) <= 0.05 * len(plain.data)
    with pytest.raises(CombinerError, match="whole chunks"):
        run(encode_audio(x, 16000, 16.0, prior=tiny_audio_prior, fit=dataclasses.replace(fit, points=0.5)))


def test_the_cli_perceptual_option_sets_the_shaping_filter():
    from engine.cli import _fit_config, build_parser
    from engine.config import PERCEPTUAL, PRESETS, perceptual

    on = _fit_config(build_parser().parse_args(["encode", "a.wav", "--kbps", "12", "--perceptual"]))
    off = _fit_config(build_parser().parse_args(["encode", "a.wav", "--kbps", "12", "--preset", "fast"]))
    assert (on.shape_g1, on.shape_g2) == PERCEPTUAL and 0 < PERCEPTUAL[1] < PERCEPTUAL[0] < 1
    assert off == PRESETS["fast"] and off.shape_g1 == 0
    assert on == perceptual(PRESETS["default"])
