"""Milliseconds to score every candidate of one block for B items and pick the best (A*'s inner loop,
`engine.rec`): the batch-invariant scoring of `rec._scores` (items 16 at a time in products of one shape)
beside one plain (K, d) @ (d, B) product, whose columns round with B (docs/results.md, session of 2026-12-06,
ninth).

    python benchmarks/score_speed.py [--dims 16 40] [--items 1 4 12 48 192] [--kappa 16] [--reps 7]

Prints the best of `--reps` wall times per (d, B) on one thread (CPU) for both.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine import rec  # noqa: E402


def plain_scores(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (z * z) @ a.T + z @ b.T                                               # (K, B)


def best_ms(score, z: torch.Tensor, a: torch.Tensor, b: torch.Tensor, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        score(z, a, b).argmax(0)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[16, 40], help="weights per block")
    ap.add_argument("--items", type=int, nargs="+", default=[1, 4, 12, 48, 192], help="items scored together")
    ap.add_argument("--kappa", type=int, default=16, help="2**kappa candidates")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    print(f"{'d':>4} {'B':>5} {'plain ms':>9} {'invariant ms':>13}")
    for d in args.dims:
        z = rec.candidate_table(1, 2, args.kappa, d, "cpu")                      # (K, d)
        for n in args.items:
            a, b = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
            plain = best_ms(plain_scores, z, a, b, args.reps)
            inv = best_ms(rec._scores, z, a, b, args.reps)
            print(f"{d:4d} {n:5d} {plain:9.2f} {inv:13.2f}")


if __name__ == "__main__":
    main()
