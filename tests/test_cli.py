"""The `combiner` CLI end to end, in subprocesses, on real photo patches."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from engine.codec import decode
from engine.signals import psnr_uint8

from .clitools import run_cli
from .conftest import photo_patches


def cli_env() -> dict:
    """The environment a `python -m engine.cli` subprocess runs in: this checkout's engine first."""
    return dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=cli_env(), timeout=600)


def assert_clean_error(r, *fragments):
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("combiner: error:"), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    imgs = photo_patches(2, seed=99)
    paths = []
    for i, im in enumerate(imgs):
        p = d / f"patch{i}.png"
        Image.fromarray(im).save(p)
        paths.append(p)
    return d, paths, imgs


@pytest.fixture(scope="module")
def encoded(photo, tiny_prior_dir):
    d, paths, imgs = photo
    out = d / "patch0.cmb"
    r = cli("encode", paths[0], "--bpp", 1, "-o", out, "--prior", tiny_prior_dir / "tiny.safetensors",
            "--preset", "fast", "-q")
    assert r.returncode == 0, r.stderr
    return out, r


def test_encode_decode_info(photo, encoded, tiny_prior_dir):
    d, paths, imgs = photo
    out, r = encoded
    assert "bpp" in r.stdout and "PSNR" in r.stdout
    size = out.stat().st_size
    assert abs(size - 128) <= 0.05 * 128
    png = d / "back.png"
    r = cli("decode", out, "-o", png, "--prior-dir", tiny_prior_dir)
    assert r.returncode == 0, r.stderr
    back = np.asarray(Image.open(png))
    assert back.shape == (32, 32, 3)
    assert np.array_equal(back, decode(out.read_bytes(), [tiny_prior_dir]))
    assert psnr_uint8(imgs[0], back) > psnr_uint8(imgs[0], np.full_like(imgs[0], int(imgs[0].mean())))
    r = cli("info", out, "--prior-dir", tiny_prior_dir)
    assert r.returncode == 0
    for pattern in [r"modality:\s+image", r"shape:\s+32x32", rf"bytes:\s+{size}\n", r"bpp:\s+1\.0", r"prior:\s+tiny-test",
                    r"blocks:\s+\d+", r"kappa:\s+16"]:
        assert re.search(pattern, r.stdout), (pattern, r.stdout)


def test_batch_encode_to_folder(photo, tiny_prior_dir, tmp_path):
    d, paths, imgs = photo
    r = cli("encode", *paths, "--bpp", 0.8, "-o", tmp_path, "--prior", tiny_prior_dir / "tiny.safetensors",
            "--preset", "fast", "-q")
    assert r.returncode == 0, r.stderr
    for p in paths:
        f = tmp_path / (p.stem + ".cmb")
        assert abs(f.stat().st_size - 0.8 * 128) <= 0.05 * 0.8 * 128
        assert decode(f.read_bytes(), [tiny_prior_dir]).shape == (32, 32, 3)


def test_bad_inputs_give_one_line_errors(photo, encoded, tmp_path, capfd):
    """In-process (the exit path of a real process is covered by the other CLI tests)."""
    d, paths, _ = photo
    out, _ = encoded
    assert_clean_error(run_cli(capfd, "encode", tmp_path / "missing.png", "--bpp", 1), "no such file")
    txt = tmp_path / "notes.png"
    txt.write_text("this is not an image")
    assert_clean_error(run_cli(capfd, "encode", txt, "--bpp", 1), "not a readable image")
    data = out.read_bytes()
    for name, blob, msg in [("trunc.cmb", data[:40], "truncated"), ("flip.cmb", data[:50] + bytes([data[50] ^ 4]) + data[51:], "checksum"),
                            ("random.cmb", os.urandom(128), "not a .cmb file"), ("empty.cmb", b"", "empty")]:
        f = tmp_path / name
        f.write_bytes(blob)
        target = tmp_path / (name + ".png")
        assert_clean_error(run_cli(capfd, "decode", f, "-o", target), msg)
        assert not target.exists()  # no partial output
        assert_clean_error(run_cli(capfd, "info", f), msg)
    assert_clean_error(run_cli(capfd, "decode", tmp_path / "nothing.cmb"), "no such file")


def test_missing_prior_is_named(encoded, tmp_path):
    out, _ = encoded
    pid = out.read_bytes()[4:7].hex()  # magic, version|kind, 2 shape varints, then the prior id
    r = cli("decode", out, "-o", tmp_path / "x.png")  # only shipped priors: the tiny test prior is absent
    assert_clean_error(r, "needs prior", pid)


def test_never_overwrites_the_input(photo, tiny_prior_dir):
    d, paths, _ = photo
    before = paths[1].read_bytes()
    r = cli("encode", paths[1], "--bpp", 1, "-o", paths[1], "--prior", tiny_prior_dir / "tiny.safetensors")
    assert_clean_error(r, "overwrite")
    assert paths[1].read_bytes() == before


def test_shortlist_option_is_checked(photo, capfd):
    """--shortlist takes 1..64; anything else is refused by the argument parser (exit 2) with the range named."""
    from engine.cli import _shortlist, build_parser

    d, paths, _ = photo
    assert build_parser().parse_args(["encode", str(paths[0]), "--shortlist", "8"]).shortlist == 8
    assert build_parser().parse_args(["encode", str(paths[0])]).shortlist is None
    for bad in ("0", "65", "two", "-3"):
        with pytest.raises(SystemExit) as e:
            run_cli(capfd, "encode", paths[0], "--bpp", 1, "--shortlist", bad)
        assert e.value.code == 2
        assert "expected an integer from 1 to 64" in capfd.readouterr().err.strip().splitlines()[-1]
    assert _shortlist("64") == 64


def test_a_reader_that_goes_away_stops_the_cli_quietly():
    # `combiner info F | head -3`: the reader closes the pipe before the CLI has written. A Unix tool then ends as
    # if killed by SIGPIPE (status 141), without a traceback on stderr.
    golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "astronaut_0.3bpp.cmb")
    p = subprocess.Popen([sys.executable, "-m", "engine.cli", "info", golden], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=cli_env())
    p.stdout.close()   # long before the interpreter has imported the engine
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141, err
    assert err == ""
