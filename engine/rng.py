"""Shared randomness for relative entropy coding: a counter-based generator of our own.

Contract (sender and receiver): candidate `i` of block `b` under seed `s` is the vector
    z[j] = NORMAL_TABLE[ h(s, b, i, j) >> 16 ],  j = 0 .. d-1,
where `h` is the 32-bit integer hash below and NORMAL_TABLE holds the 65,536 mid-point quantiles of
N(0, 1). Only integer arithmetic (int64 tensors, every product < 2**63) and one table lookup are
involved, so the value is bit-identical on CPU and CUDA, across torch versions, and whether a caller
asks for all 2**kappa candidates at once (encoder) or only the chosen one (decoder). The candidate
weight is then mu_p + sigma_p * z with the prior's parameters.
"""
from __future__ import annotations

import functools
from statistics import NormalDist

import numpy as np
import torch

_M32 = 0xFFFFFFFF
_MUL = 0x045D9F3B     # < 2**31, so x * _MUL < 2**63 for any 32-bit x
_GOLD = 0x9E3779B9
TABLE_BITS = 16


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * _MUL) & _M32
    x = x ^ (x >> 16)
    x = (x * _MUL) & _M32
    return x ^ (x >> 16)


def _mix32_int(x: int) -> int:
    x ^= x >> 16
    x = (x * _MUL) & _M32
    x ^= x >> 16
    x = (x * _MUL) & _M32
    return x ^ (x >> 16)


def block_key(seed: int, block: int) -> int:
    """32-bit key of one block of one file."""
    return _mix32_int((_mix32_int(seed & _M32) + (block + 1) * _GOLD) & _M32)


@functools.lru_cache(maxsize=None)
def _table_np() -> np.ndarray:
    nd = NormalDist()
    n = 1 << TABLE_BITS
    return np.array([nd.inv_cdf((k + 0.5) / n) for k in range(n)], dtype=np.float32)


_table_cache: dict = {}


def normal_table(device: torch.device | str = "cpu") -> torch.Tensor:
    key = str(device)
    if key not in _table_cache:
        _table_cache[key] = torch.from_numpy(_table_np()).to(device)
    return _table_cache[key]


def candidates(seed: int, block: int, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Standard-normal candidates: index (K,) int64 -> (K, dim) float32 on index's device."""
    dev = index.device
    key = block_key(seed, block)
    hi = mix32((index.to(torch.int64) ^ key) & _M32)  # (K,) one hash per candidate
    j = torch.arange(dim, dtype=torch.int64, device=dev)
    h = mix32((hi[:, None] + (j[None, :] + 1) * _GOLD) & _M32)  # (K, dim)
    return normal_table(dev)[h >> (32 - TABLE_BITS)]
