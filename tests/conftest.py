"""Shared fixtures: real photo patches (scikit-image's bundled images) and a tiny prior learned on them."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # Qt tests never need a display

import numpy as np
import pytest
import torch

from engine.codec import run
from engine.config import FitConfig, InrConfig, LearnConfig
from engine.learn import learn_prior

FAST_FIT = FitConfig(steps=150, refine_first=6, refine_last=2, refine_groups=6)
PATCH_FIT = FitConfig(steps=120, refine_first=6, refine_last=2, refine_groups=6)


def assert_gui_kept_turning(r: dict) -> None:
    """`r` from benchmarks.event_loop_stall.GapProbe.stop(): the GUI thread never worked more than 0.5 s between
    two timer ticks (its own CPU time, so a loaded machine does not fail it), and never went more than 2 s
    without a tick (waiting that long means a job on another thread held the GIL, or the GUI waited on it)."""
    assert r["worst_busy_ms"] < 500, f"the GUI thread computed {r['worst_busy_ms']:.0f} ms without events"
    assert r["worst_ms"] < 2000, f"the event loop stood still for {r['worst_ms']:.0f} ms"


def photo_patches(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """n real-photo patches (n, size, size, 3) uint8 cut from scikit-image's bundled colour photos."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    rs = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = photos[i % len(photos)]
        y = rs.integers(0, p.shape[0] - size)
        x = rs.integers(0, p.shape[1] - size)
        out.append(p[y:y + size, x:x + size, :3])
    return np.stack(out).astype(np.uint8)


def _learn_into(tmp_path_factory, folder: str, file: str, signals, cfg: LearnConfig, name: str, **kw):
    """Learn a tiny prior with the project's learner (torch seeded) and save it as `file` in a fresh folder."""
    torch.manual_seed(0)
    prior = run(learn_prior(signals, cfg, torch.device("cpu"), data_info={"name": name}, **kw))
    d = tmp_path_factory.mktemp(folder)
    prior.save(d / file)
    return d


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory):
    """A real (tiny) prior learned with the project's own learner on 24 photo patches; saved to a folder."""
    cfg = LearnConfig(rate_bpp=1.0, n_items=24, batch=24, first_steps=300, round_steps=100, rounds=3,
                      warmup=50, beta_init=3e-6, inr=InrConfig(width=8, depth=2, n_freqs=3, max_freq=8.0))
    return _learn_into(tmp_path_factory, "priors", "tiny.safetensors", photo_patches(24, seed=1), cfg, "tiny-test")


@pytest.fixture(scope="session")
def tiny_prior(tiny_prior_dir):
    from engine.prior import Prior

    return Prior.load(tiny_prior_dir / "tiny.safetensors")


def voiced_audio(seconds: float, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal (N,) float32: four harmonics of a gliding pitch under a slow syllable envelope,
    plus a little noise, peaking near 0.5."""
    rs = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sample_rate)))
    t = np.arange(n) / sample_rate
    f0 = 160 + 50 * np.sin(2 * np.pi * 0.8 * t + rs.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    y = sum(a * np.sin(k * phase + rs.uniform(0, 6)) for k, a in ((1, 1.0), (2, 0.6), (3, 0.35), (4, 0.2)))
    env = 0.3 + 0.7 * np.abs(np.sin(2 * np.pi * 1.5 * t + rs.uniform(0, 6)))
    y = y * env + 0.01 * rs.normal(0, 1, n)
    return (0.5 * y / max(1e-9, np.abs(y).max())).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_audio_prior_dir(tmp_path_factory):
    """A tiny 16 kHz audio prior (200-sample chunks) learned with the project's learner on synthetic speech."""
    from engine.prior import AudioLayout

    chunk = 200
    from engine.audio_gain import normalise

    x = np.concatenate([normalise(voiced_audio(1.0, seed=s), 16000) for s in range(4)])  # as the encoder sees it
    chunks = x[: len(x) // chunk * chunk].reshape(-1, chunk, 1)[::2][:48]
    cfg = LearnConfig(rate_bpp=2.0, n_items=48, batch=48, first_steps=200, round_steps=80, rounds=2, warmup=50,
                      beta_init=3e-7, out_init_scale=0.1,
                      inr=InrConfig(in_dim=1, out_dim=1, width=16, depth=2, n_freqs=4, max_freq=32.0))
    return _learn_into(tmp_path_factory, "audio_priors", "tiny_audio.safetensors", chunks, cfg, "tiny-audio-test",
                       audio=AudioLayout(chunk, 16000))


@pytest.fixture(scope="session")
def tiny_audio_prior(tiny_audio_prior_dir):
    from engine.prior import Prior

    return Prior.load(tiny_audio_prior_dir / "tiny_audio.safetensors")


def photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 crop of a real photo."""
    return photo_patches(1, size=max(h, w), seed=seed)[0, :h, :w]


@pytest.fixture(scope="session")
def patch_prior_dir(tmp_path_factory):
    """A tiny 16x16 patch prior with the linear reparameterisation, learned on real photo crops."""
    cfg = LearnConfig(rate_bpp=2.0, n_items=32, batch=32, first_steps=200, round_steps=80, rounds=2, warmup=50,
                      beta_init=1.5e-6, reparam=True, inr=InrConfig(width=12, depth=2, n_freqs=3, max_freq=8.0))
    return _learn_into(tmp_path_factory, "patch_priors", "tinypatch.safetensors", photo_patches(32, size=16, seed=3),
                       cfg, "tiny-patch-test", patch=16)


@pytest.fixture(scope="session")
def patch_prior(patch_prior_dir):
    from engine.prior import Prior

    return Prior.load(patch_prior_dir / "tinypatch.safetensors")




@pytest.fixture(scope="session")
def latent_prior_dir(tmp_path_factory):
    """A tiny 16x16 latent-grid patch prior (grids of 8, 4 and 2 cells per patch, stitched over 2x2-patch
    crops), learned with the project's learner on real photo crops."""
    from engine.config import LatentConfig

    lat = LatentConfig(levels=(8, 4, 2), channels=1)
    cfg = LearnConfig(rate_bpp=2.0, n_items=12, batch=48, first_steps=150, round_steps=60, rounds=2, warmup=50,
                      beta_init=1.5e-6, latent=lat, tile=2,
                      inr=InrConfig(width=10, depth=2, n_freqs=2, max_freq=4.0, features=lat.features))
    return _learn_into(tmp_path_factory, "latent_priors", "tinylatent.safetensors",
                       photo_patches(12, size=32, seed=4), cfg, "tiny-latent-test", patch=16)


@pytest.fixture(scope="session")
def shared_prior_dir(tmp_path_factory):
    """A tiny 16x16 shared-network latent prior (the network lives in the prior; patches code only their grids),
    learned with the project's learner on real photo crops; saved as shared.safetensors."""
    from engine.config import LatentConfig

    lat = LatentConfig(levels=(8, 4, 2), channels=2, shared=True)
    cfg = LearnConfig(rate_bpp=2.0, n_items=4, batch=16, first_steps=150, round_steps=30, rounds=1, warmup=150,
                      beta_init=3e-7, latent=lat, tile=2, out_init_scale=0.1, ups_lr=5e-3,
                      inr=InrConfig(width=10, depth=2, n_freqs=2, max_freq=4.0, features=lat.features))
    return _learn_into(tmp_path_factory, "shared_priors", "shared.safetensors", photo_patches(4, size=32, seed=6),
                       cfg, "tiny-shared-test", patch=16)


@pytest.fixture(scope="session")
def latent_prior(latent_prior_dir):
    from engine.prior import Prior

    return Prior.load(latent_prior_dir / "tinylatent.safetensors")


@pytest.fixture(scope="session")
def audio_latent_prior_dir(tmp_path_factory):
    """A tiny 16 kHz latent-grid audio prior: 200-sample chunks, 1-D grids of 50, 20 and 10 cells per chunk
    stitched over runs of 4 chunks, one shared INR; learned with the project's learner on synthetic speech."""
    from engine.audio_gain import normalise
    from engine.config import LatentConfig
    from engine.prior import AudioLayout

    chunk, tile = 200, 4
    x = np.concatenate([normalise(voiced_audio(1.0, seed=s), 16000) for s in range(4)])
    runs = x[: len(x) // (tile * chunk) * tile * chunk].reshape(-1, tile * chunk, 1)[:12]
    lat = LatentConfig(levels=(50, 20, 10), channels=1, shared=True, dim=1)
    cfg = LearnConfig(rate_bpp=2.0, n_items=12, batch=48, first_steps=150, round_steps=60, rounds=2, warmup=50,
                      beta_init=3e-8, out_init_scale=0.1, latent=lat, tile=tile,
                      inr=InrConfig(in_dim=1, out_dim=1, width=12, depth=2, n_freqs=2, max_freq=4.0,
                                    features=lat.features))
    return _learn_into(tmp_path_factory, "audio_latent_priors", "tiny_audio_latent.safetensors", runs, cfg,
                       "tiny-audio-latent-test", audio=AudioLayout(chunk, 16000))


@pytest.fixture(scope="session")
def audio_latent_prior(audio_latent_prior_dir):
    from engine.prior import Prior

    return Prior.load(audio_latent_prior_dir / "tiny_audio_latent.safetensors")


def check_restoration_field(img: np.ndarray, enc, prior_dir, field: str):
    """A kind-15 encode `enc` of `img` carries the restoration field `field` ('floors' or 'wiener';
    engine/restoration.py): its header reads back equal, the file decodes to exactly the encoder's
    reconstruction and PSNR, and the same coded patches without that field decode worse. -> the header."""
    import dataclasses

    from engine import container
    from engine.patch_codec import decode_image_full
    from engine.signals import psnr_uint8

    hdr, idx = container.read(enc.data)
    assert hdr == enc.header and getattr(hdr, field) is not None
    y, _, _ = decode_image_full(enc.data, prior_dirs=[prior_dir])
    np.testing.assert_array_equal(y, enc.reconstruction)
    assert enc.psnr == psnr_uint8(img, y)
    y0, _, _ = decode_image_full(container.write(dataclasses.replace(hdr, **{field: None}), idx),
                                 prior_dirs=[prior_dir])
    assert psnr_uint8(img, y) > psnr_uint8(img, y0)
    return hdr

