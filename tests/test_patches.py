"""Patch-coded images of any size, linear reparameterisation, and distributed prior learning."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from engine import container, siren
from engine.codec import run
from engine.config import InrConfig
from engine.errors import CmbFormatError
from engine.patch_codec import allocate, decode_image, decode_image_full, encode_image_batch, split_rgb, stitch
from engine.prior import Prior
from engine.signals import psnr_uint8
from engine.unit_coding import uniform

from .conftest import PATCH_FIT, photo


def test_split_and_stitch_are_inverse():
    img = photo(45, 70)
    patches, mask = split_rgb(img, 16)
    assert patches.shape == (3 * 5, 16, 16, 3) and mask.shape == (15, 256, 1)
    assert mask.sum() == 45 * 70
    assert np.array_equal(stitch(patches, 45, 70), img)


def test_reparam_prior_round_trips_and_identity_mix_is_plain(patch_prior, patch_prior_dir):
    assert patch_prior.patch == 16 and patch_prior.mix is not None
    assert not np.allclose(patch_prior.mix, siren.identity_mix(patch_prior.inr).numpy())  # A was learned
    inr = patch_prior.inr
    w = torch.randn(2, inr.n_params) * 0.1
    emb = siren.fourier_embed(siren.grid_coords((8, 8)), inr)
    eye = siren.split_mix(siren.identity_mix(inr), inr)
    assert torch.allclose(siren.forward(w, emb, inr, eye), siren.forward(w, emb, inr), atol=1e-6)



def test_networks_evaluated_a_few_at_a_time_give_what_one_call_gives(patch_prior, monkeypatch):
    """siren.forward splits a large batch of networks into calls of about CHUNK_ROWS points (activations that
    stay in cache): values and every gradient (weights, features) are bit-identical to one call over all."""
    inr = dataclasses.replace(patch_prior.inr, features=3)
    emb = siren.fourier_embed(siren.grid_coords((8, 8)), inr)                     # 64 points per network
    g = torch.Generator().manual_seed(3)
    w0 = torch.randn(11, inr.n_params, generator=g) * 0.1
    f0 = torch.randn(11, 64, 3, generator=g)
    mix = siren.split_mix(torch.from_numpy(patch_prior.mix).float(), inr)        # the reparameterised path

    def value_and_grads(rows_per_call):
        monkeypatch.setattr(siren, "CHUNK_ROWS", rows_per_call)
        w, f = w0.clone().requires_grad_(True), f0.clone().requires_grad_(True)
        out = siren.forward(w, emb, inr, mix, f)
        out.pow(2).sum().backward()
        return out.detach(), w.grad, f.grad

    whole = value_and_grads(1 << 30)
    for rows in (64, 3 * 64, 200):   # one network per call, three, and a count that does not divide the batch
        assert all(torch.equal(a, b) for a, b in zip(value_and_grads(rows), whole))


@pytest.mark.parametrize("weights_grad", [False, True])
def test_one_shared_network_over_many_units_a_few_at_a_time(monkeypatch, weights_grad):
    """A shared-network latent prior (speech) evaluates its one network over all units' points; while that
    network takes no gradient (a prior's fixed network) the units go a few at a time. Each row's products are
    the same, but BLAS may order a row's sum differently at another row offset, so values and feature gradients
    agree to float rounding. With a gradient on the network (a clip delta, prior learning) the rows stay in one
    product, so the weight gradient's sum keeps its order: every result is bit-identical to one call's."""
    inr = InrConfig(in_dim=1, out_dim=1, width=16, depth=2, n_freqs=2, max_freq=2.0, features=3)
    emb = siren.fourier_embed(siren.grid_coords((50,)), inr)                        # 50 points per unit
    g = torch.Generator().manual_seed(5)
    net0 = torch.randn(inr.n_params, generator=g) * 0.2
    f0 = torch.randn(13, 50, 3, generator=g)

    def value_and_grads(rows_per_call):
        monkeypatch.setattr(siren, "CHUNK_ROWS", rows_per_call)
        net, f = net0.clone().requires_grad_(weights_grad), f0.clone().requires_grad_(True)
        out = siren.forward(net.expand(13, -1), emb, inr, None, f)                # (13, 50, 1), one network
        out.pow(2).sum().backward()
        return out.detach(), f.grad, net.grad

    whole = value_and_grads(1 << 30)
    same = torch.equal if weights_grad else (lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6))
    for rows in (50, 4 * 50, 333):
        parts = value_and_grads(rows)
        assert same(parts[0], whole[0]) and same(parts[1], whole[1])
        assert (parts[2] is None) == (not weights_grad) and (parts[2] is None or torch.equal(parts[2], whole[2]))


def test_reparam_network_alone_equals_in_batch(patch_prior):
    """Values and gradients of a reparameterised network are the same alone and beside others (an encode of a
    one-patch image alone then matches its encode in a batch)."""
    inr = patch_prior.inr
    emb = siren.fourier_embed(siren.grid_coords((8, 8)), inr)
    mix = siren.split_mix(torch.from_numpy(patch_prior.mix).float(), inr)
    w = torch.randn(5, inr.n_params, generator=torch.Generator().manual_seed(1)) * 0.1

    def value_and_grad(rows):
        x = w[rows].clone().requires_grad_(True)
        out = siren.forward(x, emb, inr, mix)
        out.pow(2).sum().backward()
        return out.detach(), x.grad

    out_all, grad_all = value_and_grad([0, 1, 2, 3, 4])
    for rows in ([0], [0, 1]):
        out, grad = value_and_grad(rows)
        assert torch.equal(out, out_all[:len(rows)]) and torch.equal(grad, grad_all[:len(rows)])

@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 37, 3), (65, 33, 3), (20, 45, 3)])
def test_odd_sizes_round_trip(patch_prior, patch_prior_dir, shape):
    img = photo(*shape[:2], seed=shape[0])
    res = run(encode_image_batch([img], 2.0, prior=patch_prior, fit=PATCH_FIT))[0]
    assert isinstance(res.data, bytes) and res.reconstruction.shape == shape
    dec = decode_image(res.data, prior_dirs=[patch_prior_dir])
    assert np.array_equal(dec, res.reconstruction)
    units = -(-shape[0] // 16) * -(-shape[1] // 16)
    assert len(res.unit_blocks) == units and res.header.units == units
    assert res.bpp == 8 * len(res.data) / (shape[0] * shape[1])
    if shape[0] * shape[1] >= 600:  # big enough for the rate to be reachable: within 5 % of the target
        assert abs(res.bpp - 2.0) < 0.1
        flat = np.full_like(img, int(img.mean()))
        assert res.psnr > psnr_uint8(img, flat) + 2
    else:  # one block per patch is the smallest file; the encoder says so
        assert res.warnings and "smallest file" in res.warnings[0]


def test_grayscale_and_alpha(patch_prior, patch_prior_dir):
    rgb = photo(30, 40, seed=5)
    gray = rgb[:, :, :1]
    alpha = (np.arange(40)[None, :] * 6).repeat(30, 0).astype(np.uint8)
    rgba = np.concatenate([rgb, alpha[:, :, None]], axis=2)
    la = np.concatenate([gray, alpha[:, :, None]], axis=2)
    res = run(encode_image_batch([gray, rgba, la], 3.0, prior=patch_prior, fit=PATCH_FIT))
    for img, r in zip([gray, rgba, la], res):
        dec = decode_image(r.data, prior_dirs=[patch_prior_dir])
        assert dec.shape == img.shape and np.array_equal(dec, r.reconstruction)
        if img.shape[2] in (2, 4):
            assert np.array_equal(dec[:, :, -1], alpha)  # alpha is lossless
            assert r.header.alpha
    # the alpha bytes are in the file, so they count in the rate
    assert len(res[1].data) > len(res[1].header.alpha)


def test_batch_equals_single(patch_prior):
    a, b = photo(40, 24, seed=1), photo(17, 50, seed=2)
    both = run(encode_image_batch([a, b], 2.0, prior=patch_prior, fit=PATCH_FIT))
    one = run(encode_image_batch([b], 2.0, prior=patch_prior, fit=PATCH_FIT))[0]
    assert both[1].data == one.data
    assert np.array_equal(both[1].reconstruction, one.reconstruction)



def test_unit_schedule_ignores_batch_block_counts(patch_prior):
    """Units of few blocks (fewer than the coding groups) beside one of many: their groups, refinement steps
    and hence their indices are those they get without it (the schedule once followed the batch's largest
    block count)."""
    from engine.codec import Reporting, UnitBatch, _members, code_units
    from engine.config import FitConfig

    fit = FitConfig(steps=20, refine_first=3, refine_last=1, refine_groups=6, points=1.0, shortlist=1)
    p = patch_prior.patch
    tiles = photo(p, 3 * p, seed=7).reshape(p, 3, p, 3).transpose(1, 0, 2, 3)          # (3, p, p, 3)
    target = torch.from_numpy(tiles.copy()).float().div(255.0).sub(0.5).reshape(3, p * p, 3)
    field = patch_prior.field(siren.fourier_embed(siren.grid_coords((p, p)), patch_prior.inr), "cpu")
    classes = [_members(patch_prior, 3), _members(patch_prior, 20)]

    def code(rows):
        cls = np.array([0, 0, 1][:len(rows)])
        batch = UnitBatch(target[rows], field, classes[:cls.max() + 1], unit_class=cls, unit_ids=np.array(rows))
        return run(code_units(batch, patch_prior, fit, torch.device("cpu"), 0, Reporting(None)))

    idx_all, kl_all = code([0, 1, 2])
    idx_two, kl_two = code([0, 1])
    assert idx_two.shape == (2, 3) and idx_all.shape == (3, 20)
    assert np.array_equal(idx_all[:2, :3], idx_two) and not idx_all[:2, 3:].any()
    assert np.array_equal(kl_all[:2, :3], kl_two)


def test_batched_unit_noise_keeps_batch_equal_to_single(patch_prior, patch_prior_dir, monkeypatch):
    """The GPU's one-draw noise (rng.UnitNoise, forced on here on CPU) keeps an image's file independent of
    its batch, and its files decode to the encoder's reconstruction at a sane quality."""
    from engine import rng

    monkeypatch.setattr(rng, "KEYED_DEVICES", ("cpu", "cuda"))
    a, b = photo(40, 24, seed=1), photo(17, 50, seed=2)
    both = run(encode_image_batch([a, b], 2.0, prior=patch_prior, fit=PATCH_FIT))
    one = run(encode_image_batch([b], 2.0, prior=patch_prior, fit=PATCH_FIT))[0]
    assert both[1].data == one.data
    assert np.array_equal(decode_image(one.data, prior_dirs=[patch_prior_dir]), one.reconstruction)
    monkeypatch.setattr(rng, "KEYED_DEVICES", ("cuda",))
    ref = run(encode_image_batch([b], 2.0, prior=patch_prior, fit=PATCH_FIT))[0]
    assert ref.data != one.data                      # really another noise source ...
    assert abs(one.psnr - ref.psnr) < 1.5            # ... of the same quality
    assert abs(len(one.data) - len(ref.data)) <= 4


def test_unit_noise_statistics():
    from engine import rng

    n = rng.UnitNoise.from_seeds([3, 4], "cpu")
    z = n.normal(20000)                              # (2, 20000)
    assert z.shape == (2, 20000) and abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1) < 0.03
    assert not torch.equal(z, n.normal(20000))       # each step draws afresh
    assert torch.equal(n.subset([1]).exponential(5, 100)[:, 0], n.exponential(5, 100)[:, 1])
    e = n.exponential(7, 50000)
    assert e.shape == (50000, 2) and float(e.min()) > 0 and abs(float(e.mean()) - 1) < 0.03


def test_shipped_priors_route_cifar_sized_images_to_the_single_network_codec():
    """The README's quick start encodes a 32x32 sample: it must go to the CIFAR-10 priors, other sizes to patches."""
    from engine.patch_codec import uses_patches

    assert not uses_patches((32, 32, 3))
    assert not uses_patches((32, 32, 1))
    assert uses_patches((32, 32, 4))     # alpha: only the patch codec carries it
    assert uses_patches((33, 32, 3)) and uses_patches((512, 768, 3))


def test_seams_are_no_worse_than_the_codec_error(patch_prior):
    img = photo(64, 64, seed=11)
    r = run(encode_image_batch([img], 3.0, prior=patch_prior, fit=PATCH_FIT))[0]
    err = (img.astype(np.float64) - r.reconstruction) ** 2
    seam = np.zeros((64, 64), dtype=bool)
    for k in (15, 16, 31, 32, 47, 48):  # the pixel rows/columns on both sides of each patch boundary
        seam[k, :] = seam[:, k] = True
    # patch edges are coded like any other pixels: their error stays near the image's own error
    assert err[seam].mean() < 2.0 * err[~seam].mean()


def test_allocation_follows_content():
    kl = np.array([1.0, 1.0, 2.0, 4.0, 8.0, 30.0, 30.0, 60.0])
    n = allocate(kl, 200, cap=500)
    assert abs(int(n.sum()) - 200) <= 2 and n.min() >= 1
    assert np.all(np.diff(n) >= 0)  # more KL, never fewer blocks
    assert len(np.unique(n)) <= 8
    u = uniform(203, 8, cap=500)
    assert u.sum() == 203 and u.max() - u.min() == 1


def test_a_large_class_of_quiet_patches_keeps_its_share():
    """The rounding to a few counts can miss the total by hundreds of blocks; the correction must not take it
    all from the most populous class. A Kodak-like image: 40 quiet patches wanting about 9 blocks each beside
    56 detailed ones wanting 20-400 (kodim20's sky came back at one block a patch, blotched)."""
    rng = np.random.default_rng(0)
    want = np.concatenate([np.full(40, 9.0), np.geomspace(20, 400, 56)]) * np.exp(rng.normal(0, 0.3, 96))
    total = int(want.sum())
    n = allocate(want, total, cap=5460)
    sizes = np.unique(n, return_counts=True)[1]
    assert n.sum() <= total and total - n.sum() < sizes.min()
    assert n[:40].min() >= 0.4 * want[:40].min() and n[:40].mean() >= 0.6 * want[:40].mean()
    assert n[40:].mean() > 5 * n[:40].mean()


def test_detailed_patches_get_more_blocks(patch_prior):
    img = photo(32, 64, seed=4).copy()
    img[:, :32] = img[:, :32].mean(axis=(0, 1)).astype(np.uint8)  # left half flat, right half detailed
    r = run(encode_image_batch([img], 2.0, prior=patch_prior, fit=PATCH_FIT))[0]
    grid = r.unit_blocks.reshape(2, 4)
    assert grid[:, 2:].mean() > grid[:, :2].mean()
    flat_u = run(encode_image_batch([img], 2.0, prior=patch_prior, fit=PATCH_FIT, adaptive=False))[0]
    assert flat_u.unit_blocks.max() - flat_u.unit_blocks.min() <= 1


def test_corrupt_patch_files_are_rejected(patch_prior, patch_prior_dir):
    img = np.concatenate([photo(20, 30, seed=6), np.full((20, 30, 1), 200, np.uint8)], axis=2)
    data = run(encode_image_batch([img], 2.0, prior=patch_prior, fit=PATCH_FIT))[0].data
    hdr, _ = container.read(data)
    assert hdr.patch == 16 and len(hdr.class_blocks) >= 1
    for n in range(len(data)):
        with pytest.raises(CmbFormatError):
            decode_image_full(data[:n], prior_dirs=[patch_prior_dir])
    rs = np.random.default_rng(0)
    for _ in range(60):
        bad = bytearray(data)
        bad[rs.integers(len(bad))] ^= 1 << int(rs.integers(8))
        with pytest.raises(CmbFormatError):
            decode_image_full(bytes(bad), prior_dirs=[patch_prior_dir])


def test_cli_encodes_any_size_and_decodes(patch_prior_dir, tmp_path, capfd, monkeypatch):
    """The encode runs as a real process; info and decode in-process (same CLI code)."""
    from .clitools import run_cli
    src = tmp_path / "odd.png"
    Image.fromarray(photo(33, 50, seed=9)).save(src)
    env = dict(os.environ, COMBINER_PRIORS=str(patch_prior_dir))
    prior = str(patch_prior_dir / "tinypatch.safetensors")
    cmd = [sys.executable, "-m", "engine.cli"]
    r = subprocess.run(cmd + ["encode", str(src), "--bpp", "2", "--prior", prior, "--preset", "fast", "-q"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    cmb = tmp_path / "odd.cmb"
    assert cmb.exists()
    monkeypatch.setenv("COMBINER_PRIORS", str(patch_prior_dir))
    r = run_cli(capfd, "info", cmb)
    assert r.returncode == 0 and "patches" in r.stdout and "12 of 16x16" in r.stdout
    r = run_cli(capfd, "decode", cmb, "-o", tmp_path / "back.png")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "back.png").size == (50, 33)


def test_distributed_learning_equals_one_process(tmp_path):
    """torchrun with 2 gloo processes gives exactly the prior 1 process gives."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(photo(40, 48, seed=20 + i)).save(photos / f"p{i}.png")
    args = ["learn-prior", "--data", str(photos), "--patch", "16", "--items", "8", "--batch", "2", "--rate", "1",
            "--width", "8", "--depth", "1", "--freqs", "2", "--first-steps", "8", "--round-steps", "5",
            "--rounds", "2", "--reparam", "--no-compile", "--device", "cpu", "--threads", "1", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "engine.cli", *args, "-o", str(tmp_path / "one.safetensors")],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(29500 + os.getpid() % 1000), "-m", "engine.cli", *args,
                          "-o", str(tmp_path / "two.safetensors")], capture_output=True, text=True, env=env)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = Prior.load(tmp_path / "one.safetensors"), Prior.load(tmp_path / "two.safetensors")
    assert b.info["processes"] == 2 and a.info["processes"] == 1
    for k in ("mu", "logstd", "kl_profile", "post_logstd", "mix"):
        np.testing.assert_allclose(getattr(a, k), getattr(b, k), rtol=1e-6, atol=1e-7)
    assert a.beta == pytest.approx(b.beta, rel=1e-6)
