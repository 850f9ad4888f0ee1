"""SIGKILL in the middle of an encode leaves no partial .cmb and no temporary file (or the next run removes it)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

from .conftest import photo_patches

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def test_sigkill_mid_encode_leaves_nothing(tmp_path, tiny_prior_dir):
    png = tmp_path / "in.png"
    Image.fromarray(photo_patches(1, seed=8)[0]).save(png)
    out = tmp_path / "out"
    out.mkdir()
    # the real CLI, reporting on stdout when its encode has started
    code = ("import sys, engine.cli as c\n"
            "real = c._progress\n"
            "def progress(gen, desc, quiet):\n"
            "    print('encoding', flush=True)\n"
            "    return real(gen, desc, quiet)\n"
            "c._progress = progress\n"
            "sys.exit(c.main(sys.argv[1:]))\n")
    p = subprocess.Popen([sys.executable, "-c", code, "encode", str(png), "--bpp", "1", "-o", str(out / "in.cmb"),
                          "--prior", str(tiny_prior_dir / "tiny.safetensors"), "--preset", "best", "-q"],
                         stdout=subprocess.PIPE, env=ENV, text=True)
    assert p.stdout.readline().strip() == "encoding"
    time.sleep(1.0)
    assert p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert list(out.iterdir()) == []


def test_a_writer_killed_mid_write_is_cleaned_up_by_the_next_run(tmp_path, tiny_prior_dir):
    out = tmp_path / "out"
    out.mkdir()
    # A writer stuck between creating its temporary file and renaming it, killed there.
    code = ("import os, sys, time; from engine import media\n"
            "os.fsync = lambda fd: (print('writing', flush=True), time.sleep(60))\n"
            "media.write_atomic(sys.argv[1], b'x' * 1000000)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(out / "in.cmb")], stdout=subprocess.PIPE, env=ENV, text=True)
    assert p.stdout.readline().strip() == "writing"
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = list(out.iterdir())
    assert len(left) == 1 and left[0].name.startswith(".in.cmb.") and left[0].name.endswith(".tmp")
    assert not (out / "in.cmb").exists()
    png = tmp_path / "in.png"
    Image.fromarray(photo_patches(1, seed=8)[0]).save(png)
    r = subprocess.run([sys.executable, "-m", "engine.cli", "encode", str(png), "--bpp", "1", "-o", str(out / "in.cmb"),
                        "--prior", str(tiny_prior_dir / "tiny.safetensors"), "--preset", "fast", "-q"],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    assert [f.name for f in out.iterdir()] == ["in.cmb"]
