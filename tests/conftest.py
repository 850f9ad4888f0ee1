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


@pytest.fixture(scope="session")
def tiny_prior_dir(tmp_path_factory):
    """A real (tiny) prior learned with the project's own learner on 24 photo patches; saved to a folder."""
    torch.manual_seed(0)
    cfg = LearnConfig(rate_bpp=1.0, n_items=24, batch=24, first_steps=300, round_steps=100, rounds=3,
                      warmup=50, beta_init=3e-6, inr=InrConfig(width=8, depth=2, n_freqs=3, max_freq=8.0))
    prior = run(learn_prior(photo_patches(24, seed=1), cfg, torch.device("cpu"), data_info={"name": "tiny-test"}))
    d = tmp_path_factory.mktemp("priors")
    prior.save(d / "tiny.safetensors")
    return d


@pytest.fixture(scope="session")
def tiny_prior(tiny_prior_dir):
    from engine.prior import Prior

    return Prior.load(tiny_prior_dir / "tiny.safetensors")
