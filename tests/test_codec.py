import numpy as np
import pytest
import torch

from engine import container
from engine.codec import blocks_for_rate, decode_full, encode_batch, run
from engine.errors import CmbFormatError, CombinerError, PriorError
from engine.prior import Prior
from engine.signals import psnr_uint8

from .conftest import FAST_FIT, photo_patches


@pytest.fixture(scope="module")
def encoded(tiny_prior, tiny_prior_dir):
    imgs = photo_patches(3, seed=42)
    res = run(encode_batch(list(imgs), 1.0, prior=tiny_prior, fit=FAST_FIT))
    return imgs, res


def test_decode_returns_exactly_the_encoders_reconstruction(encoded, tiny_prior_dir):
    imgs, res = encoded
    for img, r in zip(imgs, res):
        assert isinstance(r.data, bytes)
        out, hdr, prior = decode_full(r.data, [tiny_prior_dir])
        assert out.dtype == np.uint8 and out.shape == img.shape == (32, 32, 3)
        assert np.array_equal(out, r.reconstruction)
        assert hdr.modality == "image" and prior.id.startswith(hdr.prior_id.hex())


def test_quality_and_rate(encoded, tiny_prior):
    imgs, res = encoded
    for img, r in zip(imgs, res):
        assert abs(len(r.data) - 128) <= 0.05 * 128  # 1 bpp of a 32x32 image, header included
        # a tiny 8-unit network: far from good, but much better than a flat grey guess
        flat = np.full_like(img, int(img.mean()))
        assert psnr_uint8(img, r.reconstruction) > psnr_uint8(img, flat) + 3


def test_rate_control_lands_within_five_percent(tiny_prior):
    for bpp in [0.5, 0.8, 1.0, 1.7, 3.0]:
        n = blocks_for_rate(bpp, (32, 32, 3), tiny_prior)
        hdr = container.CmbHeader("image", (32, 32, 3), tiny_prior.short_id, 0, 16, n)
        size = len(container.write(hdr, np.zeros(n, dtype=np.int64)))
        assert abs(size - bpp * 128) <= 0.05 * bpp * 128, (bpp, size)
    with pytest.raises(CombinerError, match="below"):
        blocks_for_rate(0.05, (32, 32, 3), tiny_prior)


def test_batch_equals_single(tiny_prior):
    imgs = photo_patches(2, seed=7)
    both = run(encode_batch(list(imgs), 1.0, prior=tiny_prior, fit=FAST_FIT))
    one = run(encode_batch([imgs[0]], 1.0, prior=tiny_prior, fit=FAST_FIT))
    # same optimisation per item; float summation order may differ, so compare quality not bytes
    assert abs(both[0].psnr - one[0].psnr) < 1.0


def test_unknown_prior_is_named(encoded, tmp_path):
    _, res = encoded
    with pytest.raises(PriorError, match=res[0].header.prior_id.hex()):
        decode_full(res[0].data, [tmp_path])  # an empty prior folder (shipped priors don't match)
    with pytest.raises(CmbFormatError):  # the documented type catches it too
        decode_full(res[0].data, [tmp_path])


def test_events_report_progress(tiny_prior):
    evs = []
    gen = encode_batch(list(photo_patches(2, seed=3)), 1.0, prior=tiny_prior, fit=FAST_FIT)
    try:
        while True:
            evs.append(next(gen))
    except StopIteration as s:
        res = s.value
    coded = [e for e in evs if e.phase == "code"]
    assert coded[-1].blocks_done == coded[-1].n_blocks == res[0].header.n_blocks
    assert all(e.kl_bits.shape == (2, e.n_blocks) for e in evs)
    assert [e.blocks_done for e in coded] == sorted(e.blocks_done for e in coded)
    assert coded[-1].preview.shape == (2, 32, 32, 3)


def test_prior_file_round_trip(tiny_prior, tmp_path):
    tiny_prior.save(tmp_path / "p.safetensors")
    p = Prior.load(tmp_path / "p.safetensors")
    assert p.id == tiny_prior.id and p.inr == tiny_prior.inr
    raw = bytearray((tmp_path / "p.safetensors").read_bytes())
    raw[-10] ^= 0xFF  # damage a tensor value
    (tmp_path / "bad.safetensors").write_bytes(bytes(raw))
    with pytest.raises(PriorError):
        Prior.load(tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a prior")
    with pytest.raises(PriorError):
        Prior.load(tmp_path / "junk.safetensors")


def test_learn_prior_snapshots_record_the_steps_they_had():
    """A run stopped at a deadline leaves its latest snapshot; that prior must not claim the steps it never had
    (prior.nearest_patch prefers the prior trained longest)."""
    from engine.config import InrConfig, LearnConfig
    from engine.learn import learn_prior

    cfg = LearnConfig(rate_bpp=1.0, n_items=4, batch=4, first_steps=8, round_steps=5, rounds=3, warmup=4,
                      inr=InrConfig(width=6, depth=2, n_freqs=2, max_freq=4.0))
    snaps = []
    final = run(learn_prior(photo_patches(4, size=16, seed=5), cfg, torch.device("cpu"), snapshot=snaps.append))
    assert [p.train_steps for p in snaps] == [8, 13, 18]
    assert final.train_steps == 23 and final.info["learn"]["rounds"] == 3


def test_learn_prior_checkpoint_resume_gives_same_prior(tmp_path):
    from engine.config import InrConfig, LearnConfig
    from engine.learn import learn_prior

    cfg = LearnConfig(rate_bpp=1.0, n_items=6, batch=6, first_steps=12, round_steps=6, rounds=2, warmup=4,
                      inr=InrConfig(width=6, depth=2, n_freqs=2, max_freq=4.0))
    data = photo_patches(6, size=16, seed=5)
    full = run(learn_prior(data, cfg, torch.device("cpu")))
    ck = tmp_path / "ck.pt"
    gen = learn_prior(data, cfg, torch.device("cpu"), checkpoint=ck)
    for ev in gen:  # stop after the first prior update has been checkpointed
        if ev.round == 1:
            break
    gen.close()
    assert ck.exists()
    resumed = run(learn_prior(data, cfg, torch.device("cpu"), checkpoint=ck))
    # the resumed run restarts its sampling noise from the checkpoint, so compare statistics, not bits
    assert resumed.mu.shape == full.mu.shape
    assert np.corrcoef(resumed.mu, full.mu)[0, 1] > 0.9
