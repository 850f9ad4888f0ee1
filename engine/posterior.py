"""Factorised Gaussian posteriors over flat weight vectors, and their KL to a factorised Gaussian prior."""
from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def kl_gauss(mu_q: torch.Tensor, logstd_q: torch.Tensor,
             mu_p: torch.Tensor, logstd_p: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mu_q, s_q^2) || N(mu_p, s_p^2)) in nats (broadcasting)."""
    var_ratio = torch.exp(2.0 * (logstd_q - logstd_p))
    t = ((mu_q - mu_p) * torch.exp(-logstd_p)) ** 2
    return 0.5 * (var_ratio + t - 1.0) - (logstd_q - logstd_p)


def block_sums(x: torch.Tensor, block_of: torch.Tensor, n_blocks: int) -> torch.Tensor:
    """Sum (B, P) over weights of each block: block_of (P,) or per item (B, P), int64 in [0, n_blocks)
    -> (B, n_blocks)."""
    out = torch.zeros(x.shape[0], n_blocks, dtype=x.dtype, device=x.device)
    if block_of.dim() == 2:
        return out.scatter_add_(1, block_of, x)
    return out.index_add_(1, block_of, x)


def prior_update(mu_q: torch.Tensor, logstd_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form prior that maximises the average ELBO over items: (N, P) posteriors -> mu_p, logstd_p (P,).

    mu_p = mean_n mu_n;  sigma_p^2 = mean_n (sigma_n^2 + (mu_n - mu_p)^2).
    """
    mu_p = mu_q.mean(0)
    var_p = (torch.exp(2.0 * logstd_q) + (mu_q - mu_p) ** 2).mean(0)
    return mu_p, 0.5 * torch.log(var_p)
