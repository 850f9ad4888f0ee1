"""Batched beta-ELBO fitting of factorised Gaussian posteriors over B SIRENs at once.

loss = sum_items [ MSE_item + sum_blocks beta[item, block] * KL[item, block] (bits) ].
Items never interact (Adam is elementwise and the loss is a sum), so fitting a batch equals fitting
each item alone. Weights that are already coded are frozen to their sample and carry no KL.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import rng
from .posterior import LN2, block_sums, kl_gauss


@dataclass
class FitState:
    """Mutable fitting state of B posteriors (all tensors on one device)."""

    mu: torch.Tensor          # (B, P) posterior means (leaf, requires grad)
    logstd: torch.Tensor      # (B, P) posterior log-stds (leaf, requires grad)
    beta: torch.Tensor        # (B, nb) or (1, 1) rate weights
    frozen: torch.Tensor      # (P,) bool: coded weights
    fixed: torch.Tensor       # (B, P) values of coded weights
    opt: torch.optim.Optimizer


def new_state(mu0: torch.Tensor, logstd0: torch.Tensor, beta0: torch.Tensor, lr: float,
              lr_std: float | None = None) -> FitState:
    mu = mu0.detach().clone().requires_grad_(True)
    logstd = logstd0.detach().clone().requires_grad_(True)
    frozen = torch.zeros(mu.shape[1], dtype=torch.bool, device=mu.device)
    return FitState(mu, logstd, beta0.clone(), frozen, torch.zeros_like(mu0),
                    torch.optim.Adam([{"params": [mu], "lr": lr},
                                     {"params": [logstd], "lr": lr_std or 5 * lr}]))


class PointSubsets:
    """Which grid points each fitting step measures the distortion on (encoder only; files do not change).

    Every step takes a fresh random `fraction` of the unit's whole grid (`field.grid` points: p*p pixels of a
    patch, the samples of a chunk), the same points for every unit of the batch, drawn from a stream seeded by
    `seed` alone. The field may hold only some grid points (`field.points`: a batch whose units all miss part of
    the grid); then a step uses the drawn points among those. So a unit sees the same points whatever else is in
    its batch. The MSE over a random subset is an unbiased estimate of the MSE over the grid, and a step costs
    about `fraction` of a full one: the encoder spends the time on more steps instead."""

    def __init__(self, field, fraction: float, seed: int):
        self.grid = int(field.grid)
        self.m = max(1, math.ceil(fraction * self.grid))
        self.gen = torch.Generator().manual_seed(1_000_033 * seed + 4_099)
        self.device = field.emb.device
        self.lookup = None
        if field.points is not None:   # grid position -> index among the field's points, -1 where absent
            self.lookup = torch.full((self.grid,), -1, dtype=torch.int64)
            self.lookup[field.points.cpu()] = torch.arange(len(field.points))

    def draw(self) -> torch.Tensor:
        """This step's points: (n,) sorted indices into the field's points (n <= fraction * grid, may be 0)."""
        s = torch.randperm(self.grid, generator=self.gen)[:self.m].sort().values
        if self.lookup is not None:
            s = self.lookup[s]
            s = s[s >= 0]
        return s.to(self.device)


def point_subsets(field, fraction: float, seed: int) -> PointSubsets | None:
    """PointSubsets for a field that can evaluate a subset of its points (`field.at`), or None (all points)."""
    if fraction >= 1.0 or not hasattr(field, "at"):
        return None
    return PointSubsets(field, fraction, seed)


class Objective:
    """Data, prior and block layout a FitState is fitted against. `field` maps the sampled flat vectors
    (B, P) to predictions (B, N, C) (a latent.Field, or any callable of that shape). With `points` (see
    PointSubsets) each step measures the distortion on a fresh subset of the grid."""

    def __init__(self, field, target: torch.Tensor, mu_p: torch.Tensor, logstd_p: torch.Tensor,
                 block_of: torch.Tensor | None = None, n_blocks: int = 1, weight: torch.Tensor | None = None,
                 points: PointSubsets | None = None):
        self.field, self.target = field, target  # target (B, N, C)
        self.points = points
        self.weight = weight  # (B, N, 1) 0 in the padding of a last chunk, else 1 or the chunk envelope's factor**2
        self.mu_p, self.logstd_p = mu_p, logstd_p           # (P,)
        dev = mu_p.device
        self.block_of = (block_of if block_of is not None
                         else torch.zeros(mu_p.shape[0], dtype=torch.int64, device=dev))
        self.n_blocks = n_blocks

    def kl_bits(self, st: FitState) -> torch.Tensor:
        """Per-weight KL in bits, zero for frozen weights -> (B, P)."""
        kl = kl_gauss(st.mu, st.logstd, self.mu_p, self.logstd_p) / LN2
        return kl.masked_fill(st.frozen, 0.0)

    def sample(self, st: FitState, gen) -> torch.Tensor:
        """gen: a torch.Generator for the whole batch, a list with one per item, or rng.UnitNoise."""
        if isinstance(gen, rng.UnitNoise):
            eps = gen.normal(st.mu.shape[1])
        elif isinstance(gen, list):  # one stream per item: an item's noise does not depend on its batch
            eps = torch.stack([torch.randn(st.mu.shape[1], generator=g, device=st.mu.device) for g in gen])
        else:
            eps = torch.randn(st.mu.shape, generator=gen, device=st.mu.device)
        w = st.mu + torch.exp(st.logstd) * eps
        return torch.where(st.frozen, st.fixed, w)

    def step(self, st: FitState, gen) -> tuple[torch.Tensor, torch.Tensor]:
        """One Adam step on all items -> (mse (B,), block KL (B, nb)), both detached."""
        mse = self.distortion(self.sample(st, gen))  # (B,)
        klb = block_sums(self.kl_bits(st), self.block_of, self.n_blocks)  # (B, nb)
        loss = mse.sum() + (st.beta * klb).sum()
        st.opt.zero_grad(set_to_none=True)
        loss.backward()
        st.opt.step()
        return mse.detach(), klb.detach()

    def distortion(self, w: torch.Tensor) -> torch.Tensor:
        """(B, P) sampled vectors -> this step's MSE per unit (B,): over every point, or over the next drawn
        subset (a unit none of whose drawn points is inside its signal gets 0)."""
        if self.points is None:
            return masked_mse(self.field(w), self.target, self.weight)
        sel = self.points.draw()                                           # (n,)
        weight = None if self.weight is None else self.weight[:, sel]
        if weight is None and len(sel) == 0:
            return w.new_zeros(w.shape[0])
        return masked_mse(self.field.at(sel)(w), self.target[:, sel], weight)

    @torch.no_grad()
    def mean_prediction(self, st: FitState) -> torch.Tensor:
        """Network output at the posterior means, coded weights at their samples -> (B, N, C)."""
        return self.field(torch.where(st.frozen, st.fixed, st.mu))

    @torch.no_grad()
    def mean_mse(self, st: FitState) -> torch.Tensor:
        """Distortion of the posterior means (coded weights at their samples) -> (B,)."""
        return masked_mse(self.mean_prediction(st), self.target, self.weight)


def masked_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """(B, N, C) x2, optional (B, N, 1) weight -> per-item mean of the weighted squared error over the samples
    whose weight is not zero (B,). A 0/1 weight is a mask; other weights rescale each sample's error (the audio
    chunk envelope, engine/audio_envelope.py). An audio_shaping.ShapedWeight also filters the error first."""
    if weight is None:
        return ((pred - target) ** 2).mean(dim=(1, 2))
    e = pred - target
    if hasattr(weight, "filtered"):  # an audio_shaping.ShapedWeight: the error through each unit's filter
        e, weight = weight.filtered(e), weight.weight
    se = (e ** 2 * weight).sum(dim=(1, 2))
    return se / ((weight > 0).sum(dim=(1, 2)) * target.shape[2]).clamp_min(1.0)


def adjust_beta(beta: torch.Tensor, kl: torch.Tensor, target: float, step: float) -> torch.Tensor:
    """Multiplicative controller: log beta moves by step * clip(log(KL / target), -1, 1)."""
    ratio = torch.log(kl.clamp_min(1e-3) / target).clamp(-1.0, 1.0)
    return beta * torch.exp(step * ratio)
