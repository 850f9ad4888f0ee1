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
    return _from_row_keys(mix32((index.to(torch.int64) ^ block_key(seed, block)) & _M32), dim)


def row_candidates(seed: int, blocks, index: torch.Tensor, dim: int) -> torch.Tensor:
    """Candidate index[r] of block blocks[r] for every row r, in one call: (R,) -> (R, dim), row r equal to
    candidates(seed, blocks[r], index[r:r + 1], dim)[0]."""
    keys = torch.tensor([block_key(seed, int(b)) for b in blocks], dtype=torch.int64, device=index.device)
    return _from_row_keys(mix32((index.to(torch.int64) ^ keys) & _M32), dim)


def _from_row_keys(hi: torch.Tensor, dim: int) -> torch.Tensor:
    """(R,) 32-bit candidate keys -> (R, dim) standard-normal values."""
    dev = hi.device
    if dev.type == "cpu":   # the same integers in uint32 arithmetic (wrapping mod 2**32): half the memory traffic
        return torch.from_numpy(_table_np()[_row_hashes_u32(hi.numpy().astype(np.uint32), dim) >> (32 - TABLE_BITS)])
    return normal_table(dev)[_row_hashes(hi, dim).bitwise_right_shift_(32 - TABLE_BITS)]


def _row_hashes(hi: torch.Tensor, n: int) -> torch.Tensor:
    """Row keys (R,) -> (R, n) hashes mix32(hi + (j + 1) * GOLD), computed in place: the encoder makes
    (2**kappa, d) of them per block, where a fresh temporary for each of mix32's nine operations costs more
    than the arithmetic."""
    j = (torch.arange(n, dtype=torch.int64, device=hi.device) + 1) * _GOLD
    x = (hi[:, None] + j[None, :]).bitwise_and_(_M32)  # (R, n)
    tmp = torch.empty_like(x)
    for _ in range(2):
        x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=tmp))
        x.mul_(_MUL).bitwise_and_(_M32)
    return x.bitwise_xor_(torch.bitwise_right_shift(x, 16, out=tmp))


def _row_hashes_u32(hi: np.ndarray, n: int) -> np.ndarray:
    """`_row_hashes` in numpy uint32, whose products and sums wrap mod 2**32 as the int64 version's masks do:
    the same (R, n) values, about twice as fast on a CPU."""
    j = ((np.arange(n, dtype=np.uint64) + 1) * np.uint64(_GOLD)).astype(np.uint32)
    x = hi[:, None] + j[None, :]  # (R, n) uint32
    tmp = np.empty_like(x)
    mul = np.uint32(_MUL)
    for _ in range(2):
        x ^= np.right_shift(x, 16, out=tmp)
        x *= mul
    x ^= np.right_shift(x, 16, out=tmp)
    return x


# ---- encoder-private noise for a batch of units ----------------------------------------------------------

KEYED_DEVICES = ("cuda",)   # device types that draw UnitNoise instead of one torch.Generator per unit


def _key32(seed: int) -> int:
    return _mix32_int((seed & _M32) ^ _mix32_int((seed >> 32) & _M32))


class UnitNoise:
    """Sender-private noise for B units (fitting noise, A* arrival times) in one batched draw.

    A unit's draws are a pure function of its seed and of what is drawn (the step count of `normal`, the block
    of `exponential`), so they do not depend on the other units of its batch, as with one torch.Generator per
    unit; but a draw costs a few kernels instead of B. Only the encoder uses it: the receiver never needs it,
    so the values may differ from the per-unit generators and between devices.
    """

    def __init__(self, keys: torch.Tensor, step: int = 0):
        self.keys = keys    # (B,) int64 32-bit unit keys
        self.step = step    # `normal` draws so far

    @classmethod
    def from_seeds(cls, seeds, device) -> "UnitNoise":
        return cls(torch.tensor([_key32(int(s)) for s in seeds], dtype=torch.int64, device=device))

    def subset(self, rows) -> "UnitNoise":
        return UnitNoise(self.keys[torch.as_tensor(rows, dtype=torch.int64, device=self.keys.device)], self.step)

    def _hash(self, tag: int, n: int) -> torch.Tensor:
        """(B, n) 32-bit hashes of (unit key, tag, position)."""
        return _row_hashes(mix32((self.keys ^ _mix32_int(tag & _M32)) & _M32), n)

    def normal(self, n: int) -> torch.Tensor:
        """The next (B, n) standard-normal draw (quantised to 2**16 levels, ample for fitting noise)."""
        self.step += 1
        return normal_table(self.keys.device)[self._hash(2 * self.step, n) >> (32 - TABLE_BITS)]

    def exponential(self, block: int, k: int) -> torch.Tensor:
        """(k, B) unit-rate exponential draws for the arrival times of one block."""
        u = ((self._hash(2 * block + 1, k) >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))
        return (-torch.log(u)).T


def unit_noise(seeds, device) -> "list[torch.Generator] | UnitNoise":
    """Per-unit encoder noise: UnitNoise on devices where a kernel launch costs more than the draw (CUDA),
    one torch.Generator per unit elsewhere (cheaper on CPU). Either way a unit's noise ignores its batch."""
    device = torch.device(device)
    if device.type in KEYED_DEVICES:
        return UnitNoise.from_seeds(seeds, device)
    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def take(noise, rows) -> "list[torch.Generator] | UnitNoise":
    """The noise of units `rows` (same streams, not copies of their state for generators)."""
    if isinstance(noise, UnitNoise):
        return noise.subset(rows)
    return [noise[int(i)] for i in rows]
