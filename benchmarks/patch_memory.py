"""Peak memory and time of patch coding a large photo (not a test: it prints figures).

    python benchmarks/patch_memory.py --prior priors/photo64-1.2bpp.safetensors --size 4000 3000 --bpp 0.1 --steps 4

A short fit (--steps) keeps the run short; memory does not depend on the step count, because patches are
fitted and coded `--max-units` at a time (the engine's default is 384), so the peak is one batch's working
set plus the image itself. The test image is a smooth synthetic photo-like pattern with noise.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.codec import run  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from engine.patch_codec import MAX_UNITS, encode_image  # noqa: E402
from engine.prior import Prior  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prior", required=True)
    ap.add_argument("--size", type=int, nargs=2, default=[4000, 3000], metavar=("W", "H"))
    ap.add_argument("--bpp", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--max-units", type=int, default=MAX_UNITS)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    w, h = a.size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rs = np.random.default_rng(0)
    img = np.stack([128 + 60 * np.sin(x / 37 + y / 91), 128 + 50 * np.cos(y / 23) * np.sin(x / 300),
                    110 + 40 * np.sin((x + y) / 57)], -1) + rs.normal(0, 6, (h, w, 3))
    img = img.clip(0, 255).astype(np.uint8)
    del x, y
    fit = FitConfig(steps=a.steps, refine_first=0, refine_last=0, refine_groups=1)
    t0 = time.time()
    r = run(encode_image(img, a.bpp, prior=Prior.load(a.prior), fit=fit, device=a.device, max_units=a.max_units))
    dt = time.time() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if a.device.startswith("cuda") else ""
    print(f"{w}x{h} ({len(r.unit_blocks)} patches, batches of {a.max_units}), prior {r.prior.name} "
          f"({r.prior.n_params} weights), {a.steps} fit steps: {len(r.data)} bytes, {r.bpp:.4f} bpp, "
          f"{dt:.0f} s, peak RSS {peak:.0f} MB{gpu}")


if __name__ == "__main__":
    main()
