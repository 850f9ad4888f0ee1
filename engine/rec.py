"""Relative entropy coding of one block: depth-limited A* / Poisson functional representation.

Sender and receiver share the prior p (mu_p, sigma_p for the block's weights) and the candidate stream of
`rng.candidates`. The sender draws K = 2**kappa candidates w_k = mu_p + sigma_p * z_k and sends
    k* = argmax_k  log q(w_k)/p(w_k) - log T_k,
T_k the k-th arrival time of a unit-rate Poisson process (sender-private randomness). The receiver
recomputes only candidate k*. For Gaussian q and p the log-ratio is a quadratic in z, so scoring all K
candidates for B items at once is two matrix products (`_scores`).
"""
from __future__ import annotations

import torch

from . import rng

SCORE_BUDGET = 1 << 22   # candidate weights (K x d) scored at a time: bounds memory whatever the block size
SHARED_TABLE_BUDGET = 1 << 24  # largest candidate table (K x d) kept to share between classes of units
SCORE_COLS = 16          # items scored per matrix product (the last product padded): see `_scores`


def candidate_table(seed: int, block: int, kappa: int, dim: int, device) -> torch.Tensor:
    """All 2**kappa candidates of one block -> (K, dim); its first d columns are the table of the same block
    with d weights (the candidate stream is a prefix code in the weight position)."""
    return rng.candidates(seed, block, torch.arange(1 << kappa, device=device), dim)


def log_ratio_coeffs(mu_q: torch.Tensor, logstd_q: torch.Tensor, mu_p: torch.Tensor,
                     logstd_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log q(w)/p(w) at w = mu_p + sigma_p z equals sum_j (a_j z_j^2 + b_j z_j) + const.

    mu_q, logstd_q: (B, d); mu_p, logstd_p: (d,) -> a, b: (B, d).
    """
    r = torch.exp(logstd_p - logstd_q)          # sigma_p / sigma_q
    c = (mu_p - mu_q) * torch.exp(-logstd_q)    # (mu_p - mu_q) / sigma_q
    return -0.5 * (r * r - 1.0), -r * c


def select(seed: int, block: int, kappa: int, mu_q: torch.Tensor, logstd_q: torch.Tensor,
           mu_p: torch.Tensor, logstd_p: torch.Tensor,
           gen, table: torch.Tensor | None = None) -> torch.Tensor:
    """Indices chosen for B items for one block -> (B,) int64. All tensors on one device. `gen`: the
    sender's private randomness, one torch.Generator for all items, a list of one per item, or rng.UnitNoise;
    with it the choice is A* coding's, an exact sample of q. With `gen` None the choice is the candidate of
    largest importance weight q/p, with no noise (`FitConfig.sample` False, the default). Why that candidate:
    where q is stationary for the beta-ELBO, log q/p(w) equals -D(w)/beta up to a constant for the diagonal
    quadratic model of the distortion D around q's mean, so it is the candidate of least predicted
    distortion; it measures 0.1-0.2 dB better than A*'s sample at the same rate (docs/results.md). The
    receiver needs neither: it regenerates the chosen candidate from its index, so files decode the same.
    `table`: this block's (K, d) candidates if the caller already has them (`candidate_table`)."""
    dev = mu_q.device
    k = 1 << kappa
    step = max(1, SCORE_BUDGET // max(1, mu_p.shape[0]))
    a, b = log_ratio_coeffs(mu_q, logstd_q, mu_p, logstd_p)                   # (B, d)
    log_arrivals = (torch.log(torch.cumsum(_arrival_noise(gen, block, k, mu_q), 0))   # (K, B)
                    if gen is not None else None)
    if step < k:  # a large block: score the candidates in chunks (same result, bounded memory)
        return _select_chunked(seed, block, k, step, a, b, log_arrivals, mu_p.shape[0], table)
    z = table if table is not None else rng.candidates(seed, block, torch.arange(k, device=dev), mu_p.shape[0])
    score = _scores(z, a, b)                                                   # (K, B)
    return torch.argmax(score if log_arrivals is None else score - log_arrivals, dim=0)


def shortlist(seed: int, block: int, kappa: int, mu_q: torch.Tensor, logstd_q: torch.Tensor,
              mu_p: torch.Tensor, logstd_p: torch.Tensor, m: int,
              table: torch.Tensor | None = None) -> torch.Tensor:
    """The m candidates of largest importance weight q/p for B items, best first -> (m, B) int64. Its first
    row is `select`'s choice without noise. The encoder may check these few against the true distortion
    (`FitConfig.shortlist`); the receiver needs only the index sent."""
    k = 1 << kappa
    m = min(m, k)
    step = max(m, SCORE_BUDGET // max(1, mu_p.shape[0]))
    a, b = log_ratio_coeffs(mu_q, logstd_q, mu_p, logstd_p)                   # (B, d)
    return _top_chunked(seed, block, k, min(step, k), a, b, None, mu_p.shape[0], table, m)[1]


def _select_chunked(seed: int, block: int, k: int, step: int, a: torch.Tensor, b: torch.Tensor,
                    log_arrivals: torch.Tensor | None, d: int, table: torch.Tensor | None = None) -> torch.Tensor:
    """argmax over K candidates scored `step` at a time; the first maximum wins, as torch.argmax's."""
    return _top_chunked(seed, block, k, step, a, b, log_arrivals, d, table, 1)[1][0]


def _top_chunked(seed: int, block: int, k: int, step: int, a: torch.Tensor, b: torch.Tensor,
                 log_arrivals: torch.Tensor | None, d: int, table: torch.Tensor | None,
                 m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The m best of K candidates scored `step` at a time -> (scores (m, B), indices (m, B)), best first.
    With m = 1 the first maximum wins, as torch.argmax's."""
    dev = a.device
    best = best_idx = None
    for s in range(0, k, step):
        z = (table[s:s + step] if table is not None
             else rng.candidates(seed, block, torch.arange(s, min(k, s + step), device=dev), d))
        sc = _scores(z, a, b)                                                  # (step, B)
        if log_arrivals is not None:
            sc = sc - log_arrivals[s:s + step]
        if m == 1:
            i = torch.argmax(sc, dim=0)[None]                                  # first maximum, as argmax's
        else:
            i = _topk(sc, m)
        v, i = sc.gather(0, i), i + s                                          # (m', B)
        if best is None:
            best, best_idx = v, i
        elif m == 1:
            better = v > best
            best, best_idx = torch.where(better, v, best), torch.where(better, i, best_idx)
        else:
            v, i = torch.cat([best, v]), torch.cat([best_idx, i])
            j = _topk(v, m)
            best, best_idx = v.gather(0, j), i.gather(0, j)
    return best, best_idx


def _scores(z: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log q/p up to a constant of candidates z (K, d) for B items with coefficients a, b (B, d) -> (K, B).

    A matrix product rounds a column differently with the number of columns (measured on CPU up to 4e-5 for
    65 536 candidates), which could change an item's chosen candidate with its batch. So the items are scored
    SCORE_COLS at a time in products of that one shape (one batched product; the last group padded with
    zeros), and an item's scores are the same whatever else is in its batch."""
    n, d = a.shape
    pad = -n % SCORE_COLS
    if pad:
        a, b = torch.cat([a, a.new_zeros(pad, d)]), torch.cat([b, b.new_zeros(pad, d)])
    g = (n + pad) // SCORE_COLS
    a3 = a.reshape(g, SCORE_COLS, d).transpose(1, 2)                          # (G, d, COLS)
    b3 = b.reshape(g, SCORE_COLS, d).transpose(1, 2)
    sc = torch.matmul(z * z, a3) + torch.matmul(z, b3)                       # (G, K, COLS)
    return sc.transpose(0, 1).reshape(z.shape[0], g * SCORE_COLS)[:, :n]


def _topk(sc: torch.Tensor, m: int) -> torch.Tensor:
    """Row positions of the m largest of each column of sc (n, B), largest first. Each column is ranked on
    its own, so an item's shortlist does not depend on its batch (exact ties, of probability zero for
    continuous candidates, may come in either order)."""
    return torch.topk(sc, min(m, sc.shape[0]), dim=0).indices


def _arrival_noise(gen, block: int, k: int, mu_q: torch.Tensor) -> torch.Tensor:
    """(K, B) unit exponentials (sender-private): -log(1 - u) of uniforms u in [0, 1), as torch's vectorised
    uniform draw is several times faster on a CPU than its exponential one."""
    dev = mu_q.device
    if isinstance(gen, rng.UnitNoise):
        return gen.exponential(block, k)
    if isinstance(gen, list):
        u = torch.stack([torch.rand(k, device=dev, generator=g) for g in gen], dim=1)
    else:
        u = torch.rand(k, mu_q.shape[0], device=dev, generator=gen)
    return torch.log1p(-u).neg_()


def sample_of(seed: int, block: int, index: torch.Tensor, mu_p: torch.Tensor,
              logstd_p: torch.Tensor) -> torch.Tensor:
    """Weights of the candidates `index` (B,) of one block -> (B, d). Used by sender and receiver alike."""
    z = rng.candidates(seed, block, index, mu_p.shape[0])
    return mu_p + torch.exp(logstd_p) * z
