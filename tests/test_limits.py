"""Decompression-bomb limits (engine/limits.py): refused from the header, fast and small; overrides decode."""
from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from engine import container, limits
from engine.codec import run
from engine.container import CmbHeader
from engine.patch_codec import decode_image_full, encode_image
from engine.prior import Prior

from .clitools import TINY_FIT, assert_one_line_error, run_cli
from .conftest import photo, voiced_audio


def patch_bomb(tmp_path, side=65536):
    """A well-formed 2 MB file declaring a side x side image (one block per 64x64 patch), shipped prior."""
    pr = Prior.load(container.__file__.replace("engine/container.py", "priors/photo64-0.1bpp.safetensors"))
    units = container.patch_units(side, side, pr.patch)
    h = CmbHeader("image", (side, side, 3), pr.short_id, 0, pr.kappa, 1, units, pr.patch, (1,), (0,) * units)
    f = tmp_path / "bomb.cmb"
    f.write_bytes(container.write(h, np.zeros(units, np.int64)))
    return f


def test_image_bomb_is_refused_fast_and_small(tmp_path, capfd):
    f = patch_bomb(tmp_path)
    assert f.stat().st_size < 2_200_000
    tracemalloc.start()
    t = time.time()
    r = run_cli(capfd, "decode", f, "-o", tmp_path / "x.png")
    secs = time.time() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    line = assert_one_line_error(r, "65536x65536", "4,294,967,296 pixels", "--max-pixels 4294967296",
                                 limits.ENV_PIXELS)
    assert secs < 1.0 and peak < 200 << 20, (secs, peak, line)
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(limits.DecodeLimitError) as e:  # the decoder itself refuses too (for the app)
        decode_image_full(f.read_bytes())
    assert e.value.kind == "pixels" and e.value.needed == 65536 ** 2
    assert limits.check_file(f.read_bytes(), limits.Limits(0, 0)).shape == (65536, 65536, 3)


def test_audio_bomb_is_refused(tmp_path, capfd):
    h = CmbHeader("audio", (10 ** 10, 2, 16000), b"abc", 0, 16, 1, 1)
    f = tmp_path / "a.cmb"
    f.write_bytes(container.write(h, np.zeros(1, np.int64)))
    t = time.time()
    r = run_cli(capfd, "decode", f, "-o", tmp_path / "a.wav")
    assert_one_line_error(r, "625,000.0 s", "--max-seconds", limits.ENV_SECONDS)
    assert time.time() - t < 1.0


def test_limits_and_their_overrides(tmp_path, capfd, monkeypatch, patch_prior, patch_prior_dir,
                                    tiny_audio_prior, tiny_audio_prior_dir):
    from engine.audio_codec import encode_audio

    img = run(encode_image(photo(30, 40), 2.0, prior=patch_prior, fit=TINY_FIT))
    f = tmp_path / "img.cmb"
    f.write_bytes(img.data)
    out = tmp_path / "img.png"
    args = ["decode", f, "-o", out, "--prior-dir", patch_prior_dir]
    assert_one_line_error(run_cli(capfd, *args, "--max-pixels", 1000), "1,200 pixels", "--max-pixels 1200")
    assert not out.exists()
    assert run_cli(capfd, *args, "--max-pixels", 1200).returncode == 0 and out.exists()
    out.unlink()
    monkeypatch.setenv(limits.ENV_PIXELS, "1000")
    assert_one_line_error(run_cli(capfd, *args), "1,200 pixels")
    assert run_cli(capfd, *args, "--max-pixels", 0).returncode == 0   # 0: no limit; the option beats the env
    monkeypatch.setenv(limits.ENV_PIXELS, "lots")
    assert_one_line_error(run_cli(capfd, *args), limits.ENV_PIXELS)
    monkeypatch.delenv(limits.ENV_PIXELS)
    with limits.override(max_pixels=100):
        with pytest.raises(limits.DecodeLimitError):
            decode_image_full(img.data, [patch_prior_dir])
        with limits.override(max_pixels=0):
            assert decode_image_full(img.data, [patch_prior_dir])[0].shape == (30, 40, 3)

    clip = run(encode_audio(voiced_audio(0.1), 16000, 16, prior=tiny_audio_prior, fit=TINY_FIT))
    g = tmp_path / "clip.cmb"
    g.write_bytes(clip.data)
    wav = tmp_path / "clip.wav"
    args = ["decode", g, "-o", wav, "--prior-dir", tiny_audio_prior_dir]
    assert_one_line_error(run_cli(capfd, *args, "--max-seconds", 0.05), "0.1 s", "--max-seconds 1")
    assert run_cli(capfd, *args, "--max-seconds", 0.1).returncode == 0 and wav.exists()
    assert_one_line_error(run_cli(capfd, *args, "--max-seconds", -1), "--max-seconds")


def test_encode_refuses_huge_inputs_from_their_header(tmp_path, capfd):
    from PIL import Image

    png = tmp_path / "x.png"
    Image.fromarray(photo(20, 20)).save(png)
    assert_one_line_error(run_cli(capfd, "encode", png, "--bpp", 1, "--max-pixels", 100), "400 pixels",
                          "--max-pixels")
