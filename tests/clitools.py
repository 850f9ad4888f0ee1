"""Helpers for CLI tests that run `engine.cli.main` in this process (no interpreter start per case)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

from engine.config import FitConfig

TINY_FIT = FitConfig(steps=30, refine_first=3, refine_last=1, refine_groups=3)


def run_cli(capfd, *args):
    """engine.cli.main(args) in-process -> (returncode, stdout, stderr) like subprocess.run's result."""
    import torch

    from engine.cli import main

    capfd.readouterr()
    threads = torch.get_num_threads()
    try:
        rc = main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)   # the CLI sets them from the work: keep the rest of the session as it was
    out, err = capfd.readouterr()
    return SimpleNamespace(returncode=rc, stdout=out, stderr=err)


def assert_one_line_error(r, *fragments, code=1):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("combiner: error:"), r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    for bad in ("UnidentifiedImageError", "LibsndfileError", "psf_", "does not exist\n"):
        assert bad not in lines[0], lines[0]
    return lines[0]


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder) -> list[str]:
    """Temporary or partial files write_atomic may leave."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp"))
