"""The image-level network delta of shared-network latent priors (engine.hierarchy, kind-11 files): coded before
the patches, decoded exactly, counted in the rate, independent of the batch, and only where a prior allows it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import container, hierarchy
from engine.codec import run
from engine.config import InrConfig
from engine.errors import CmbFormatError, CombinerError
from engine import patch_codec
from engine.patch_codec import adapts, decode_image_full, encode_image_batch
from engine.prior import Prior

from .conftest import PATCH_FIT, photo


@pytest.fixture
def shared_dir(shared_prior_dir):
    return shared_prior_dir


@pytest.fixture
def shared(shared_prior_dir):
    return Prior.load(shared_prior_dir / "shared.safetensors")


def test_delta_file_decodes_exactly_and_pays_for_its_blocks(shared, shared_dir):
    img = photo(40, 24, seed=11)
    with_delta = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=True))[0]
    plain = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=False))[0]
    h = with_delta.header
    assert with_delta.data[1] & 0x0F == container.KIND_PATCHES_DELTA and plain.data[1] & 0x0F == container.KIND_PATCHES
    assert h.delta_blocks >= 1 and len(h.delta_scales) == len(shared.inr.layer_shapes())
    assert h.n_indices == h.delta_blocks + sum(h.unit_blocks)
    out, hdr, _ = decode_image_full(with_delta.data, prior_dirs=[shared_dir])
    assert hdr == h and np.array_equal(out, with_delta.reconstruction)
    # the delta's blocks come out of the image's budget: both files land on the same rate
    assert abs(len(with_delta.data) - len(plain.data)) <= 0.05 * len(plain.data) + 4
    assert sum(h.unit_blocks) < sum(plain.header.unit_blocks)


def test_the_delta_changes_the_picture_the_receiver_renders(shared, shared_dir):
    """Decoding the same patch indices without the delta gives another picture: the delta is really used."""
    img = photo(32, 32, seed=2)
    res = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=True))[0]
    h, idx = container.read(res.data)
    delta = hierarchy.decode(shared.inr, h.delta_scales, h.seed, idx[:h.delta_blocks])
    assert delta.shape == (shared.inr.n_params,) and float(delta.abs().max()) > 0
    stripped = container.write(
        container.CmbHeader(**{**h.__dict__, "delta_scales": (), "delta_blocks": 0}), idx[h.delta_blocks:])
    other, _, _ = decode_image_full(stripped, prior_dirs=[shared_dir])
    assert not np.array_equal(other, res.reconstruction)


def test_batch_equals_single_with_deltas(shared):
    imgs = [photo(40, 24, seed=11), photo(17, 33, seed=12)]
    both = run(encode_image_batch(imgs, 2.0, prior=shared, fit=PATCH_FIT, adapt=True))
    for img, r in zip(imgs, both):
        alone = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=True))[0]
        assert alone.data == r.data


@pytest.mark.parametrize("h,w", [(1, 1), (65, 33)])
def test_odd_sizes_with_a_delta(shared, shared_dir, h, w):
    img = photo(h, w, seed=5)
    res = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=True))[0]
    out, hdr, _ = decode_image_full(res.data, prior_dirs=[shared_dir])
    assert out.shape == (h, w, 3) and np.array_equal(out, res.reconstruction) and hdr.delta_blocks >= 1


def test_only_shared_network_priors_adapt(latent_prior, latent_prior_dir, shared):
    """A prior whose patches carry their own network has nothing to adapt: asking is an error, the default
    does not, and a kind-11 file naming such a prior is a format error."""
    assert adapts(shared) and not adapts(latent_prior)
    img = photo(32, 32, seed=3)
    with pytest.raises(CombinerError, match="no shared network"):
        run(encode_image_batch([img], 2.0, prior=latent_prior, fit=PATCH_FIT, adapt=True))
    res = run(encode_image_batch([img], 2.0, prior=latent_prior, fit=PATCH_FIT))[0]
    assert res.header.delta_blocks == 0
    h, idx = container.read(res.data)
    forged = container.write(container.CmbHeader(**{**h.__dict__, "delta_scales": (1, 2, 3), "delta_blocks": 1}),
                             np.concatenate([[0], idx]))
    with pytest.raises(CmbFormatError, match="network delta"):
        decode_image_full(forged, prior_dirs=[latent_prior_dir])


def test_scale_codes_round_trip():
    var = torch.tensor([1.0, 2.0 ** -4, 2.0 ** -9.5, 0.0])
    codes = hierarchy.codes_of(var)
    assert codes == (0, 8, 19, 255)
    inr = InrConfig(width=4, depth=2, n_freqs=0)
    ls = hierarchy.logstd_of(inr, codes[:3], "cpu")
    assert ls.shape == (inr.n_params,)
    assert torch.allclose(torch.exp(2 * ls.unique()), torch.tensor([2.0 ** -9.5, 2.0 ** -4, 1.0]), rtol=0.1)


def test_cli_codes_a_delta_by_default_and_not_with_no_delta(shared_dir, tmp_path, capfd):
    from PIL import Image

    from .clitools import run_cli
    src = tmp_path / "in.png"
    Image.fromarray(photo(24, 40, seed=8)).save(src)
    prior = shared_dir / "shared.safetensors"
    for extra, kind in (((), container.KIND_PATCHES_DELTA), (("--no-delta",), container.KIND_PATCHES)):
        out = tmp_path / f"out{kind}.cmb"
        r = run_cli(capfd, "encode", src, "--bpp", 2, "-o", out, "--prior", prior, "--preset", "fast", "-q", *extra)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes()[1] & 0x0F == kind
        assert ("network delta" in r.stdout) == (kind == container.KIND_PATCHES_DELTA)
        info = run_cli(capfd, "info", out, "--prior-dir", shared_dir)
        assert info.returncode == 0 and ("delta:" in info.stdout) == (kind == container.KIND_PATCHES_DELTA)
        back = run_cli(capfd, "decode", out, "-o", tmp_path / f"back{kind}.png", "--prior-dir", shared_dir)
        assert back.returncode == 0, back.stderr


# ---- audio: the clip's network delta (kind 12) --------------------------------------------------------------

def _clip(seconds=0.3, seed=21):
    from .conftest import voiced_audio

    return voiced_audio(seconds, seed=seed)


def test_clip_delta_decodes_exactly_is_used_and_pays_for_its_blocks(audio_latent_prior, audio_latent_prior_dir):
    from engine import audio_codec

    from .conftest import FAST_FIT
    x = _clip()
    res = run(audio_codec.encode_audio(x, 16000, 32, prior=audio_latent_prior, fit=FAST_FIT, adapt=True))
    plain = run(audio_codec.encode_audio(x, 16000, 32, prior=audio_latent_prior, fit=FAST_FIT))   # default: none
    h = res.header
    # kind 5: the delta, the envelope and the band gains named by flags
    assert res.data[1] & 0x0F == plain.data[1] & 0x0F == container.KIND_AUDIO_FLAGS
    assert h.envelope is not None and h.bands is not None and plain.header.delta_blocks == 0
    assert h.delta_blocks >= 1 and len(h.delta_scales) == len(audio_latent_prior.inr.layer_shapes())
    y, _, hdr, _ = audio_codec.decode_audio_full(res.data, [audio_latent_prior_dir])
    assert hdr == h and np.array_equal(y, res.reconstruction)
    assert abs(len(res.data) - len(plain.data)) <= 0.05 * len(plain.data) + 4
    assert sum(h.unit_blocks) < sum(plain.header.unit_blocks)
    # the same unit indices without the delta decode to another waveform
    _, idx = container.read(res.data)
    stripped = container.write(
        container.CmbHeader(**{**h.__dict__, "delta_scales": (), "delta_blocks": 0}), idx[h.delta_blocks:])
    other, _ = audio_codec.decode_audio(stripped, [audio_latent_prior_dir])
    assert not np.allclose(other, y, atol=1e-4)


def test_each_clip_codes_its_delta_alone(audio_latent_prior):
    """Clips with deltas never share a batch: a clip's file is the same whatever it is encoded with, and a
    clip longer than one batch codes its delta once, in its first batch."""
    from engine import audio_codec

    from .conftest import FAST_FIT
    clips = [(_clip(0.3, 21), 16000), (_clip(0.2, 22), 16000)]
    both = run(audio_codec.encode_audio_batch(clips, 32, prior=audio_latent_prior, fit=FAST_FIT, max_units=64,
                                              adapt=True))
    for (x, sr), r in zip(clips, both):
        alone = run(audio_codec.encode_audio(x, sr, 32, prior=audio_latent_prior, fit=FAST_FIT, adapt=True))
        assert alone.data == r.data and r.header.delta_blocks >= 1
    assert audio_codec._batch_bounds([0] * 5 + [1] * 3, 4, alone=True) == [(0, 4), (4, 5), (5, 8)]
    assert audio_codec._batch_bounds([0] * 5 + [1] * 3, 4, alone=False) == [(0, 4), (4, 8)]


def test_silent_clips_and_plain_priors_get_no_delta(audio_latent_prior, audio_latent_prior_dir, tiny_audio_prior,
                                                     tiny_audio_prior_dir):
    from engine import audio_codec

    from .conftest import FAST_FIT
    quiet = run(audio_codec.encode_audio(np.zeros(4000, np.float32), 16000, 32, prior=audio_latent_prior,
                                         fit=FAST_FIT, adapt=True))
    assert quiet.data[1] & 0x0F == container.KIND_AUDIO_ENV and quiet.header.delta_blocks == 0
    assert not audio_codec.decode_audio(quiet.data, [audio_latent_prior_dir])[0].any()
    assert not hierarchy.adapts(tiny_audio_prior)
    with pytest.raises(CombinerError, match="no shared network"):
        run(audio_codec.encode_audio(_clip(), 16000, 32, prior=tiny_audio_prior, fit=FAST_FIT, adapt=True))
    res = run(audio_codec.encode_audio(_clip(), 16000, 32, prior=tiny_audio_prior, fit=FAST_FIT))
    h, idx = container.read(res.data)
    forged = container.write(container.CmbHeader(**{**h.__dict__, "delta_scales": (1, 2, 3), "delta_blocks": 1}),
                             np.concatenate([[0], idx]))
    with pytest.raises(CmbFormatError, match="network delta"):
        audio_codec.decode_audio(forged, [tiny_audio_prior_dir])


def _run_events(gen):
    """Drive an encode generator -> (its result, its events)."""
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return stop.value, events


def test_either_keeps_per_clip_the_better_of_the_plain_and_the_delta_file(audio_latent_prior, tiny_audio_prior):
    """adapt=EITHER: each clip's file is byte for byte the plain encode or the delta encode of that clip,
    whichever decodes with the higher SNR; a clip longer than one batch, a silent one and a plain prior get
    the plain file only; steps are reported over both passes."""
    from engine import audio_codec

    from .conftest import FAST_FIT
    clips = [(_clip(0.3, 21), 16000), (_clip(0.2, 22), 16000), (np.zeros(3000, np.float32), 16000)]
    events, gen = [], audio_codec.encode_audio_batch(clips, 32, prior=audio_latent_prior, fit=FAST_FIT,
                                                      adapt=audio_codec.EITHER)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            either = stop.value
            break
    plain = run(audio_codec.encode_audio_batch(clips, 32, prior=audio_latent_prior, fit=FAST_FIT))
    for (x, sr), p, e in zip(clips[:2], plain, either):
        d = run(audio_codec.encode_audio(x, sr, 32, prior=audio_latent_prior, fit=FAST_FIT, adapt=True))
        assert d.header.delta_blocks >= 1 and d.data != p.data
        best = d if d.snr > p.snr else p
        assert e.data == best.data and e.snr == max(d.snr, p.snr)
    assert either[2].data == plain[2].data and either[2].header.delta_blocks == 0
    steps = [ev.step for ev in events]
    assert steps == sorted(steps) and steps[-1] <= events[-1].total_steps
    assert steps[-1] > 0.75 * events[-1].total_steps   # the second pass fills the second half
    long, long_events = _run_events(audio_codec.encode_audio(clips[0][0], 16000, 32, prior=audio_latent_prior,
                                                             fit=FAST_FIT, max_units=4, adapt=audio_codec.EITHER))
    plain_long, plain_events = _run_events(audio_codec.encode_audio(clips[0][0], 16000, 32, prior=audio_latent_prior,
                                                                    fit=FAST_FIT, max_units=4))
    assert long.data == plain_long.data
    # no second pass can follow: the progress is the one encode's, to its end (not the first half of two)
    assert [(e.step, e.total_steps) for e in long_events] == [(e.step, e.total_steps) for e in plain_events]
    assert not audio_codec.delta_triable(len(long.unit_blocks), audio_latent_prior, 4)
    assert audio_codec.delta_triable(len(long.unit_blocks), audio_latent_prior)
    tiny = run(audio_codec.encode_audio(_clip(), 16000, 32, prior=tiny_audio_prior, fit=FAST_FIT,
                                        adapt=audio_codec.EITHER))
    assert tiny.header.delta_blocks == 0
    assert run(audio_codec.encode_audio_batch([], 32, prior=audio_latent_prior, fit=FAST_FIT,
                                              adapt=audio_codec.EITHER)) == []


def test_adapt_mode_maps_the_users_delta_choice():
    from engine import audio_codec
    from engine.errors import CombinerError

    assert audio_codec.adapt_mode(None, False) is False and audio_codec.adapt_mode(False, False) is False
    assert audio_codec.adapt_mode(True, False) is True
    assert audio_codec.adapt_mode(None, True) == audio_codec.EITHER
    for delta in (True, False):
        with pytest.raises(CombinerError, match="--try-delta"):
            audio_codec.adapt_mode(delta, True)


def test_cli_codes_a_clip_delta_when_asked(audio_latent_prior_dir, tmp_path, capfd):
    import soundfile as sf

    from .clitools import run_cli
    src = tmp_path / "in.wav"
    sf.write(src, _clip(), 16000)
    prior = audio_latent_prior_dir / "tiny_audio_latent.safetensors"
    for extra, kind in ((("--delta",), container.KIND_AUDIO_ENV_DELTA), ((), container.KIND_AUDIO_ENV),
                        (("--delta", "--no-envelope"), container.KIND_AUDIO_DELTA),
                        (("--no-envelope",), container.KIND_AUDIO_GAIN)):
        out = tmp_path / f"out{kind}.cmb"
        r = run_cli(capfd, "encode", src, "--kbps", 32, "-o", out, "--prior", prior, "--preset", "fast", "-q",
                    "--no-bands", *extra)
        assert r.returncode == 0, r.stderr
        delta = "--delta" in extra
        assert out.read_bytes()[1] & 0x0F == kind and ("network delta" in r.stdout) == delta
        info = run_cli(capfd, "info", out, "--prior-dir", audio_latent_prior_dir)
        assert info.returncode == 0 and ("clip's network delta" in info.stdout) == delta
        assert ("envelope:" in info.stdout) == ("--no-envelope" not in extra) and "band gains" not in info.stdout
    out = tmp_path / "bands.cmb"   # the default: the band gains too (kind 5)
    r = run_cli(capfd, "encode", src, "--kbps", 32, "-o", out, "--prior", prior, "--preset", "fast", "-q")
    assert r.returncode == 0 and out.read_bytes()[1] & 0x0F == container.KIND_AUDIO_FLAGS
    info = run_cli(capfd, "info", out, "--prior-dir", audio_latent_prior_dir)
    assert info.returncode == 0 and "envelope:" in info.stdout and "band gains:" in info.stdout
    either = tmp_path / "either.cmb"   # --try-delta: one of the two files above, whichever decodes closer
    r = run_cli(capfd, "encode", src, "--kbps", 32, "-o", either, "--prior", prior, "--preset", "fast", "-q",
                "--try-delta", "--no-bands")
    assert r.returncode == 0, r.stderr
    assert either.read_bytes() in [(tmp_path / f"out{k}.cmb").read_bytes()
                                   for k in (container.KIND_AUDIO_ENV_DELTA, container.KIND_AUDIO_ENV)]
    for flag in ("--delta", "--no-delta"):   # a contradictory choice: one line, no file, before any work
        bad = tmp_path / "bad.cmb"
        r = run_cli(capfd, "encode", src, "--kbps", 32, "-o", bad, "--prior", prior, "-q", "--try-delta", flag)
        assert r.returncode != 0 and "--try-delta" in r.stderr and "Traceback" not in r.stderr
        assert not bad.exists()


def test_the_apps_plan_sizes_the_file_the_engine_writes(shared, shared_dir):
    """The plan shown before encoding reserves the same header bytes as the encoder's budget (delta fields
    included), so the file it predicts is the file that comes out, up to the delta fields' actual length."""
    from combiner_app.plans import plan_patches

    img = photo(40, 24, seed=11)
    plan = plan_patches(img.shape, 2.0, [str(shared_dir)])
    assert plan.prior.id == shared.id
    assert plan.total_blocks == patch_codec.block_budget(2.0, img.shape, shared, 0, b"", True, True)[0]
    res = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, adapt=True))[0]
    h = res.header
    # the planned blocks, plus those the header room left free by the class table once known buys
    extra = h.delta_blocks + sum(h.unit_blocks) - plan.total_blocks
    actual_overhead = 8 * (len(container.header_bytes(h)) + container.CRC_BYTES)
    assert 0 <= extra * shared.kappa <= plan.overhead_bits - actual_overhead
    assert plan.file_bits - 8 * len(res.data) == plan.overhead_bits - actual_overhead - extra * shared.kappa >= 0
