import hashlib
import subprocess
import sys

import numpy as np
import torch

from engine import rng

SNIPPET = ("import hashlib, torch; from engine import rng; "
           "z = rng.candidates(7, 3, torch.arange(65536), 5); "
           "print(hashlib.sha256(z.numpy().tobytes()).hexdigest())")


def test_all_candidates_equal_single_index():
    allz = rng.candidates(7, 3, torch.arange(1 << 16), 5)
    for i in [0, 1, 777, 40000, 65535]:
        one = rng.candidates(7, 3, torch.tensor([i]), 5)
        assert torch.equal(one[0], allz[i])
    some = torch.tensor([65535, 5, 5, 123])
    assert torch.equal(rng.candidates(7, 3, some, 5), allz[some])


def test_candidates_identical_across_processes():
    here = hashlib.sha256(rng.candidates(7, 3, torch.arange(65536), 5).numpy().tobytes()).hexdigest()
    out = subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_candidates_are_standard_normal_and_independent():
    z = rng.candidates(0, 0, torch.arange(1 << 16), 8).double()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert abs(((z ** 4).mean() - 3)) < 0.06  # Gaussian kurtosis
    c = torch.corrcoef(z.T)
    assert (c - torch.eye(8)).abs().max() < 0.02
    other = rng.candidates(0, 1, torch.arange(1 << 16), 8).double()  # another block
    assert abs(torch.corrcoef(torch.stack([z[:, 0], other[:, 0]]))[0, 1]) < 0.02
    seed2 = rng.candidates(1, 0, torch.arange(1 << 16), 8)
    assert not torch.equal(seed2, z.float())


def test_normal_table_is_symmetric_quantiles():
    t = rng.normal_table().numpy()
    assert t.shape == (65536,) and np.all(np.diff(t) > 0)
    assert np.allclose(t, -t[::-1], atol=1e-6)


def test_in_place_candidates_match_the_reference_formula():
    """The encoder's in-place hashing must give exactly the contract's z = TABLE[mix32(hi + (j+1)*GOLD) >> 16]."""
    idx = torch.tensor([0, 1, 5, 65535, 70000])
    for seed, block, dim in ((7, 3, 5), (123456789, 0, 40), (2**40 + 3, 999, 1)):
        key = rng.block_key(seed, block)
        hi = rng.mix32((idx ^ key) & 0xFFFFFFFF)
        h = rng.mix32((hi[:, None] + (torch.arange(dim)[None, :] + 1) * 0x9E3779B9) & 0xFFFFFFFF)
        assert torch.equal(rng.candidates(seed, block, idx, dim), rng.normal_table()[h >> 16])


def test_uint32_row_hashes_equal_the_int64_ones():
    """The CPU path hashes in numpy uint32 (wrapping arithmetic); it must give the int64 path's integers."""
    rs = np.random.default_rng(0)
    hi = torch.from_numpy(rs.integers(0, 1 << 32, 4096, dtype=np.int64))
    for n in (1, 7, 64):
        want = rng._row_hashes(hi.clone(), n).numpy()
        got = rng._row_hashes_u32(hi.numpy().astype(np.uint32), n)
        assert got.dtype == np.uint32 and np.array_equal(got.astype(np.int64), want)


def test_row_candidates_equal_one_call_per_block():
    idx = torch.tensor([0, 65535, 7, 123, 40000])
    blocks = [3, 3, 1 << 24, (1 << 24) + 9, 0]
    rows = rng.row_candidates(11, blocks, idx, 6)
    for r, b in enumerate(blocks):
        assert torch.equal(rows[r], rng.candidates(11, b, idx[r:r + 1], 6)[0])
