"""Latent-grid patch priors: stitching without seams, the prior file, exact encode/decode, bands, odd sizes,
and resumable learning."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine import latent
from engine.codec import run
from engine.config import InrConfig, LatentConfig, LearnConfig
from engine.errors import PriorError
from engine.learn import learn_prior
from engine.patch_codec import decode_image_full, encode_image_batch
from engine.prior import Prior
from engine.signals import psnr_uint8

from .conftest import PATCH_FIT, photo, photo_patches

LAT = LatentConfig(levels=(8, 4, 2), channels=2)


def _random_upsampler(cfg: LatentConfig, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return latent.identity_upsampler(cfg) + 0.1 * torch.randn(cfg.n_upsampler, generator=g)


def _reference_features(lat: torch.Tensor, rows: int, cols: int, cfg: LatentConfig, p: int,
                        ups: torch.Tensor) -> torch.Tensor:
    """Independent reference: paste each patch's grids into a whole-image grid with explicit loops, then
    convolve and interpolate the whole image once -> (rows*cols, p*p, F)."""
    layers = latent.split_upsampler(ups, cfg)
    c, per_level, o = cfg.channels, [], 0
    for g, (w, b) in zip(cfg.levels, layers):
        big = torch.zeros(c, rows * g, cols * g)
        for u in range(rows * cols):
            r, q = divmod(u, cols)
            cell = lat[u, o:o + g * g * c].reshape(g, g, c).permute(2, 0, 1)
            big[:, r * g:(r + 1) * g, q * g:(q + 1) * g] = cell
        o += g * g * c
        big = F.conv2d(F.pad(big[None] * cfg.scale, [cfg.kernel // 2] * 4, mode="replicate"), w, b)
        per_level.append(F.interpolate(big, size=(rows * p, cols * p), mode="bilinear", align_corners=False)[0])
    img = torch.cat(per_level, 0)  # (F, rows*p, cols*p)
    out = torch.empty(rows * cols, p * p, cfg.features)
    for u in range(rows * cols):
        r, q = divmod(u, cols)
        out[u] = img[:, r * p:(r + 1) * p, q * p:(q + 1) * p].permute(1, 2, 0).reshape(p * p, -1)
    return out


def test_stitched_features_equal_one_whole_image_upsampling():
    rows, cols, p = 2, 3, 16
    lat = torch.randn(rows * cols, LAT.n_latents) * 0.05
    ups = _random_upsampler(LAT)
    got = latent.features(lat, latent.uniform_canvases(1, rows, cols), LAT, p, ups)
    assert torch.allclose(got, _reference_features(lat, rows, cols, LAT, p, ups), atol=1e-5)


def test_a_band_with_context_equals_its_rows_of_the_whole_image():
    rows, cols, p = 4, 2, 16
    lat = torch.randn(rows * cols, LAT.n_latents) * 0.05
    ups = _random_upsampler(LAT, 1)
    whole = latent.features(lat, latent.uniform_canvases(1, rows, cols), LAT, p, ups)
    # rows 1..2 in the batch, rows 0 and 3 as context (the encoder's band layout)
    cells = torch.tensor([-1, -1, 0, 1, 2, 3, -1, -1])
    band = latent.features(lat[2:6], [latent.Canvas(4, 2, cells, lat.clone())], LAT, p, ups)
    assert torch.allclose(band, whole[2:6], atol=1e-5)


def test_no_seams_between_patches():
    """Across a patch border the features change no more than inside a patch (edge jump <= 2x interior)."""
    rows, cols, p = 3, 3, 16
    lat = torch.randn(rows * cols, LAT.n_latents) * 0.05
    f = latent.features(lat, latent.uniform_canvases(1, rows, cols), LAT, p, _random_upsampler(LAT, 2))
    img = f.reshape(rows, cols, p, p, -1).permute(0, 2, 1, 3, 4).reshape(rows * p, cols * p, -1)
    dx = (img[:, 1:] - img[:, :-1]).abs().mean(dim=(0, 2))   # (cols*p - 1,) mean jump between columns
    border = dx[[q * p - 1 for q in range(1, cols)]]
    interior = dx[[k for k in range(cols * p - 1) if (k + 1) % p]]
    assert border.max() <= 2.0 * interior.mean()
    # the same latents coded as independent patches (no stitching) do show seams
    f1 = latent.features(lat, latent.uniform_canvases(rows * cols, 1, 1), LAT, p, _random_upsampler(LAT, 2))
    img1 = f1.reshape(rows, cols, p, p, -1).permute(0, 2, 1, 3, 4).reshape(rows * p, cols * p, -1)
    dx1 = (img1[:, 1:] - img1[:, :-1]).abs().mean(dim=(0, 2))
    assert dx1[[q * p - 1 for q in range(1, cols)]].max() > 2.0 * dx1[[k for k in range(cols * p - 1) if (k + 1) % p]].mean()


def test_latent_prior_round_trips_through_its_file(latent_prior, latent_prior_dir, tmp_path):
    assert latent_prior.latent == LatentConfig(levels=(8, 4, 2), channels=1)
    assert latent_prior.n_params == latent_prior.latent.n_latents + latent_prior.inr.n_params
    assert not np.allclose(latent_prior.upsampler, latent.identity_upsampler(latent_prior.latent).numpy())
    # latents are coded first
    assert set(latent_prior.order[:latent_prior.latent.n_latents]) == set(range(latent_prior.latent.n_latents))
    latent_prior.save(tmp_path / "copy.safetensors")
    again = Prior.load(tmp_path / "copy.safetensors")
    assert again.id == latent_prior.id and again.latent == latent_prior.latent
    assert np.array_equal(again.upsampler, latent_prior.upsampler)
    # the upsampler is part of the prior's identity
    bad = Prior(**{**again.__dict__, "upsampler": again.upsampler + 1.0})
    assert bad.id != again.id
    # an upsampler that does not fit the grids is refused
    broken = Prior(**{**again.__dict__, "upsampler": again.upsampler[:-1]})
    broken.save(tmp_path / "broken.safetensors")
    with pytest.raises(PriorError):
        Prior.load(tmp_path / "broken.safetensors")


@pytest.mark.parametrize("shape", [(1, 1), (65, 33), (40, 50)])
def test_latent_encode_decodes_exactly_at_odd_sizes(latent_prior, latent_prior_dir, shape):
    img = photo(*shape, seed=7)
    res = run(encode_image_batch([img], 2.0, prior=latent_prior, fit=PATCH_FIT))[0]
    out, hdr, pr = decode_image_full(res.data, prior_dirs=[latent_prior_dir])
    assert pr.id == latent_prior.id and hdr.patch == 16
    assert np.array_equal(out, res.reconstruction) and out.shape == img.shape
    assert abs(res.bpp - 2.0) / 2.0 < 0.05 or shape == (1, 1)


def test_latent_codec_learns_real_content_and_bands_decode_exactly(latent_prior, latent_prior_dir):
    img = photo(48, 64, seed=8)
    whole = run(encode_image_batch([img], 2.0, prior=latent_prior, fit=PATCH_FIT))[0]
    flat = np.full_like(img, int(img.mean()))
    assert whole.psnr > psnr_uint8(img, flat) + 3.0  # better than the image's mean colour
    # an image fitted in bands of one patch row (more patches than a batch holds) still decodes exactly
    bands = run(encode_image_batch([img], 2.0, prior=latent_prior, fit=PATCH_FIT, max_units=4))[0]
    out, _, _ = decode_image_full(bands.data, prior_dirs=[latent_prior_dir])
    assert np.array_equal(out, bands.reconstruction)
    assert bands.psnr > whole.psnr - 2.0


def test_latent_batch_equals_single(latent_prior):
    a, b = photo(40, 40, seed=9), photo(20, 56, seed=10)
    both = run(encode_image_batch([a, b], 2.0, prior=latent_prior, fit=PATCH_FIT))
    alone = run(encode_image_batch([a], 2.0, prior=latent_prior, fit=PATCH_FIT))[0]
    assert both[0].data == alone.data


def test_latent_learning_resumes_from_checkpoint(tmp_path):
    lat = LatentConfig(levels=(4, 2), channels=1)
    cfg = LearnConfig(rate_bpp=1.0, n_items=3, batch=12, first_steps=12, round_steps=6, rounds=2, warmup=4,
                      latent=lat, tile=2, inr=InrConfig(width=6, depth=2, n_freqs=2, max_freq=4.0,
                                                        features=lat.features))
    data = photo_patches(3, size=32, seed=5)
    full = run(learn_prior(data, cfg, torch.device("cpu"), patch=16))
    ck = tmp_path / "ck.pt"
    gen = learn_prior(data, cfg, torch.device("cpu"), checkpoint=ck, patch=16)
    for ev in gen:
        if ev.round == 1:
            break
    gen.close()
    resumed = run(learn_prior(data, cfg, torch.device("cpu"), checkpoint=ck, patch=16))
    assert resumed.mu.shape == full.mu.shape and resumed.upsampler.shape == full.upsampler.shape
    assert np.corrcoef(resumed.mu, full.mu)[0, 1] > 0.9
    assert np.allclose(resumed.upsampler, full.upsampler, atol=0.05)


def test_shared_decoder_prior_codes_latents_only(tmp_path, shared_prior_dir):
    """A latent prior whose INR lives in the prior: files hold the latent grids only and decode exactly."""
    prior = Prior.load(shared_prior_dir / "shared.safetensors")
    assert prior.latent.shared and prior.n_params == prior.latent.n_latents
    assert prior.inr_weights.shape == (prior.inr.n_params,)
    prior.save(tmp_path / "shared.safetensors")
    again = Prior.load(tmp_path / "shared.safetensors")
    assert again.id == prior.id and np.array_equal(again.inr_weights, prior.inr_weights)
    img = photo(40, 24, seed=11)
    res = run(encode_image_batch([img], 2.0, prior=again, fit=PATCH_FIT))[0]
    out, _, _ = decode_image_full(res.data, prior_dirs=[tmp_path])
    assert np.array_equal(out, res.reconstruction)
    assert res.psnr > psnr_uint8(img, np.full_like(img, int(img.mean())))


def test_patch_prior_choice_prefers_the_latest_latent_stage():
    """At equal rate distance a latent-grid prior wins over a plain one and the most-trained stage over earlier
    ones (a later stage has the earlier stages in its history)."""
    from engine.prior import available, nearest_patch

    chosen = nearest_patch(0.3)
    same = [p for p in available() if p.patch and p.rate == chosen.rate]
    if not any(p.latent is not None for p in same):
        pytest.skip("no shipped latent patch prior")
    assert chosen.latent is not None
    assert chosen.train_steps == max(p.train_steps for p in same if p.latent is not None)
    assert chosen.train_steps > sum(int(h["first_steps"]) for h in chosen.info["history"])


def test_patch_prior_choice_prefers_a_stage_learned_with_crop_deltas(monkeypatch, patch_prior_dir):
    """At the same rate a prior whose last stage learned with crop deltas (as the encoder codes photos) wins
    over one trained longer without them; between two such stages, the longer one."""
    import dataclasses

    import engine.prior as prior_mod

    base = next(p for p in prior_mod.available([str(patch_prior_dir)]) if p.patch)

    def made(name: str, steps: int, crop_delta: bool):
        learn = dict(first_steps=steps, rounds=0, round_steps=0, crop_delta=crop_delta)
        return dataclasses.replace(base, info=dict(name=name, history=[], learn=learn))

    plain, cd, cd_longer = made("long", 9300, False), made("cd", 9200, True), made("cd2", 9400, True)
    assert not plain.learned_with_deltas and cd.learned_with_deltas
    monkeypatch.setattr(prior_mod, "available", lambda extra=None: [plain, cd])
    assert prior_mod.nearest_patch(base.rate).info["name"] == "cd"
    monkeypatch.setattr(prior_mod, "available", lambda extra=None: [cd, plain, cd_longer])
    assert prior_mod.nearest_patch(base.rate).info["name"] == "cd2"


def test_a_latent_patch_prior_serves_the_rates_within_its_reach():
    """The shipped latent prior (trained at 0.3 bpp) is chosen over the plain priors nearer in rate within
    PATCH_LATENT_REACH (it measures 1.1-2.2 dB above them at 0.1, 0.5 and 1.0 bpp); beyond it, the nearest."""
    from engine.prior import PATCH_LATENT_REACH, available, nearest_patch

    lat = [p for p in available() if p.patch and p.latent is not None]
    plain = [p for p in available() if p.patch and p.latent is None]
    if not lat or not plain:
        pytest.skip("needs shipped latent and plain patch priors")
    for rate in (0.1, 0.5, 1.0):
        chosen = nearest_patch(rate)
        assert chosen.latent is not None and abs(np.log(chosen.rate / rate)) <= np.log(PATCH_LATENT_REACH)
    far = max(p.rate for p in lat) * PATCH_LATENT_REACH * 1.5
    chosen = nearest_patch(far)
    assert chosen.latent is None
    assert chosen.rate == min((p.rate for p in plain), key=lambda r: abs(np.log(r / far)))


def test_widening_a_shared_network_keeps_its_output_and_lets_new_units_learn():
    from engine import siren

    cfg = InrConfig(width=6, depth=2, n_freqs=2, max_freq=4.0, features=3)
    flat = siren.siren_init(cfg, 3)
    wide, wcfg = siren.widen(flat, cfg, 10, seed=1)
    assert wcfg.width == 10 and wide.shape == (wcfg.n_params,)
    emb = torch.rand(200, cfg.embed_dim) * 2 - 1
    feat = torch.randn(1, 200, 3)
    assert torch.allclose(siren.forward(flat[None], emb, cfg, feat=feat),
                          siren.forward(wide[None], emb, wcfg, feat=feat), atol=1e-6)
    # the new units are not dead: the zeroed weights out of them get a gradient at once, and after one step
    # so do the weights into them
    w = wide.clone().requires_grad_(True)
    siren.forward(w[None], emb, wcfg, feat=feat).square().sum().backward()
    (w1, _), (w2, _), (w3, _) = siren.unflatten(w.grad[None], wcfg)
    assert w2[0, 6:, :6].abs().sum() > 0 and w3[0, 6:].abs().sum() > 0
    w2_ = (w.detach() - 0.1 * w.grad).requires_grad_(True)
    siren.forward(w2_[None], emb, wcfg, feat=feat).square().sum().backward()
    assert siren.unflatten(w2_.grad[None], wcfg)[0][0][0, :, 6:].abs().sum() > 0
    with pytest.raises(ValueError):
        siren.widen(flat, cfg, 4)


def test_a_warm_start_widens_a_narrower_shared_prior(shared_prior_dir):
    """learn-prior --init-prior with a wider --width: the stage starts from the narrower prior's function and
    writes a prior of the new width; any other change of architecture is still refused."""
    init = Prior.load(shared_prior_dir / "shared.safetensors")
    wide_inr = InrConfig(**{**init.inr.__dict__, "width": init.inr.width + 4})
    cfg = LearnConfig(rate_bpp=2.0, n_items=2, batch=8, first_steps=6, round_steps=4, rounds=1, warmup=0,
                      beta_init=3e-7, latent=init.latent, tile=2, out_init_scale=0.1, inr=wide_inr)
    data = photo_patches(2, size=32, seed=9)
    out = run(learn_prior(data, cfg, torch.device("cpu"), init=init, patch=16))
    assert out.inr == wide_inr and out.inr_weights.shape == (wide_inr.n_params,)
    assert out.mu.shape == init.mu.shape
    deeper = InrConfig(**{**init.inr.__dict__, "depth": init.inr.depth + 1})
    with pytest.raises(ValueError, match="another architecture"):
        run(learn_prior(data, LearnConfig(**{**cfg.__dict__, "inr": deeper}), torch.device("cpu"), init=init,
                        patch=16))


def test_growing_latent_levels_keeps_the_output_and_the_new_latents_learn(shared_prior_dir):
    """learn.grow adds a finer and a coarser level (and widens the network): at the posterior means the grown
    prior renders what the old one rendered, its new latents get a gradient at once, and a warm start with
    the extra levels trains and writes a prior of the new layout. Dropping a level or changing the channels
    is refused."""

    from engine.learn import grow

    init = Prior.load(shared_prior_dir / "shared.safetensors")
    old = init.latent                                                    # levels (8, 4, 2), 2 channels
    lat = dataclasses.replace(old, levels=(16,) + old.levels[:2] + (1,) + old.levels[2:])   # 16, 8, 4, 1, 2
    inr = dataclasses.replace(init.inr, width=init.inr.width + 2, features=lat.features)
    new = grow(init, inr, lat, seed=2)
    assert new.latent == lat and new.inr == inr and new.mu.shape == (lat.n_latents,)
    assert new.post_logstd.shape == new.logstd.shape == new.mu.shape and new.upsampler.shape == (lat.n_upsampler,)
    emb = latent.siren.fourier_embed(latent.siren.grid_coords((16, 16)), init.inr)
    canvases = latent.uniform_canvases(1, 2, 3)
    g = torch.Generator().manual_seed(5)
    x = torch.from_numpy(init.mu) + torch.exp(torch.from_numpy(init.logstd)) * torch.randn(6, init.n_params, generator=g)
    # the old values land in their levels' places, the new levels' latents at their means (zero)
    y = torch.zeros(6, lat.n_latents)
    new_sl, old_sl = latent.level_slices(lat), latent.level_slices(old)
    for i, gsz in enumerate(lat.levels):
        if gsz in old.levels:
            y[:, new_sl[i]] = x[:, old_sl[old.levels.index(gsz)]]
        else:
            assert np.all(new.mu[new_sl[i]] == 0) and np.allclose(new.logstd[new_sl[i]], -np.log(lat.scale))
    f_old = latent.Field(init.inr, emb, None, old, torch.from_numpy(init.upsampler), canvases, 16,
                         shared=torch.from_numpy(init.inr_weights))
    f_new = latent.Field(inr, emb, None, lat, torch.from_numpy(new.upsampler), canvases, 16,
                         shared=torch.from_numpy(new.inr_weights))
    assert torch.allclose(f_old(x), f_new(y), atol=1e-5)
    y.requires_grad_(True)
    f_new(y).square().sum().backward()
    for i, gsz in enumerate(lat.levels):
        if gsz not in old.levels:
            assert y.grad[:, new_sl[i]].abs().sum() > 0
    cfg = LearnConfig(rate_bpp=2.0, n_items=2, batch=8, first_steps=6, round_steps=4, rounds=1, warmup=0,
                      beta_init=3e-7, latent=lat, tile=2, out_init_scale=0.1, inr=inr)
    out = run(learn_prior(photo_patches(2, size=32, seed=9), cfg, torch.device("cpu"), init=init, patch=16))
    assert out.latent == lat and out.mu.shape == (lat.n_latents,) and np.isfinite(out.mu).all()
    for bad in (dataclasses.replace(old, levels=old.levels[1:]), dataclasses.replace(old, channels=3)):
        with pytest.raises(ValueError, match="another architecture"):
            grow(init, dataclasses.replace(init.inr, features=bad.features), bad)


def test_growing_fourier_frequencies_keeps_the_output_and_the_new_ones_learn(shared_prior_dir):
    """learn.grow adds Fourier frequencies to a shared network (those of `init` kept, here 1 and 4 of
    1, 2, 4, 8 in 2-D): at the same latents the grown network renders what the old one rendered, the new
    frequencies' input weights get a gradient, and a frequency set that drops one of the old is refused."""
    from engine.learn import _freq_rows, grow

    init = Prior.load(shared_prior_dir / "shared.safetensors")
    assert (init.inr.n_freqs, init.inr.max_freq) == (2, 4.0)             # frequencies 1 and 4
    inr = dataclasses.replace(init.inr, n_freqs=4, max_freq=8.0)          # 1, 2, 4, 8
    new = grow(init, inr, init.latent, seed=2)
    assert new.inr == inr and np.array_equal(new.mu, init.mu) and np.array_equal(new.upsampler, init.upsampler)
    coords = latent.siren.grid_coords((16, 16))
    canvases = latent.uniform_canvases(1, 2, 3)
    g = torch.Generator().manual_seed(5)
    x = (torch.from_numpy(init.mu)
         + torch.exp(torch.from_numpy(init.logstd)) * torch.randn(6, init.n_params, generator=g))
    f_old = latent.Field(init.inr, latent.siren.fourier_embed(coords, init.inr), None, init.latent,
                         torch.from_numpy(init.upsampler), canvases, 16, shared=torch.from_numpy(init.inr_weights))
    w = torch.from_numpy(new.inr_weights).requires_grad_(True)
    f_new = latent.Field(inr, latent.siren.fourier_embed(coords, inr), None, init.latent,
                         torch.from_numpy(new.upsampler), canvases, 16, shared=w)
    out = f_new(x)
    assert torch.allclose(f_old(x), out, atol=1e-5)
    out.square().sum().backward()
    rows = _freq_rows(init.inr, inr)                                      # -1 marks the new frequencies' rows
    first = w.grad[:inr.layer_shapes()[0][0] * inr.width].reshape(-1, inr.width)
    fresh = [i for i, j in enumerate(rows) if j < 0]
    assert len(fresh) == 2 * 2 * 2 and first[fresh].abs().sum() > 0       # 2 new frequencies x 2 axes x sin/cos
    w0 = torch.from_numpy(new.inr_weights)[:inr.layer_shapes()[0][0] * inr.width].reshape(-1, inr.width)
    assert torch.all(w0[fresh] == 0)
    with pytest.raises(ValueError, match="another architecture"):        # 1, 2 lacks the old 4
        grow(init, dataclasses.replace(init.inr, n_freqs=2, max_freq=2.0), init.latent)


def test_fourier_rows_map_every_old_feature_in_one_dimension():
    """In 1-D (audio) frequencies 1 and 2 grown to 1, 2, ..., 256: the coordinate, then sin and cos of each old
    frequency keep their rows; the new ones are marked -1."""
    from engine.learn import _freq_rows

    old = InrConfig(in_dim=1, width=8, depth=2, n_freqs=2, max_freq=2.0)
    rows = _freq_rows(old, dataclasses.replace(old, n_freqs=9, max_freq=256.0))
    assert rows == [0, 1, 2] + [-1] * 7 + [3, 4] + [-1] * 7
    assert _freq_rows(old, old) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("dim", [2, 1])
def test_recomputing_the_changed_levels_equals_recomputing_all(dim):
    """Field.units with the features of a nearby vector recomputes only the levels whose latents changed,
    and gives what the whole field gives for those units."""
    cfg = LatentConfig(levels=(8, 4, 2), channels=2, dim=dim)
    inr = InrConfig(in_dim=dim, width=8, depth=2, n_freqs=2, max_freq=4.0, features=cfg.features)
    p, n = (16, 6) if dim == 2 else (32, 5)
    coords = latent.siren.grid_coords((p,) * dim)
    emb = latent.siren.fourier_embed(coords, inr)
    canvases = latent.uniform_canvases(1, 2, 3) if dim == 2 else [latent.Canvas(1, n, torch.arange(n))]
    g = torch.Generator().manual_seed(3)
    field = latent.Field(inr, emb, None, cfg, _random_upsampler(cfg), canvases, p,
                         shared=0.3 * torch.randn(inr.n_params, generator=g))
    base = 0.05 * torch.randn(n, cfg.n_latents, generator=g)
    like = field.features(base)
    rows = torch.tensor([1, 3, 4])
    changed = torch.tensor([0, 5, cfg.n_latents - 1])      # the finest and the coarsest level
    moved = base.clone()
    moved[rows[:, None], changed] += 0.2
    got = field.units(moved, rows, like, changed)
    assert torch.allclose(got, field(moved)[rows], atol=1e-6)
    assert torch.allclose(field.units(moved, rows), field(moved)[rows], atol=1e-6)


@pytest.mark.parametrize("dim", [2, 1])
def test_features_at_a_subset_equal_those_points_of_the_whole(dim):
    """A fitting step's subset of points (features(at=...), Field.at) gets the values the whole grid has there
    (exactly in 1-D; in 2-D up to float rounding, as the points are interpolated on their own), with and
    without context rows, and gradients reach only the latents that feed those points."""
    cfg = LatentConfig(levels=(8, 4, 2), channels=2, dim=dim)
    p, n = (16, 8) if dim == 2 else (32, 5)
    g = torch.Generator().manual_seed(4)
    lat = (0.05 * torch.randn(n, cfg.n_latents, generator=g)).requires_grad_(True)
    ups = _random_upsampler(cfg, 5)
    canvases = latent.uniform_canvases(1, 4, 2) if dim == 2 else [latent.Canvas(1, n, torch.arange(n))]
    at = torch.randperm(p ** dim, generator=g)[:p ** dim // 5].sort().values
    whole = latent.features(lat, canvases, cfg, p, ups)
    sub = latent.features(lat, canvases, cfg, p, ups, at=at)
    assert sub.shape == (n, len(at), cfg.features)
    assert torch.equal(sub, whole[:, at]) if dim == 1 else torch.allclose(sub, whole[:, at], atol=1e-6)
    assert latent.features(lat, canvases, cfg, p, ups, at=at[:0]).shape == (n, 0, cfg.features)   # none drawn
    gw, = torch.autograd.grad(whole[:, at].square().sum(), lat)
    gs, = torch.autograd.grad(sub.square().sum(), lat)
    assert torch.allclose(gs, gw, rtol=1e-5, atol=1e-6 * float(gw.abs().max())) and gs.abs().sum() > 0
    if dim == 2:   # a band of rows 1..2 with the others as context
        cells = torch.tensor([-1, -1, 0, 1, 2, 3, -1, -1])
        band = latent.features(lat[2:6], [latent.Canvas(4, 2, cells, lat.detach().clone())], cfg, p, ups, at=at)
        assert torch.allclose(band, whole[2:6, at], atol=1e-6)


@pytest.mark.parametrize("dim,layouts", [(2, 1), (1, 1), (2, 2)])
def test_a_batch_in_its_layouts_in_order_gets_what_the_gathered_path_gives(dim, layouts):
    """The shortcut for layouts holding the whole batch in order (a clip, a whole image, uniform training crops)
    gives, values and gradients bit for bit, what the general path (layouts gathered from the batch and
    scattered back) gives for the same layouts with the batch in another order."""
    cfg = LatentConfig(levels=(8, 4, 2), channels=2, dim=dim)
    p, (rows, cols) = (16, (2, 3)) if dim == 2 else (32, (1, 5))
    k = rows * cols
    n = layouts * k
    g = torch.Generator().manual_seed(6)
    lat = (0.05 * torch.randn(n, cfg.n_latents, generator=g)).requires_grad_(True)
    ups = _random_upsampler(cfg, 7)
    at = torch.randperm(p ** dim, generator=g)[:p ** dim // 4].sort().values
    perm = torch.randperm(n, generator=g)
    while bool((perm == torch.arange(n)).all()):
        perm = torch.randperm(n, generator=g)
    where = torch.argsort(perm)    # where[u]: unit u's place in the shuffled batch
    for pts in (None, at):
        one = latent.features(lat, latent.uniform_canvases(layouts, rows, cols), cfg, p, ups, at=pts)
        # the same layouts over the shuffled batch: their cells name each unit's new place
        shuffled = [latent.Canvas(rows, cols, where[i * k:(i + 1) * k]) for i in range(layouts)]
        two = latent.features(lat[perm], shuffled, cfg, p, ups, at=pts)[where]
        assert torch.equal(one, two)
        w = torch.randn(one.shape, generator=g)
        g1, = torch.autograd.grad((one * w).sum(), lat)
        g2, = torch.autograd.grad((two * w).sum(), lat)
        assert torch.equal(g1, g2) and g1.abs().sum() > 0


@pytest.mark.parametrize("features", [5, 0])
def test_one_network_for_the_batch_computes_what_one_network_per_unit_does(features):
    """A shared network's flat vector expanded over the batch runs as one matrix product per layer
    (siren._forward_one): the same outputs as B copies of it, and the gradient reaching the shared vector is
    the sum of the copies' gradients."""
    cfg = InrConfig(in_dim=2, out_dim=3, width=16, depth=2, n_freqs=2, max_freq=4.0, features=features)
    g = torch.Generator().manual_seed(11)
    emb = latent.siren.fourier_embed(torch.rand(37, 2, generator=g) * 2 - 1, cfg)
    feat = torch.randn(4, 37, features, generator=g) if features else None
    w = (0.3 * torch.randn(cfg.n_params, generator=g)).requires_grad_(True)
    rows = w.detach().clone()[None].repeat(4, 1).requires_grad_(True)
    one = latent.siren.forward(w.expand(4, -1), emb, cfg, feat=feat)
    each = latent.siren.forward(rows, emb, cfg, feat=feat)
    assert one.shape == (4, 37, 3) and torch.allclose(one, each, atol=1e-5)
    one.square().sum().backward()
    each.square().sum().backward()
    assert torch.allclose(w.grad, rows.grad.sum(0), rtol=1e-4, atol=1e-4)


def test_shared_networks_hold_still_during_their_warmup(shared_prior_dir):
    """--shared-warmup: while a warm start refits its posteriors, the upsampler and the shared INR do not move;
    after it they learn."""
    init = Prior.load(shared_prior_dir / "shared.safetensors")
    cfg = LearnConfig(rate_bpp=2.0, n_items=2, batch=8, first_steps=6, round_steps=4, rounds=1, warmup=0,
                      beta_init=init.beta, latent=init.latent, tile=2, out_init_scale=0.1, ups_lr=5e-3,
                      inr=init.inr, shared_warmup=10)
    data = photo_patches(2, size=32, seed=9)
    held = run(learn_prior(data, cfg, torch.device("cpu"), init=init, patch=16))
    assert np.array_equal(held.upsampler, init.upsampler) and np.array_equal(held.inr_weights, init.inr_weights)
    assert not np.array_equal(held.mu, init.mu)                     # the prior itself was updated
    moved = run(learn_prior(data, dataclasses.replace(cfg, shared_warmup=6), torch.device("cpu"), init=init,
                            patch=16))
    assert not np.array_equal(moved.upsampler, init.upsampler)
    assert not np.array_equal(moved.inr_weights, init.inr_weights)


def test_the_shifted_convolution_matches_conv2d_and_a_pixel_level_is_not_interpolated():
    """The upsampler's k x k convolution as shifted copies (latent._conv_shifted) gives conv2d's values and
    gradients to float rounding, for one and two channels; a level of one cell per pixel (g = p) gives its
    convolved cells unchanged, as bilinear upsampling to the same size would."""
    import torch.nn.functional as F
    from engine.config import LatentConfig
    from engine.latent import _conv_shifted, _stitched_features, identity_upsampler, split_upsampler

    torch.manual_seed(0)
    for c in (1, 2):
        grid = torch.randn(2, c, 11, 17, requires_grad=True)
        w, b = torch.randn(c, c, 3, 3), torch.randn(c)
        want = F.conv2d(grid, w, b)
        got = _conv_shifted(grid, w, b)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
        g1, = torch.autograd.grad(want.square().sum(), grid)
        g2, = torch.autograd.grad(got.square().sum(), grid)
        assert torch.allclose(g1, g2, atol=1e-4)
    cfg = LatentConfig(levels=(8, 4), channels=1, kernel=3, scale=1.0, shared=True)
    ups = split_upsampler(identity_upsampler(cfg) + 0.1 * torch.randn(cfg.n_upsampler), cfg)
    lat = torch.randn(1, 2 * 3, 8 * 8 + 4 * 4)
    f = _stitched_features(lat, 2, 3, cfg, 8, ups, [0, 1])                                # (1, 6, 64, 2)
    grid = lat[:, :, :64].reshape(1, 2, 3, 8, 8, 1).permute(0, 5, 1, 3, 2, 4).reshape(1, 1, 16, 24)
    want = F.conv2d(F.pad(grid, [1] * 4, mode="replicate"), *ups[0])                       # (1, 1, 16, 24)
    want = F.interpolate(want, size=(16, 24), mode="bilinear", align_corners=False)
    want = want.reshape(1, 2, 8, 3, 8).permute(0, 1, 3, 2, 4).reshape(1, 6, 64)
    assert torch.allclose(f[..., 0], want, atol=1e-5)
    at = torch.tensor([0, 9, 63])
    assert torch.allclose(_stitched_features(lat, 2, 3, cfg, 8, ups, [0, 1], at), f[:, :, at], atol=1e-5)
