"""Latent-grid audio priors (1-D grids per chunk, stitched over each channel): features without seams, the prior
file, exact encode/decode in one or several batches, windowed rendering, silence, stereo, bad configurations."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import audio_codec, latent
from engine.codec import run
from engine.config import InrConfig, LatentConfig, LearnConfig
from engine.errors import CombinerError
from engine.learn import learn_prior
from engine.metrics import snr
from engine.prior import AudioLayout, Prior

from .conftest import FAST_FIT, voiced_audio

LAT1 = LatentConfig(levels=(50, 20, 10), channels=2, dim=1)


def _reference_1d(lat: torch.Tensor, cfg: LatentConfig, L: int, ups: torch.Tensor) -> torch.Tensor:
    """Independent reference: concatenate the units' cells per level with explicit loops, convolve with conv1d
    and interpolate linearly over the whole run -> (U, L, F)."""
    u, c = lat.shape[0], cfg.channels
    per_level, o = [], 0
    for g, (w, b) in zip(cfg.levels, latent.split_upsampler(ups, cfg)):
        seq = torch.cat([lat[i, o:o + g * c].reshape(g, c).T for i in range(u)], dim=1)   # (c, U*g)
        o += g * c
        k = cfg.kernel
        seq = F.conv1d(F.pad(seq[None] * cfg.scale, [k // 2, k // 2], mode="replicate"), w[:, :, 0, :], b)
        per_level.append(F.interpolate(seq, size=u * L, mode="linear", align_corners=False)[0])
    sig = torch.cat(per_level, 0)                                                         # (F, U*L)
    return sig.T.reshape(u, L, cfg.features)


def test_1d_stitched_features_equal_one_whole_run():
    g = torch.Generator().manual_seed(1)
    lat = torch.randn(5, LAT1.n_latents, generator=g) * 0.05
    ups = latent.identity_upsampler(LAT1) + 0.1 * torch.randn(LAT1.n_upsampler, generator=g)
    got = latent.features(lat, latent.uniform_canvases(1, 1, 5), LAT1, 200, ups)
    assert got.shape == (5, 200, LAT1.features)
    ref = _reference_1d(lat.double(), LAT1, 200, ups.double())   # float64: interpolate's positions are exact
    assert torch.allclose(got.double(), ref, atol=1e-5)


def test_no_seams_between_chunks():
    """Stitched features are as smooth across chunk borders as inside chunks."""
    g = torch.Generator().manual_seed(2)
    lat = torch.randn(8, LAT1.n_latents, generator=g) * 0.05
    ups = latent.identity_upsampler(LAT1) + 0.1 * torch.randn(LAT1.n_upsampler, generator=g)
    f = latent.features(lat, latent.uniform_canvases(1, 1, 8), LAT1, 200, ups).reshape(8 * 200, -1)
    d = (f[1:] - f[:-1]).abs().mean(1)                       # (U*L - 1,) step between neighbouring samples
    edges = torch.arange(1, 8) * 200 - 1
    interior = torch.ones_like(d, dtype=torch.bool)
    interior[edges] = False
    assert float(d[edges].mean()) <= 2.0 * float(d[interior].mean())


def test_audio_latent_prior_round_trips_through_its_file(audio_latent_prior, audio_latent_prior_dir, tmp_path):
    p = audio_latent_prior
    assert p.latent.dim == 1 and p.latent.shared and p.unit_side == 200
    assert p.n_params == p.latent.n_latents == 80 and p.inr_weights.shape == (p.inr.n_params,)
    again = Prior.load(audio_latent_prior_dir / "tiny_audio_latent.safetensors")
    assert again.id == p.id and again.latent == p.latent
    assert np.array_equal(again.upsampler, p.upsampler)
    # 2-D grids on an audio prior are refused when the file is read
    bad = Prior(**{**p.__dict__, "latent": LatentConfig(levels=(50, 20, 10), channels=1, shared=True)})
    bad.save(tmp_path / "bad.safetensors")
    with pytest.raises(Exception, match="latent grids"):
        Prior.load(tmp_path / "bad.safetensors")


@pytest.fixture(scope="module")
def coded(audio_latent_prior):
    clip = voiced_audio(0.5, seed=9)
    clip[3000:4000] = 0.0                      # five chunks of digital silence in the middle
    return clip, run(audio_codec.encode_audio(clip, 16000, 32, prior=audio_latent_prior, fit=FAST_FIT))


def test_latent_clip_decodes_exactly_and_learns_the_signal(coded, audio_latent_prior_dir):
    clip, enc = coded
    y, sr = audio_codec.decode_audio(enc.data, prior_dirs=[audio_latent_prior_dir])
    assert sr == 16000 and y.shape == (8000, 1)
    assert np.array_equal(y, enc.reconstruction)
    assert snr(clip, y[:, 0]) > 6.0
    assert abs(enc.kbps - 32) / 32 < 0.05
    assert np.all(y[3200:3800] == 0.0) and np.all(enc.unit_blocks[16:19] == 0)


def test_windowed_rendering_equals_one_window(coded, audio_latent_prior_dir, monkeypatch):
    _, enc = coded
    whole, _ = audio_codec.decode_audio(enc.data, prior_dirs=[audio_latent_prior_dir])
    monkeypatch.setattr(audio_codec, "RENDER_BATCH", 3)   # 40 units in windows of 3 with one unit of margin
    done = []
    y, _, _, _ = audio_codec.decode_audio_full(enc.data, [audio_latent_prior_dir],
                                               progress=lambda d, t: done.append((d, t)))
    assert np.allclose(y, whole, rtol=0, atol=1e-6)   # the INR runs on batches of another size
    assert done[-1] == (int((enc.unit_blocks > 0).sum()),) * 2


def test_latent_clip_in_several_batches(coded, audio_latent_prior, audio_latent_prior_dir):
    """Batches of 7 units: later batches see the coded latents of earlier ones; the file decodes to the
    sender's reconstruction and is about as good as the one-batch encode."""
    clip, one = coded
    enc = run(audio_codec.encode_audio(clip, 16000, 32, prior=audio_latent_prior, fit=FAST_FIT, max_units=7))
    y, _ = audio_codec.decode_audio(enc.data, prior_dirs=[audio_latent_prior_dir])
    assert np.array_equal(y, enc.reconstruction)
    assert abs(len(enc.data) - len(one.data)) <= 0.05 * len(one.data)
    assert snr(clip, y[:, 0]) > snr(clip, one.reconstruction[:, 0]) - 1.5


def test_stereo_latent_channels_are_stitched_apart(audio_latent_prior, audio_latent_prior_dir):
    left, right = voiced_audio(0.3, seed=3), 0.3 * voiced_audio(0.3, seed=4)
    x = np.stack([left, right], 1)
    enc = run(audio_codec.encode_audio(x, 16000, 32, prior=audio_latent_prior, fit=FAST_FIT))
    y, _ = audio_codec.decode_audio(enc.data, prior_dirs=[audio_latent_prior_dir])
    assert y.shape == x.shape and np.array_equal(y, enc.reconstruction)
    assert snr(x[:, 0], y[:, 0]) > 3.5 and snr(x[:, 1], y[:, 1]) > 3.5   # the quiet channel is not lost


def test_audio_latent_learning_checks_its_items():
    lat = LatentConfig(levels=(50, 20, 10), channels=1, shared=True, dim=1)
    cfg = LearnConfig(rate_bpp=2.0, n_items=2, batch=8, first_steps=2, round_steps=1, rounds=0, latent=lat, tile=4,
                      inr=InrConfig(in_dim=1, out_dim=1, width=8, depth=2, n_freqs=2, max_freq=4.0,
                                    features=lat.features))
    wrong = np.zeros((2, 3 * 200, 1), np.float32)              # runs of 3 chunks for tile 4
    with pytest.raises(ValueError, match="runs of 4 chunks"):
        run(learn_prior(wrong, cfg, torch.device("cpu"), audio=AudioLayout(200, 16000)))


def test_cli_refuses_bad_audio_latent_grids(tmp_path, capsys):
    from engine.cli import main

    folder = tmp_path / "wavs"
    folder.mkdir()
    rc = main(["learn-prior", "--data", str(folder), "--kbps", "12", "--latent", "300,7", "--chunk", "800",
               "-o", str(tmp_path / "x.safetensors")])
    assert rc != 0
    assert "divide the chunk length 800" in capsys.readouterr().err


def test_latent_audio_priors_are_preferred_within_their_reach(audio_latent_prior, audio_latent_prior_dir):
    from engine.prior import LATENT_REACH, nearest

    near = nearest("audio", 1, audio_latent_prior.rate / 1.6, [audio_latent_prior_dir])   # a plain prior is nearer
    assert near.latent is not None
    far = nearest("audio", 1, audio_latent_prior.rate * LATENT_REACH * 1.5, [audio_latent_prior_dir])
    assert far.latent is None
