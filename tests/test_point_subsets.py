"""Fitting steps that measure the distortion on a random subset of the grid points (fitting.PointSubsets)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import latent, siren
from engine.codec import run
from engine.config import GROUP_CAP, MARGIN, PRESETS, FitConfig
from engine.fitting import Objective, PointSubsets, masked_mse, new_state, point_subsets
from engine.patch_codec import decode_image, encode_image_batch

from .conftest import photo


def _field(prior, n_units=4, points=None):
    p = prior.patch
    emb = siren.fourier_embed(siren.grid_coords((p, p)), prior.inr)
    if points is not None:
        emb = emb[points]
    return prior.field(emb, "cpu", latent.uniform_canvases(1, 2, n_units // 2), points)


def test_presets_keep_their_effort_per_coder():
    fit = FitConfig(steps=100)
    img = fit.for_modality("image")
    assert (img.points, img.steps) == (0.25, 400)              # four times the steps, each on a quarter of the points
    assert fit.for_modality("audio").points == 1.0 and fit.for_modality("audio").steps == 100
    assert fit.for_modality("whole image").steps == 100
    explicit = FitConfig(steps=100, points=0.5).for_modality("image")
    assert (explicit.points, explicit.steps) == (0.5, 100)     # a fraction given is used as it is
    assert img.for_modality("image") == img                    # resolving twice changes nothing


def test_the_patch_coder_codes_in_more_groups_up_to_the_cap():
    fast, best = PRESETS["fast"], PRESETS["best"]
    assert fast.for_modality("image").refine_groups == min(GROUP_CAP, 3 * fast.refine_groups) > fast.refine_groups
    assert best.for_modality("image").refine_groups == best.refine_groups == GROUP_CAP   # never fewer, never more
    assert fast.for_modality("audio").refine_groups == fast.refine_groups
    assert fast.for_modality("whole image").refine_groups == 2 * fast.refine_groups   # 32x32 images: twice
    assert PRESETS["default"].for_modality("whole image").refine_groups == GROUP_CAP
    assert fast.for_modality("whole image").shortlist == 8 and fast.for_modality("image").shortlist == 8
    assert FitConfig(shortlist=1).for_modality("image").shortlist == 1   # --shortlist 1: the largest q/p
    explicit = FitConfig(refine_groups=5, points=0.5).for_modality("image")
    assert explicit.refine_groups == 5                          # a config that sets its points is used as it is


def test_a_subset_is_the_same_points_of_the_whole_field(latent_prior):
    torch.manual_seed(0)
    field = _field(latent_prior)
    flat = latent_prior.tensors("cpu")[0].expand(4, -1) + 0.05 * torch.randn(4, latent_prior.n_params)
    full = field(flat)                                         # (4, p*p, 3)
    sel = torch.tensor([0, 5, 17, 100, 255])
    assert torch.allclose(field.at(sel)(flat), full[:, sel], atol=1e-6)


def test_draws_are_fresh_sized_and_follow_the_seed(latent_prior):
    field = _field(latent_prior)
    a, b = PointSubsets(field, 0.25, seed=3), PointSubsets(field, 0.25, seed=3)
    first = [a.draw() for _ in range(3)]
    assert all(len(s) == field.grid // 4 for s in first)
    assert all(torch.equal(s, b.draw()) for s in first)        # the seed alone sets the stream
    assert not torch.equal(first[0], first[1])                 # every step a new subset
    assert point_subsets(field, 1.0, 0) is None                # the whole grid: nothing to draw


def test_a_field_with_some_points_sees_the_drawn_points_among_them(latent_prior):
    p = latent_prior.patch
    kept = torch.arange(0, p * p, 2)                           # every other grid point
    full, part = _field(latent_prior), _field(latent_prior, points=kept)
    a, b = PointSubsets(full, 0.5, seed=1), PointSubsets(part, 0.5, seed=1)
    for _ in range(4):
        s_full, s_part = a.draw(), b.draw()
        drawn = s_full[s_full % 2 == 0]                        # the same draw, restricted to the kept points
        assert torch.equal(kept[s_part], drawn)


def test_subset_mse_estimates_the_whole_mse(latent_prior):
    torch.manual_seed(1)
    field = _field(latent_prior)
    n = latent_prior.n_params
    mu_p, ls_p = latent_prior.tensors("cpu")
    target = torch.rand(4, field.grid, 3) - 0.5
    flat = mu_p.expand(4, -1) + 0.05 * torch.randn(4, n)
    whole = masked_mse(field(flat), target, None)
    obj = Objective(field, target, mu_p, ls_p, points=PointSubsets(field, 0.25, seed=0))
    est = torch.stack([obj.distortion(flat) for _ in range(200)]).mean(0)
    assert torch.allclose(est, whole, rtol=0.03)
    one = obj.distortion(flat)
    assert not torch.allclose(one, whole, rtol=1e-4)          # a single draw is a different (noisy) value


def test_fitting_on_subsets_still_fits(latent_prior):
    """Steps on a quarter of the points bring the whole-grid error down as full steps do."""
    torch.manual_seed(2)
    field = _field(latent_prior)
    mu_p, ls_p = latent_prior.tensors("cpu")
    img = torch.from_numpy(photo(32, 32, seed=5)).float() / 255 - 0.5
    target = img.reshape(2, 16, 2, 16, 3).permute(0, 2, 1, 3, 4).reshape(4, 256, 3)
    obj = Objective(field, target, mu_p, ls_p, points=PointSubsets(field, 0.25, seed=0))
    st = new_state(mu_p.expand(4, -1), (ls_p - 3).expand(4, -1), torch.full((4, 1), 1e-7), 1e-2)
    before = float(obj.mean_mse(st).mean())
    gen = torch.Generator().manual_seed(0)
    for _ in range(150):
        obj.step(st, gen)
    assert float(obj.mean_mse(st).mean()) < 0.5 * before


@pytest.mark.parametrize("shape", [(33, 20), (16, 48)])
def test_subset_encodes_decode_exactly_and_do_not_depend_on_the_batch(latent_prior, latent_prior_dir, shape):
    fit = FitConfig(steps=40, refine_first=4, refine_last=2, refine_groups=3)
    a, b = photo(*shape, seed=7), photo(40, 40, seed=8)
    alone = run(encode_image_batch([a], 2.0, prior=latent_prior, fit=fit, preview_every=0))[0]
    both = run(encode_image_batch([a, b], 2.0, prior=latent_prior, fit=fit, preview_every=0))
    assert alone.data == both[0].data
    assert np.array_equal(decode_image(alone.data, [str(latent_prior_dir)]), alone.reconstruction)


def test_block_kl_margin_by_modality():
    """Photos hold each block's KL 2 bits above kappa by default (config.MARGIN); speech and 32x32 images keep
    kappa; a margin set in the config wins."""
    fit = FitConfig()
    assert fit.margin == 0.0                                   # unresolved: no margin
    assert fit.for_modality("image").margin == MARGIN["image"] == -2.0
    assert fit.for_modality("audio").margin == 0.0 and fit.for_modality("whole image").margin == 0.0
    assert FitConfig(kl_margin_bits=1.0).for_modality("image").margin == 1.0


def test_the_coder_steers_block_kl_by_the_margin(patch_prior):
    """Blocks reach coding near kappa - margin bits: a margin of -2 codes blocks about 2 bits richer."""
    from engine.codec import Reporting, UnitBatch, _members, code_units

    p = patch_prior.patch
    gen = np.random.default_rng(3)
    target = torch.from_numpy(gen.uniform(-0.4, 0.4, (2, p * p, 3))).float()
    field = patch_prior.field(siren.fourier_embed(siren.grid_coords((p, p)), patch_prior.inr), "cpu")

    def mean_kl(margin):
        fit = FitConfig(steps=250, refine_first=3, refine_last=1, refine_groups=4, points=1.0, shortlist=1,
                        kl_margin_bits=margin)
        batch = UnitBatch(target, field, [_members(patch_prior, 6)], unit_class=np.zeros(2, int),
                          unit_ids=np.arange(2))
        _, kl = run(code_units(batch, patch_prior, fit, torch.device("cpu"), 0, Reporting(None)))
        return float(np.mean(kl))

    k0, k2 = mean_kl(0.0), mean_kl(-2.0)
    assert abs(k0 - patch_prior.kappa) < 2.0 and 1.0 < k2 - k0 < 3.0, (k0, k2)
