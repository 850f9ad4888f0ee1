"""Regression tests for the defects of issue 13 ("Defects found by trying it"): each one failed before."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from engine import audio_io, cli, container, limits, media, rec, rng
from engine.codec import run
from engine.container import CmbHeader
from engine.errors import CmbFormatError, CombinerError, MediaError

from .clitools import TINY_FIT, assert_one_line_error, leftovers, run_cli
from .conftest import voiced_audio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def forge(h: CmbHeader, seed_idx: int = 0) -> bytes:
    idx = np.random.default_rng(seed_idx).integers(0, 1 << h.kappa, h.n_indices)
    return container.write(h, idx)


def audio_file(tmp_path, n, c, sr, name="a.cmb"):
    h = CmbHeader("audio", (n, c, sr), b"\x01\x02\x03", 0, 8, 1, 3)
    f = tmp_path / name
    f.write_bytes(forge(h))
    return f


def patch_file(tmp_path, hh, ww, name="p.cmb", patch=16):
    units = container.patch_units(hh, ww, patch)
    h = CmbHeader("image", (hh, ww, 3), b"\x01\x02\x03", 0, 8, 1, units, patch, (1,), (0,) * units)
    f = tmp_path / name
    f.write_bytes(forge(h))
    return f


# ---- output formats: checked from the header before decoding -------------------------------------------

def test_ogg_above_200khz_is_refused_not_a_segfault(tmp_path, capfd):
    """A 384 kHz file decoded to .ogg killed the process inside libvorbis (exit 139, no message)."""
    f = audio_file(tmp_path, 19200, 1, 384000)   # the header of a 50 ms clip at 384 kHz
    r = run_cli(capfd, "decode", f, "-o", tmp_path / "x.ogg")
    assert_one_line_error(r, "Ogg Vorbis", "384000 Hz", ".wav")
    assert not (tmp_path / "x.ogg").exists() and not leftovers(tmp_path)


@pytest.mark.parametrize("n,c,sr,suffix,frag", [
    (1000, 1, 700_000, ".flac", "700000 Hz"),
    (1000, 9, 16000, ".flac", "9 channels"),
    (100, 1025, 16000, ".wav", "1025 channels"),
    (1000, 256, 16000, ".ogg", "256 channels"),
])
def test_audio_output_limits(tmp_path, capfd, n, c, sr, suffix, frag):
    f = audio_file(tmp_path, n, c, sr)
    t = time.time()
    r = run_cli(capfd, "decode", f, "-o", tmp_path / ("out" + suffix))
    assert_one_line_error(r, frag)
    assert time.time() - t < 5  # before decoding (the 1025-channel .wav took 43 s of decoding first)
    assert not (tmp_path / ("out" + suffix)).exists()


@pytest.mark.parametrize("hh,ww,suffix,frag", [(1, 65_501, ".jpg", "JPEG"), (16_384, 1, ".webp", "WEBP")])
def test_image_output_limits(tmp_path, capfd, hh, ww, suffix, frag):
    f = patch_file(tmp_path, hh, ww)
    r = run_cli(capfd, "decode", f, "-o", tmp_path / ("out" + suffix))
    assert_one_line_error(r, frag, f"{ww}x{hh}")
    assert not (tmp_path / ("out" + suffix)).exists()
    with pytest.raises(MediaError, match=frag):  # the library's own failure is caught as well
        media.encode_image_file(np.zeros((hh, ww, 3), np.uint8), suffix)


# ---- options ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,frag", [
    (["--bpp", "inf"], "--bpp"), (["--bpp", "nan"], "--bpp"), (["--bpp", "1e9"], "largest rate"),
    (["--bpp", "-1"], "positive"), (["--kbps", "0"], "--kbps"), (["--bpp", "1", "--seed", "-1"], "--seed"),
    (["--bpp", "1", "--seed", str(2 ** 71)], "--seed"), (["--bpp", "1", "--threads", "-1"], "--threads"),
])
def test_bad_options_are_one_line_errors(tmp_path, capfd, args, frag):
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    assert_one_line_error(run_cli(capfd, "encode", png, *args), frag)
    assert not (tmp_path / "x.cmb").exists()


def test_writer_holds_itself_to_the_readers_limits():
    """A seed of 2**71 used to be written, then refused by decode and info."""
    h = CmbHeader("image", (32, 32, 3), b"abc", 2 ** 71, 16, 4)
    with pytest.raises(CmbFormatError, match="out of range|outside"):
        container.write(h, np.zeros(4, np.int64))
    assert container.varint_fits(2 ** 63) and not container.varint_fits(2 ** 71) and not container.varint_fits(-1)
    ok = CmbHeader("image", (32, 32, 3), b"abc", 2 ** 63, 16, 4)
    assert container.read(container.write(ok, np.arange(4)))[0] == ok


# ---- memory and time from tiny files ---------------------------------------------------------------------

def test_resampler_ratio_needing_a_huge_filter_is_refused(tmp_path, capfd, tiny_audio_prior_dir):
    """A 20-byte header with rate 1,535,999 Hz made SciPy build a 30.7-million-tap filter (8 s, 1.7 GB)."""
    f = tmp_path / "r.cmb"
    from engine.prior import Prior

    pr = Prior.load(tiny_audio_prior_dir / "tiny_audio.safetensors")
    h = CmbHeader("audio", (1000, 1, 1_535_999), pr.short_id, 0, pr.kappa, 1, 1)
    f.write_bytes(forge(h))
    assert len(f.read_bytes()) < 24
    t = time.time()
    r = run_cli(capfd, "decode", f, "-o", tmp_path / "r.wav", "--prior-dir", tiny_audio_prior_dir)
    assert_one_line_error(r, "cannot resample", "1535999 Hz")
    assert time.time() - t < 5
    with pytest.raises(MediaError, match="resample"):
        audio_io.check_resample(16000, 1_535_999)
    audio_io.check_resample(44100, 16000)  # ordinary rates pass
    audio_io.check_resample(192000, 16000)


def test_info_does_not_unpack_and_unpacking_is_bounded(tmp_path, capfd):
    """`info` on a file declaring millions of blocks unpacked one uint64 per bit (2.9 GB for 10M blocks)."""
    n = 2_000_000
    h = CmbHeader("image", (32, 32, 3), b"abc", 0, 16, n)
    data = container.write(h, np.zeros(n, np.int64))
    f = tmp_path / "big.cmb"
    f.write_bytes(data)
    tracemalloc.start()
    r = run_cli(capfd, "info", f)
    _, peak_info = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    hdr, idx = container.read(data)
    _, peak_read = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert r.returncode == 0 and f"blocks:       {n}" in r.stdout, r.stdout
    assert peak_info < 3 * len(data)                 # the file itself (plus a copy), never per-bit arrays
    assert len(idx) == n and peak_read < 3 * len(data) + 8 * n + (64 << 20)  # old: 8 bytes per bit = 256 MB


def test_alpha_plane_inflate_is_bounded(patch_prior, patch_prior_dir):
    """A 1 MB alpha plane inflated to 2.3 GB before its size was checked."""
    from engine.patch_codec import decode_image_full

    bomb = zlib.compress(b"\0" * 40_000_000, 9)   # ~40 KB that inflates to 40 MB, for a 16x16 image
    units = 1
    h = CmbHeader("image", (16, 16, 4), patch_prior.short_id, 0, patch_prior.kappa, 1, units, patch_prior.patch,
                  (1,), (0,), bomb)
    data = forge(h)
    tracemalloc.start()
    with pytest.raises(CmbFormatError, match="alpha plane"):
        decode_image_full(data, [patch_prior_dir])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20


def test_candidate_scoring_is_chunked_and_bit_identical():
    """One block of thousands of weights was scored against all 2**16 candidates at once (6.9 GB)."""
    torch.manual_seed(0)
    d, kappa, b = 700, 12, 3
    mu_p, ls_p = torch.randn(d) * 0.1, torch.randn(d) * 0.1 - 1
    mu_q, ls_q = mu_p + torch.randn(b, d) * 0.05, ls_p - 0.3 + torch.randn(b, d) * 0.05
    budget = rec.SCORE_BUDGET
    try:
        for gen in (lambda: torch.Generator().manual_seed(3),
                    lambda: [torch.Generator().manual_seed(i) for i in range(b)],
                    lambda: rng.UnitNoise.from_seeds(list(range(b)), "cpu"),
                    lambda: None):   # the noiseless choice (FitConfig.sample False)
            rec.SCORE_BUDGET = 1 << 40
            whole = rec.select(7, 3, kappa, mu_q, ls_q, mu_p, ls_p, gen())
            for chunk in (d * 64, d * 1000, d * 3000 + 17):
                rec.SCORE_BUDGET = chunk
                assert torch.equal(rec.select(7, 3, kappa, mu_q, ls_q, mu_p, ls_p, gen()), whole)
    finally:
        rec.SCORE_BUDGET = budget


def test_candidate_scoring_memory_is_bounded(monkeypatch):
    """However large the block, candidates are generated (and scored) at most SCORE_BUDGET weights at a time."""
    sizes = []
    real = rng.candidates

    def spy(seed, block, index, dim):
        sizes.append(index.shape[0] * dim)
        return real(seed, block, index, dim)

    monkeypatch.setattr(rng, "candidates", spy)
    d = 6595  # the block of `encode 1x1.png --bpp 1` with the 1.2 bpp photo prior
    z = torch.zeros(d)
    monkeypatch.setattr(rec, "SCORE_BUDGET", 1 << 20)
    rec.select(0, 0, 10, z[None] + 0.01, z[None] - 0.1, z, z, torch.Generator().manual_seed(0))
    assert sizes and max(sizes) <= 1 << 20 and sum(sizes) == (1 << 10) * d


# ---- silent loss or garbage ------------------------------------------------------------------------------

def test_exif_rotation_is_honoured(tmp_path):
    img = np.zeros((10, 20, 3), np.uint8)   # stored landscape 20x10
    img[:, :5] = 255
    ex = Image.Exif()
    ex[0x0112] = 6  # rotate 90 degrees clockwise to display
    f = tmp_path / "portrait.jpg"
    Image.fromarray(img).save(f, exif=ex, quality=95)
    out, _ = media.read_image(f)
    assert out.shape == (20, 10, 3)          # coded as shown: portrait
    assert out[:5].mean() > 200 and out[-5:].mean() < 50


def test_animated_gif_warns(tmp_path):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (0, 120, 240)]
    f = tmp_path / "anim.gif"
    frames[0].save(f, save_all=True, append_images=frames[1:], duration=50)
    out, warns = media.read_image(f)
    assert any("3 frames" in w and "first frame" in w for w in warns)
    assert out.mean() < 10


def test_float_and_int32_tiff_are_scaled_by_their_range(tmp_path):
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    f = tmp_path / "f.tif"
    Image.fromarray(ramp, mode="F").save(f)
    out, _ = media.read_image(f, keep_channels=True)
    assert np.abs(out[:, :, 0].astype(float) - ramp * 255).max() <= 1   # was almost black
    big = (ramp.astype(np.float64) * (2 ** 31 - 1)).astype(np.int32)
    g = tmp_path / "i.tif"
    Image.fromarray(big, mode="I").save(g)
    out, warns = media.read_image(g, keep_channels=True)
    assert (out == 255).mean() < 0.01                                   # was 98% saturated
    assert np.abs(out[:, :, 0].astype(float) - ramp * 255).max() <= 1
    assert any("32-bit" in w for w in warns)


def test_truncated_wav_warns(tmp_path):
    f = tmp_path / "a.wav"
    sf.write(f, voiced_audio(1.0), 16000, subtype="PCM_16")
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    x, sr, warns = audio_io.read_audio(f)
    assert any("truncated" in w for w in warns)
    full = tmp_path / "b.wav"
    sf.write(full, voiced_audio(1.0), 16000, subtype="PCM_16")
    assert audio_io.read_audio(full)[2] == []


# ---- messages --------------------------------------------------------------------------------------------

def test_library_messages_are_made_readable(tmp_path, capfd):
    mp3 = tmp_path / "garbage.mp3"
    mp3.write_bytes(np.random.default_rng(0).integers(0, 256, 5000).astype(np.uint8).tobytes())
    line = assert_one_line_error(run_cli(capfd, "encode", mp3, "--kbps", 10), "unknown format or corrupt")
    assert "does not exist" not in line
    flac = tmp_path / "cut.flac"
    sf.write(flac, voiced_audio(1.0), 16000)
    whole = flac.read_bytes()
    for cut in (len(whole) // 5, len(whole) // 2):
        flac.write_bytes(whole[:cut])
        line = assert_one_line_error(run_cli(capfd, "encode", flac, "--kbps", 10), "cut.flac")
        assert "psf_fseek" not in line and "truncated or corrupt" in line


def test_bad_output_path_is_reported_before_encoding(tmp_path, capfd, monkeypatch):
    png = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    monkeypatch.setattr(cli, "encode_items", lambda *a, **k: pytest.fail("encoded before checking the output"))
    r = run_cli(capfd, "encode", png, "--bpp", 1, "-o", tmp_path / "no" / "such" / "x.cmb")
    assert_one_line_error(r, "does not exist")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert_one_line_error(run_cli(capfd, "encode", png, "--bpp", 1, "-o", blocker / "x.cmb"), "does not exist")
    assert_one_line_error(run_cli(capfd, "encode", png, "--bpp", 1, "-o", png), "overwrite")


# ---- interrupted writes ----------------------------------------------------------------------------------

def test_write_atomic_cleans_up_on_any_exception(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        media.write_atomic(target, b"x" * 1000)
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_the_final_write_leaves_nothing(tmp_path, capfd, monkeypatch):
    """SIGTERM during the write left a hidden `.x.wav.<pid>.tmp`; now the CLI turns it into an exception."""
    f = audio_file(tmp_path, 100, 1, 16000, "s.cmb")
    monkeypatch.setattr(cli, "_device", lambda name: "cpu")
    import engine.audio_codec as ac

    monkeypatch.setattr(ac, "decode_audio_full", lambda data, dirs, dev: (np.zeros((100, 1), np.float32), 16000,
                                                                          container.read_header(data), None))
    real_replace = os.replace

    def replace_then_die(a, b):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
        real_replace(a, b)

    monkeypatch.setattr(os, "replace", replace_then_die)
    r = run_cli(capfd, "decode", f, "-o", tmp_path / "x.wav")
    assert r.returncode == 128 + signal.SIGTERM and "terminated" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.cmb"]
    assert signal.getsignal(signal.SIGTERM) is not cli._on_sigterm  # the handler is restored


def test_signals_are_held_inside_the_audio_writer(request):
    """Ctrl+C inside libsndfile's write callbacks printed an AssertionError traceback: now it waits."""
    got = []
    # Python's own Ctrl+C handler, whatever this process inherited (a job started in the background by a
    # shell without job control ignores SIGINT)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, old))
    with pytest.raises(KeyboardInterrupt):
        with media.deferred_signals():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
            got.append("still running")
    assert got == ["still running"]
    y = audio_io.audio_file_bytes(np.zeros((100, 1), np.float32), 16000, ".flac")
    assert sf.read(io.BytesIO(y))[0].shape == (100,)


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".x.cmb.{dead.pid}.tmp"
    stale.write_bytes(b"partial")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = tmp_path / f".x.cmb.{live.pid}.tmp"  # a running writer's: kept
    busy.write_bytes(b"x")
    other = tmp_path / ".notes.tmp"
    other.write_bytes(b"x")
    media.write_atomic(tmp_path / "x.cmb", b"data")
    live.kill()
    live.wait()
    assert not stale.exists() and busy.exists() and other.exists()
    assert (tmp_path / "x.cmb").read_bytes() == b"data"
