"""Folder encodes (engine/batch_encode.py): sharded across processes by torchrun, atomic, resumable."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from engine import batch_encode

from .clitools import run_cli
from .conftest import photo_patches

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    for i, im in enumerate(photo_patches(5, seed=123)):
        Image.fromarray(im).save(d / f"img{i}.png")
    return d


def test_shards_are_disjoint_and_cover_everything():
    files = list(range(11))
    shards = [batch_encode.shard(files, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == files and all(len(s) >= 3 for s in shards)


def test_torchrun_two_processes_write_the_files_one_process_writes(folder, tmp_path, capfd, tiny_prior_dir):
    prior = tiny_prior_dir / "tiny.safetensors"
    opts = ["--bpp", 1, "--prior", prior, "--preset", "fast", "--device", "cpu", "-q", "--threads", "1"]
    one = tmp_path / "one"
    r = run_cli(capfd, "encode", folder, "-o", one, *opts)
    assert r.returncode == 0, r.stderr
    assert "5 files: 5 encoded, 0 already done, 0 failed" in r.stdout

    two = tmp_path / "two"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "engine.cli", "encode", str(folder), "-o", str(two), *map(str, opts)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    summaries = [ln for ln in p.stdout.splitlines() if " files: " in ln]
    assert len(summaries) == 1 and "5 files: 5 encoded" in summaries[0] and "2 process(es)" in summaries[0]
    names = sorted(f.name for f in one.iterdir())
    assert names == [f"img{i}.cmb" for i in range(5)] == sorted(f.name for f in two.iterdir())
    for n in names:
        assert (one / n).read_bytes() == (two / n).read_bytes(), n

    # A re-run skips what is done (headers verified) and redoes a damaged output.
    damaged = two / "img3.cmb"
    damaged.write_bytes(damaged.read_bytes()[:-3])
    r = run_cli(capfd, "encode", folder, "-o", two, *opts)
    assert r.returncode == 0 and "5 files: 1 encoded, 4 already done, 0 failed" in r.stdout, r.stdout
    assert damaged.read_bytes() == (one / "img3.cmb").read_bytes()


def test_failures_are_counted_and_the_rest_is_written(tmp_path, capfd, tiny_prior_dir):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(photo_patches(1, seed=5)[0]).save(src / "good.png")
    (src / "bad.png").write_text("not an image")
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".good.cmb.999999999.tmp"   # left by a killed earlier run
    stale.write_bytes(b"partial")
    r = run_cli(capfd, "encode", src, "-o", tmp_path / "out", "--bpp", 1, "--prior",
                tiny_prior_dir / "tiny.safetensors", "--preset", "fast", "-q", "--threads", "1")
    assert r.returncode == 1
    assert "2 files: 1 encoded, 0 already done, 1 failed" in r.stdout and "bad.png" in r.stdout
    assert sorted(f.name for f in (tmp_path / "out").iterdir()) == ["good.cmb"]
