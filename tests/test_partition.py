import numpy as np

from engine.partition import block_members, block_of


def test_exact_block_count_nonempty_and_balanced():
    rs = np.random.default_rng(0)
    prof = rs.exponential(1.0, 2000).astype(np.float32)
    order = rs.permutation(2000)
    for n in [1, 3, 40, 125, 700, 2000]:
        bo = block_of(order, prof, n, 16)
        counts = np.bincount(bo, minlength=n)
        assert bo.min() == 0 and bo.max() == n - 1 and counts.min() >= 1
        if n <= 125:
            kl = np.bincount(bo, weights=prof.astype(np.float64), minlength=n) * (16 * n / prof.sum())
            assert np.abs(kl - 16).max() < 6  # greedy packing keeps blocks near kappa
        assert sum(len(m) for m in block_members(bo, n)) == 2000


def test_partition_is_a_pure_function():
    rs = np.random.default_rng(1)
    prof, order = rs.random(500).astype(np.float32), rs.permutation(500)
    assert np.array_equal(block_of(order, prof, 37, 16), block_of(order.copy(), prof.copy(), 37, 16))


def test_weights_heavier_than_kappa_do_not_empty_blocks():
    prof = np.array([100.0, 0.1, 0.1, 50.0, 0.1, 0.1, 0.1, 0.1], dtype=np.float32)
    bo = block_of(np.arange(8), prof, 5, 16)
    assert np.bincount(bo, minlength=5).min() >= 1
