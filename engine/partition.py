"""Partition of a network's weights into coding blocks of about kappa bits each.

Contract: the partition is a pure function of (order, kl_profile, n_blocks, kappa), all of which the
decoder has (order and kl_profile ship inside the prior, n_blocks and kappa in the file header). It is
computed with Python floats in a fixed sequential order, so it is identical on every machine.
"""
from __future__ import annotations

import numpy as np


def scaled_profile(profile: np.ndarray, n_blocks: int, kappa: int) -> list[float]:
    """Scale per-weight KL so it sums to n_blocks*kappa, no single weight above kappa."""
    vals = [max(float(v), 1e-6) for v in profile]
    budget = float(n_blocks * kappa)
    capped = [False] * len(vals)
    for _ in range(20):
        free = sum(v for v, c in zip(vals, capped) if not c)
        room = budget - kappa * sum(capped)
        if free <= 0.0 or room <= 0.0:
            break
        s = room / free
        new_cap = [c or v * s > kappa for v, c in zip(vals, capped)]
        if new_cap == capped:
            return [kappa if c else v * s for v, c in zip(vals, capped)]
        capped = new_cap
    return [kappa if c else v * (room / free if free > 0 else 0.0) for v, c in zip(vals, capped)]


def block_of(order: np.ndarray, profile: np.ndarray, n_blocks: int, kappa: int) -> np.ndarray:
    """Block id of every weight -> (P,) int64 in [0, n_blocks); every block gets at least one weight.

    Weights are visited in the prior's random `order`; each is put in the block where the midpoint
    of its share of the cumulative (scaled) KL falls, i.e. greedy packing up to kappa bits a block.
    """
    p = len(order)
    if not 1 <= n_blocks <= p:
        raise ValueError(f"block count {n_blocks} outside 1..{p}")
    s = scaled_profile(np.asarray(profile)[np.asarray(order)], n_blocks, kappa)
    out = np.empty(p, dtype=np.int64)
    cum = 0.0
    prev = 0
    for k, w in enumerate(order):
        mid = cum + 0.5 * s[k]
        cum += s[k]
        b = min(n_blocks - 1, int(mid // kappa))
        # never skip a block and never leave more blocks than weights remain
        b = max(b, prev, n_blocks - (p - k))
        b = min(b, prev + 1) if k > 0 else 0
        out[int(w)] = b
        prev = b
    return out


def block_members(bo: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """Weight indices of each block, in increasing order."""
    order = np.argsort(bo, kind="stable")
    counts = np.bincount(bo, minlength=n_blocks)
    return np.split(order, np.cumsum(counts)[:-1])
