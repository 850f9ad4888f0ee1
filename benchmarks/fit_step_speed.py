"""CPU (or GPU) milliseconds of one encoder fitting step, forward and backward, for the shipped photo and speech
priors: the cost the encoder pays thousands of times per signal (docs/results.md).

    python benchmarks/fit_step_speed.py [--patches 4x4] [--per-patch] [--chunks 60] [--steps 50] [--compile]

Photo: a rows x cols layout of 64x64 patches of the default 0.3 bpp prior, the latents of every patch fitted
against a random target at a fresh quarter of the pixels per step (the photo coder's `POINTS`), the network
one shared vector plus a delta that learns, as in the probe of an image with its delta. Speech: `--chunks`
800-sample chunks of the default 12 kbps prior, every sample measured. Prints ms per step (process CPU time
on CPU, wall time on CUDA).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import siren  # noqa: E402
from engine.config import POINTS  # noqa: E402
from engine.fitting import PointSubsets  # noqa: E402
from engine.latent import Canvas  # noqa: E402
from engine.prior import nearest, nearest_patch  # noqa: E402


def photo_step(rows: int, cols: int, device, compile: bool, per_patch: bool = False):
    prior = nearest_patch(0.3)
    b, p = rows * cols, prior.patch
    emb = siren.fourier_embed(siren.grid_coords((p, p), device=device), prior.inr)
    field = prior.field(emb, device, [Canvas(rows, cols, torch.arange(b, device=device))], None, compile)
    mu = torch.from_numpy(prior.mu).to(device).expand(b, -1).clone().requires_grad_(True)
    shared = torch.from_numpy(prior.inr_weights).to(device)
    # one delta for all patches (an image delta), or one per patch: every patch its own network, as the group
    # deltas of a kind-15 photo give (siren.forward's batched path)
    delta = torch.zeros(b, shared.shape[0], device=device) if per_patch else torch.zeros_like(shared)
    delta.requires_grad_(True)
    points = PointSubsets(field, POINTS["image"], 0)
    target = torch.rand(b, p * p, 3, device=device) - 0.5

    def step():
        sel = points.draw()
        field.shared = shared + delta
        ((field.at(sel)(mu + 0.01 * torch.randn_like(mu)) - target[:, sel]) ** 2).mean().backward()
    return prior.name, step


def speech_step(chunks: int, device, compile: bool):
    prior = nearest("audio", 1, 12.0)
    n = prior.audio.chunk
    emb = siren.fourier_embed(siren.grid_coords((n,), device=device), prior.inr)
    field = prior.field(emb, device, [Canvas(1, chunks, torch.arange(chunks, device=device))], None, compile)
    mu = torch.from_numpy(prior.mu).to(device).expand(chunks, -1).clone().requires_grad_(True)
    target = 0.1 * torch.randn(chunks, n, 1, device=device)

    def step():
        ((field(mu + 0.01 * torch.randn_like(mu)) - target) ** 2).mean().backward()
    return prior.name, step


def timed(step, n: int, cuda: bool) -> float:
    for _ in range(5):   # warm-up (and compilation)
        step()
    if cuda:
        torch.cuda.synchronize()
    clock = time.perf_counter if cuda else time.process_time
    t = clock()
    for _ in range(n):
        step()
    if cuda:
        torch.cuda.synchronize()
    return (clock() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patches", default="4x4", help="ROWSxCOLS patches of the photo step (8x12: a Kodak image)")
    ap.add_argument("--chunks", type=int, default=60, help="speech chunks per step (60: 3 s)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="torch.compile the network")
    ap.add_argument("--per-patch", action="store_true", help="photo: a network per patch (group deltas)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    rows, cols = (int(v) for v in a.patches.lower().split("x"))
    for what, (name, step) in (("photo, %dx%d patches, a quarter of the pixels" % (rows, cols),
                                photo_step(rows, cols, dev, a.compile, a.per_patch)),
                               ("speech, %d chunks" % a.chunks, speech_step(a.chunks, dev, a.compile))):
        ms = timed(step, a.steps, dev.type == "cuda")
        print(f"{what} [{name}]: {ms:.2f} ms per fitting step ({a.device}, {a.threads} thread(s)"
              f"{', compiled' if a.compile else ''}, torch {torch.__version__})")


if __name__ == "__main__":
    main()
