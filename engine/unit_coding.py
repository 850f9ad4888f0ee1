"""Coding units by content: the encoder step that images (patches) and audio (chunks) share.

A batch holds units of several items (images or clips). Each item brings its share of blocks for this batch.
With content allocation, the batch is first fitted for half the steps with one rate weight per item, steered
so each item's mean KL per unit meets its share (the probe); the item's `split` then turns its units' KL into
block counts. Without it, each item's share is spread evenly. Then `codec.code_units` fits and codes the
batch. None of this needs to be known to decode: the file carries every unit's block count.

Latent priors stitch a unit's latent grids with its neighbours'. `LatentContext` keeps, per item and unit,
the best-known latents (the prior mean until the unit is coded, its coded latents after), so a batch that
borders an earlier one sees exactly what the receiver will.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Generator, Sequence

import numpy as np
import torch

from .codec import EncodeEvent, Reporting, UnitBatch, _members, _weights, code_units
from .config import FitConfig
from .fitting import Objective, adjust_beta, masked_mse, new_state, point_subsets
from .prior import Prior

# split(item, unit ids (n,) of the item's units in this batch, their KL (n,) in bits, blocks) -> (n,) counts
Split = Callable[[int, np.ndarray, np.ndarray, int], np.ndarray]


def uniform(total: int, units: int, cap: int) -> np.ndarray:
    """The same count for every unit (the remainder to the first units: at most two distinct counts)."""
    base = min(cap, total // units)
    n = np.full(units, base, dtype=np.int64)
    n[: min(units, total - base * units)] += 1 if base < cap else 0
    return n


def unit_weights(prior: Prior, seed: int, unit_blocks: Sequence[int], indices: Sequence[np.ndarray],
                 device="cpu") -> torch.Tensor:
    """Receiver side: per unit its block count and coded indices -> flat vectors (U, P)."""
    ub = np.asarray(unit_blocks)
    w = torch.empty(len(ub), prior.n_params, device=device)
    for nb in np.unique(ub):
        us = np.flatnonzero(ub == nb)
        w[torch.from_numpy(us).to(device)] = _weights(prior, _members(prior, int(nb)), seed,
                                                      np.stack([indices[u] for u in us]), device)
    return w


def probe(obj: Objective, prior: Prior, fit: FitConfig, device, steps: int, group: torch.Tensor,
          kl_target: torch.Tensor, gens, total: int, done: int, preview=None):
    """Fit with one rate weight per item (group) steered to its per-unit KL target -> yields events;
    returns (mu, logstd, KL per unit in bits). `preview(pred)` makes event previews where the PSNR is measured."""
    bsz, P = obj.target.shape[0], prior.n_params
    mu_p = obj.mu_p
    ls0 = torch.from_numpy(prior.start_logstd()).to(device)
    n_groups = int(group.max()) + 1
    beta_g = torch.full((n_groups,), prior.beta, device=device)
    st = new_state(mu_p.expand(bsz, P), ls0.expand(bsz, P), beta_g[group][:, None], fit.lr)
    cnt = torch.bincount(group, minlength=n_groups).clamp_min(1)
    kl = torch.zeros(bsz, 1, device=device)
    for it in range(steps):
        _, kl = obj.step(st, gens)
        mean_kl = torch.zeros(n_groups, device=device).index_add_(0, group, kl[:, 0]) / cnt
        beta_g = adjust_beta(beta_g, mean_kl, kl_target, fit.beta_step)
        st.beta = beta_g[group][:, None]
        done += 1
        if it % 5 == 0 or it == steps - 1:
            psnr, prev = float("nan"), None
            if it % 25 == 0 or it == steps - 1:
                pred = obj.mean_prediction(st)
                mse = masked_mse(pred, obj.target, obj.weight)
                psnr = float((-10 * torch.log10(mse.clamp_min(1e-10))).mean())
                prev = preview(pred) if preview is not None else None
            yield EncodeEvent("fit", done, total, 0, 1, psnr, kl.cpu().numpy(), prev)
    with torch.no_grad():
        kl_units = obj.kl_bits(st).sum(1)
    return st.mu.detach(), st.logstd.detach(), kl_units.cpu().numpy()


@dataclass
class ContentBatch:
    """One encoder batch. target (B, N, C) on the network scale, `field` the prior's networks for it,
    `weight` (B, N, 1) or None, `item` (B,) which image/clip each unit belongs to, `unit_ids` (B,) each
    unit's index within its item (names its noise stream), `share` item -> blocks for its units here,
    `gens` the units' noise generators."""

    target: torch.Tensor
    field: object
    weight: torch.Tensor | None
    item: np.ndarray
    unit_ids: np.ndarray
    share: dict
    gens: object


@dataclass
class CodedBatch:
    blocks: np.ndarray            # (B,) blocks of each unit
    indices: np.ndarray           # (B, max blocks) coded indices, zero-padded
    kl: np.ndarray                # (B, max blocks) KL of each block when coded
    probe_kl: np.ndarray | None   # (B,) KL per unit after the probe (None without content allocation)


def code_by_content(b: ContentBatch, prior: Prior, fit: FitConfig, device, seed: int, split: Split | None,
                    report: Reporting, probe_preview=None, adapt=None) -> Generator[EncodeEvent, None, CodedBatch]:
    """Allocate blocks to the batch's units (by `split` after a probe, or evenly when `split` is None), then
    fit and code them. `report.total_offset` = (units before this batch, units in all) scales the step
    counts of the events; `probe_preview` makes the probe's previews. `adapt` (a hierarchy.ImageDelta) fits
    and codes each item's network delta in the probe, from the item's share, before its units are split
    (`adapt.coded` keeps the deltas)."""
    n = len(b.item)
    items = np.unique(b.item)
    mu_p, ls_p = prior.tensors(device)
    probe_steps = fit.steps // 2 if split is not None else 0
    before, n_all = report.total_offset
    per_batch = fit.steps + fit.refine_groups * (fit.refine_first + fit.refine_last) // 2
    total = max(1, int(round(per_batch * max(1, n_all / n))))
    done = int(round(per_batch * before / n))
    blocks = np.zeros(n, dtype=np.int64)
    start, probe_kl = None, None
    share = dict(b.share)
    if adapt is not None or split is not None:   # the probe's objective (the coding phase builds its own)
        obj = Objective(b.field, b.target, mu_p, ls_p, None, 1, b.weight, point_subsets(b.field, fit.points, fit.seed))
    if adapt is not None:
        ls0 = torch.from_numpy(prior.start_logstd()).to(device)
        probe_steps = fit.steps // 2
        mu, ls, probe_kl, used = yield from adapt.probe(obj, fit, device, seed, probe_steps, b.item,
                                                        {i: share[i] * prior.kappa for i in items}, prior.beta,
                                                        ls0, b.gens, total, done, probe_preview, b.unit_ids)
        start = (mu, ls)
        for i, nb in used.items():
            share[i] = max(float((b.item == i).sum()), share[i] - nb)   # every unit keeps one block at least
    elif split is not None:
        _, grp = np.unique(b.item, return_inverse=True)
        kl_target = torch.tensor([b.share[i] * prior.kappa / (b.item == i).sum() for i in items],
                                 device=device, dtype=torch.float32)
        mu, ls, probe_kl = yield from probe(obj, prior, fit, device, probe_steps, torch.from_numpy(grp).to(device),
                                            kl_target, b.gens, total, done, probe_preview)
        start = (mu, ls)
    for i in items:
        sel = b.item == i
        blocks[sel] = (split(int(i), b.unit_ids[sel], probe_kl[sel], int(round(share[i]))) if split is not None
                       else uniform(int(round(share[i])), int(sel.sum()), prior.n_params))
    counts = np.unique(blocks)
    classes = [_members(prior, int(k)) for k in counts]
    batch = UnitBatch(b.target, b.field, classes, b.weight, np.searchsorted(counts, blocks), start, b.unit_ids)
    idx, coded_kl = yield from code_units(batch, prior, replace(fit, steps=fit.steps - probe_steps), device,
                                          seed, replace(report, done_before=probe_steps))
    return CodedBatch(blocks, idx, coded_kl, probe_kl if split is not None else None)


class LatentContext:
    """Per item, every unit's best-known latents (n_units, n_latents): the prior mean until the unit is coded,
    then the latents the receiver will decode for it. Batches stitch units outside them from here."""

    def __init__(self, prior: Prior, units_per_item: Sequence[int], device):
        mu = prior.tensors(device)[0][:prior.latent.n_latents]
        self.n_latents = prior.latent.n_latents
        self.items = [mu.expand(n, -1).clone() for n in units_per_item]

    def __getitem__(self, item: int) -> torch.Tensor:
        return self.items[item]

    def record(self, prior: Prior, seed: int, part: Sequence[tuple[int, int]], coded: CodedBatch, device):
        """Store the coded latents of a batch's units, `part` = [(item, unit), ...] in batch order."""
        nb = coded.blocks
        w = unit_weights(prior, seed, nb, [coded.indices[k, :nb[k]] for k in range(len(part))], device)
        for k, (i, u) in enumerate(part):
            self.items[i][u] = w[k, :self.n_latents]
