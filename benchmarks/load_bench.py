"""Encode time on an idle machine and under a competing CPU load (issue 13, "Under load").

    PYTHONPATH=. python benchmarks/load_bench.py [--hogs N] [--extra-args "--threads 2"] [--env OMP_WAIT_POLICY=ACTIVE]

Runs `combiner encode resources/samples/astronaut_32.png --bpp 1` (default settings unless --extra-args) once
with nothing else started by this script, then again while N processes (default: one per core) spin on the
CPU, and prints both wall times and their ratio. The competing processes are plain Python busy loops, started
before the timed run and stopped after it. On a shared machine, "idle" means "without our extra load".
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def encode_once(extra: list[str], env: dict, timeout: float) -> float:
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "engine.cli", "encode", str(ROOT / "resources/samples/astronaut_32.png"),
               "--bpp", "1", "-o", str(Path(d) / "a.cmb"), "-q", *extra]
        t = time.time()
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return float("inf")
        if r.returncode:
            raise SystemExit(r.stderr)
        return time.time() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hogs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--extra-args", default="", help="more encode options, e.g. '--threads 2'")
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the encode process")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for kv in a.env:
        k, _, v = kv.partition("=")
        env[k] = v
    extra = shlex.split(a.extra_args)
    encode_once(extra, env, a.timeout)  # warm the file cache
    idle = encode_once(extra, env, a.timeout)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.hogs)]
    try:
        time.sleep(1.0)
        loaded = encode_once(extra, env, a.timeout)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    print(f"encode astronaut_32.png --bpp 1 {a.extra_args} {' '.join(a.env)}".rstrip())
    print(f"  idle:                 {idle:.1f} s")
    print(f"  with {a.hogs} busy process(es): {loaded:.1f} s  ({loaded / idle:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
