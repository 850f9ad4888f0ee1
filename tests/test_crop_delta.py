"""Prior learning with a network delta per training crop (`LearnConfig.crop_delta`, `hierarchy.CropDeltas`):
the shared-network prior is learned as the encoder uses it, each crop's patches rendered with the shared
network plus the crop's own coded-in-the-rate delta."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import hierarchy
from engine.cli import main as cli_main
from engine.config import InrConfig, LatentConfig, LearnConfig
from engine.learn import learn_prior
from engine.patch_codec import decode_image_full, encode_image_batch
from engine.codec import run

from .conftest import PATCH_FIT, photo, photo_patches

LAT = LatentConfig(levels=(8, 4, 2), channels=2, shared=True)
INR = InrConfig(width=10, depth=2, n_freqs=2, max_freq=4.0, features=LAT.features)
TARGET_BITS = 2.0 * 16 * 16   # rate_bpp x the patch's pixels


def _cfg(**kw) -> LearnConfig:
    return LearnConfig(**{**dict(rate_bpp=2.0, n_items=4, batch=16, first_steps=100, round_steps=50, rounds=3,
                                 warmup=30, beta_init=3e-7, beta_step=0.05, latent=LAT, tile=2, out_init_scale=0.1,
                                 ups_lr=5e-3, inr=INR), **kw})


def _learn(cfg: LearnConfig, **kw):
    """(prior, the learner's events)"""
    gen, events = learn_prior(photo_patches(4, size=32, seed=6), cfg, torch.device("cpu"), patch=16, **kw), []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return stop.value, events


@pytest.fixture(scope="module")
def learned():
    torch.manual_seed(0)
    return _learn(_cfg(crop_delta=True)), _learn(_cfg())


def test_the_crops_deltas_are_paid_from_the_rate(learned):
    """The rate controller holds latents plus deltas to the target, so the latents get less than all of it."""
    (with_d, ev_d), (plain, ev_p) = learned
    for ev in (ev_d[-1], ev_p[-1]):
        assert abs(ev.kl_bits - TARGET_BITS) / TARGET_BITS < 0.2   # the controller still settling after an M-step
    assert with_d.info["train_delta_kl_bits"] > 0.1 * TARGET_BITS
    assert with_d.info["train_kl_bits"] < 0.8 * plain.info["train_kl_bits"]
    assert "train_delta_kl_bits" not in plain.info
    assert len(with_d.info["train_delta_log2_scales"]) == len(INR.layer_shapes())
    assert with_d.info["learn"]["crop_delta"] is True
    assert not np.allclose(with_d.inr_weights, plain.inr_weights)


def test_a_prior_learned_with_crop_deltas_codes_images_exactly(learned, tmp_path):
    (prior, _), _ = learned
    prior.save(tmp_path / "cd.safetensors")
    img = photo(40, 56, seed=3)
    res = run(encode_image_batch([img], 2.0, prior=prior, fit=PATCH_FIT))[0]
    out, hdr, pr = decode_image_full(res.data, prior_dirs=[tmp_path])
    assert pr.id == prior.id and hdr.delta_blocks > 0
    assert np.array_equal(out, res.reconstruction)
    assert abs(res.bpp - 2.0) / 2.0 < 0.05


def test_every_patch_renders_with_its_own_crops_delta():
    """Crops are runs of `per_crop` consecutive patches (as latent.uniform_canvases lays them out)."""
    shared = torch.randn(INR.n_params)
    d = hierarchy.CropDeltas(INR, shared, crops=[3, 2], per_crop=4, lr=1e-3, lr_std=1e-2, beta0=torch.ones(1, 1))
    with torch.no_grad():
        d.states[0].mu.copy_(torch.arange(3.0)[:, None].expand(3, INR.n_params))
        d.states[1].mu.fill_(-1.0)
    w = d.weights(0, shared, None)                                                  # (12, P_inr)
    assert w.shape == (12, INR.n_params)
    assert torch.equal(w, shared + torch.arange(3.0).repeat_interleave(4)[:, None])
    assert torch.equal(d.weights(1, shared, None), (shared - 1.0).expand(8, INR.n_params))   # chunk 1's own crops
    noisy = d.weights(0, shared, torch.Generator().manual_seed(0))
    assert not torch.equal(noisy, w)


def test_the_closed_form_scales_minimise_the_deltas_kl():
    shared = torch.randn(INR.n_params)
    d = hierarchy.CropDeltas(INR, shared, crops=[3, 2], per_crop=4, lr=1e-3, lr_std=1e-2, beta0=torch.ones(1, 1))
    with torch.no_grad():
        for st, s in zip(d.states, (0.3, 0.5)):   # two chunks of crops, one set of scales for both
            st.mu.normal_(0.0, s)
            st.logstd.fill_(-3.0)

    def kl() -> float:
        return float(sum(d.kl_bits(j).detach().sum() for j in range(2)))
    d.set_scales((d.layer_sums(0) + d.layer_sums(1)) / 5)
    best = kl()
    base = d.logstd_p.clone()
    for shift in (-0.1, 0.1):
        d.logstd_p = base + shift
        assert kl() > best


def test_learning_with_crop_deltas_resumes_from_its_checkpoint(tmp_path):
    """Stopped after round 0 and resumed, the run gives the uninterrupted run's prior bit for bit (every round
    seeds its own generators); a checkpoint whose crop deltas were reset gives another prior, so the deltas
    really are restored."""
    cfg = _cfg(crop_delta=True, rounds=2)
    full, _ = _learn(cfg)
    ck = tmp_path / "ck.pt"
    gen = learn_prior(photo_patches(4, size=32, seed=6), cfg, torch.device("cpu"), checkpoint=ck, patch=16)
    for ev in gen:
        if ev.round == 1:
            break
    gen.close()
    saved = torch.load(ck, weights_only=True)
    assert len(saved["delta_mu"]) == 1 and saved["delta_logstd_p"].shape == (INR.n_params,)
    assert float(saved["delta_mu"][0].abs().max()) > 0
    resumed, _ = _learn(cfg, checkpoint=ck)
    assert np.array_equal(resumed.mu, full.mu) and np.array_equal(resumed.logstd, full.logstd)
    assert np.array_equal(resumed.inr_weights, full.inr_weights)
    assert resumed.info["train_delta_log2_scales"] == full.info["train_delta_log2_scales"]
    saved["delta_mu"] = [torch.zeros_like(m) for m in saved["delta_mu"]]
    reset = tmp_path / "reset.pt"
    torch.save(saved, reset)
    other, _ = _learn(cfg, checkpoint=reset)
    assert not np.array_equal(other.inr_weights, full.inr_weights)


def test_crop_deltas_need_a_shared_network(tmp_path, capsys):
    with pytest.raises(ValueError):
        run(learn_prior(photo_patches(4, size=32, seed=6),
                        _cfg(crop_delta=True, latent=LatentConfig(levels=(8, 4, 2), channels=2)),
                        torch.device("cpu"), patch=16))
    rc = cli_main(["learn-prior", "--data", str(tmp_path), "--patch", "16", "--rate", "1", "--latent", "8,4",
                   "--crop-delta", "-o", str(tmp_path / "p.safetensors")])
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--crop-delta needs" in err[0]
