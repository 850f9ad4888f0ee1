"""Image-level adaptation of a shared-network latent prior: the top level of the weight hierarchy (issue 11).

A latent prior with `latent.shared` renders every patch with one network stored in the prior; a patch sends
only its latent grids. A kind-11 file also sends, before its patches, a delta on that network's weights for
the whole image: the image's patches are rendered with w_prior + delta.

Sender/receiver contract.
- The delta (P_inr,) has the prior N(0, s_l^2), one scale per network layer l (weights and bias together).
  The sender fits the scales to its image and sends one byte each: s_l = 2 ** -(code_l * SCALE_STEP).
- Its weights are split into `blocks` interleaved blocks: block b holds the positions j with j % blocks == b
  (every block sees every layer, so blocks carry similar information). The receiver needs only the count.
- Block b is coded by A* like a patch's block, from candidate stream DELTA_STREAM + b of the file's seed
  (streams of its own, never shared with a patch's).
- The receiver reads scales and count from the header, the delta's indices from the start of the payload,
  and rebuilds delta[j] = s_l(j) * candidate(seed, DELTA_STREAM + b, index_b)[position of j in block b].

Encoder. In the batch where an image's first patches are coded, its latents and the delta are fitted together
(the probe of content allocation), the delta's total KL counted in the image's rate at the same beta. Then the
scales are fixed (closed form, quantised), each delta block is steered to about kappa bits, and the blocks are
coded in groups with fine-tuning of the rest after each (as COMBINER does for weights). The patches are then
allocated what is left of the image's blocks and coded as usual against the adapted network. An image larger
than one batch codes its delta with its first band; later bands use it. The encoder gives each such image a
batch of its own, so its file does not depend on the other images it is encoded with.

Group deltas (kind 15). With a group side G, the image's patch grid is cut into groups of G x G patches
(row-major; the last row and column of groups may be smaller) and each group gets a delta of its own, with
its own scale codes and block count, rendered as w_prior + delta_g for the group's patches. Every group's
block b is coded from the same candidate stream DELTA_STREAM + b (as every patch's block b shares stream b);
the receiver decodes each group exactly as a kind-11 delta. The encoder fits all of an image's group deltas
in one probe with one beta for the image (the groups' KL count in the image's rate together), so the image's
content allocation across patches is unchanged; a group cut by a band boundary is coded with the first band
that holds a patch of it.

Three levels (kind 15 with flag bit 0, `ImageDelta(top=True)`). An image-level delta sits under the group
deltas: the patches of group g render with w_prior + delta_image + delta_g, so what every group wants is paid
once and each group's delta is the residual of its region. The image delta has its own scale codes and block
count in the header, its indices come first in the payload, and its block b is drawn from candidate stream
TOP_STREAM + b (streams no group delta uses). The encoder fits it with the group deltas and the latents in the
same probe (the same beta, its KL in the image's rate), codes it first (blocks in groups, fine-tuning of
everything left after each) and then the group deltas, then the patches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import cancel, rec, rng
from .container import group_grid
from .codec import EncodeEvent
from .config import FitConfig, InrConfig
from .errors import CmbFormatError
from .fitting import Objective, adjust_beta, masked_mse, new_state
from .posterior import LN2, block_sums, kl_gauss

SCALE_STEP = 0.25          # log2 steps of the scale codes
DELTA_STREAM = 1 << 24     # candidate streams of the delta's blocks: DELTA_STREAM + b
MAX_BLOCKS = 1 << 12       # delta blocks at most (a network of 64k weights at 16 weights a block)
TOP_STREAM = DELTA_STREAM + MAX_BLOCKS   # candidate streams of an image-level delta under groups: TOP_STREAM + b
SCALE_EVERY = 25           # probe steps between closed-form updates of the scales
GROUPS_PER_REFINE = 4      # the delta's blocks are coded in up to 4 * fit.refine_groups groups, fine-tuned after each
KEY_SPAN = 1 << 20         # encoder keys of group deltas: item * KEY_SPAN + group
TOP_GROUP = KEY_SPAN - 1   # the group number in the key of an image-level delta under groups
NOISE_STRIDE = 7_919       # the encoder noise streams of group g's delta are offset by g * NOISE_STRIDE


def adapts(prior) -> bool:
    """Whether files coded with this prior may carry a network delta: a shared-network latent prior (its units
    have no network weights of their own). Images (kind 11) and audio (kind 12) alike."""
    return prior.latent is not None and prior.latent.shared


def widest_fields(inr: InrConfig) -> tuple[tuple[int, ...], int]:
    """(scale codes, blocks) whose header fields are the longest a delta of this network writes: what an
    encoder counts when it sizes a file before fitting."""
    return (0,) * len(inr.layer_shapes()), MAX_BLOCKS


def group_of_units(grid: tuple[int, int], side: int) -> np.ndarray:
    """Patch grid (rows, cols) and group side -> (rows * cols,) the row-major group of every patch."""
    rows, cols = grid
    r, c = np.divmod(np.arange(rows * cols), cols)
    return (r // side) * group_grid(rows, cols, side)[1] + c // side


def from_header(prior, hdr, indices: np.ndarray, device="cpu") -> torch.Tensor | None:
    """Receiver side: the delta a kind-11/12 header announces (its indices lead the payload) -> (P_inr,), the
    group deltas of a kind-15 header -> (groups, P_inr), or None without one. CmbFormatError when the fields
    do not fit the prior's network."""
    if hdr.group_deltas:
        top_codes, top_blocks = hdr.top_delta
        if not adapts(prior) or len(hdr.group_deltas[0][0]) != len(prior.inr.layer_shapes()) \
                or max(b for _, b in hdr.group_deltas + (hdr.top_delta,)) > min(MAX_BLOCKS, prior.inr.n_params):
            raise CmbFormatError(f"corrupt .cmb header: the group deltas do not fit prior {prior.name}")
        offs = top_blocks + np.cumsum([0] + [b for _, b in hdr.group_deltas])
        groups = torch.stack([decode(prior.inr, codes, hdr.seed, indices[offs[g]:offs[g + 1]], device)
                              for g, (codes, _) in enumerate(hdr.group_deltas)])
        if top_blocks:
            groups = groups + decode(prior.inr, top_codes, hdr.seed, indices[:top_blocks], device, TOP_STREAM)
        return groups
    if not hdr.delta_blocks:
        return None
    if not adapts(prior) or len(hdr.delta_scales) != len(prior.inr.layer_shapes()) \
            or hdr.delta_blocks > min(MAX_BLOCKS, prior.inr.n_params):
        raise CmbFormatError(f"corrupt .cmb header: the network delta does not fit prior {prior.name}")
    return decode(prior.inr, hdr.delta_scales, hdr.seed, indices[:hdr.delta_blocks], device)


def layer_of(inr: InrConfig) -> torch.Tensor:
    """Layer index of every weight of the flat network vector -> (P_inr,) int64."""
    return torch.cat([torch.full((i * o + o,), li, dtype=torch.int64) for li, (i, o) in
                      enumerate(inr.layer_shapes())])


def logstd_of(inr: InrConfig, codes, device) -> torch.Tensor:
    """Scale codes (one per layer) -> the delta prior's log-std of every weight (P_inr,)."""
    ls = torch.tensor([-c * SCALE_STEP * math.log(2.0) for c in codes], dtype=torch.float32, device=device)
    return ls[layer_of(inr).to(device)]


def layer_means(inr: InrConfig, values: torch.Tensor) -> torch.Tensor:
    """(..., P_inr) -> (..., layers): the mean of `values` over each layer's weights (and bias)."""
    layer = layer_of(inr).to(values.device)
    per_layer = torch.bincount(layer, minlength=len(inr.layer_shapes())).to(values.dtype)
    out = torch.zeros(*values.shape[:-1], len(per_layer), dtype=values.dtype, device=values.device)
    return out.index_add_(values.dim() - 1, layer, values) / per_layer


def start_logstd(inr: InrConfig, shared: torch.Tensor) -> torch.Tensor:
    """The log-std a new delta's prior starts from before its scales are fitted -> (P_inr,): per layer, an
    eighth of the RMS of the shared network's own weights."""
    return (0.5 * torch.log(layer_means(inr, shared ** 2)) - math.log(8.0))[layer_of(inr).to(shared.device)]


def codes_of(var_per_layer: torch.Tensor) -> tuple[int, ...]:
    """Per-layer variances -> the nearest scale codes (0..255)."""
    c = torch.round(-0.5 * torch.log2(var_per_layer.clamp_min(2.0 ** -128)) / SCALE_STEP).clamp(0, 255)
    return tuple(int(v) for v in c)


def members(n: int, blocks: int) -> list[np.ndarray]:
    """Weight positions of each delta block: block b holds j with j % blocks == b."""
    return [np.arange(b, n, blocks) for b in range(blocks)]


def decode(inr: InrConfig, codes, seed: int, indices: np.ndarray, device="cpu",
           stream: int = DELTA_STREAM) -> torch.Tensor:
    """Receiver side: scale codes and the delta's indices (blocks,) -> delta (P_inr,); block b drawn from
    candidate stream `stream` + b (TOP_STREAM for an image-level delta under groups)."""
    if len(codes) != len(inr.layer_shapes()):
        raise ValueError(f"{len(codes)} delta scales for a {len(inr.layer_shapes())}-layer network")
    n, ls = inr.n_params, logstd_of(inr, codes, device)
    blocks = len(indices)
    if not 1 <= blocks <= n:
        raise ValueError(f"{blocks} delta blocks for {n} weights")
    delta = torch.zeros(n, device=device)
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=device)
    ms = members(n, blocks)
    # Blocks of one size (there are at most two sizes) are drawn together: delta[j] = s_l(j) * z.
    for size in {len(j) for j in ms}:
        bs = [b for b, j in enumerate(ms) if len(j) == size]
        pos = torch.from_numpy(np.stack([ms[b] for b in bs])).to(device)                          # (G, size)
        z = rng.row_candidates(seed, [stream + b for b in bs], idx[bs], size)                  # (G, size)
        delta[pos] = torch.exp(ls[pos]) * z
    return delta


@dataclass
class CodedDelta:
    codes: tuple[int, ...]     # scale code of each layer
    indices: np.ndarray        # (blocks,) int64
    delta: torch.Tensor | None  # (P_inr,) the decoded delta (what the receiver rebuilds)

    @property
    def fields(self) -> tuple[tuple[int, ...], int]:
        """(scale codes, blocks): the header fields of this delta (((), 0) for none)."""
        return self.codes, len(self.indices)


NO_DELTA = CodedDelta((), np.zeros(0, dtype=np.int64), None)   # an item coded without a delta (kind 9/10)


def coded_of(adapt: "ImageDelta | None", item: int) -> CodedDelta:
    """What the sender writes for `item` coded with one delta (kind 11/12, or an image of one group): its
    coded delta, or NO_DELTA (no adaptation, or nothing coded)."""
    if adapt is None:
        return NO_DELTA
    return adapt.coded.get(item * KEY_SPAN if adapt.sides is not None else item, NO_DELTA)


class ImageDelta:
    """Encoder state of one encode call: each item's coded delta (or, with `sides`, each of its groups'),
    once its first batch has coded it. Deltas are keyed by item, or with `sides` (each item's group side in
    patches, 0 for one group; `grids` each item's patch grid (rows, cols)) by item * KEY_SPAN + group. With
    `top`, an item of more than one group also gets an image-level delta under its groups' (three levels),
    keyed item * KEY_SPAN + TOP_GROUP."""

    def __init__(self, inr: InrConfig, shared: torch.Tensor, kappa: int, sides: "list[int] | None" = None,
                 grids: "list[tuple[int, int]] | None" = None, top: bool = False):
        self.inr, self.shared, self.kappa = inr, shared, kappa   # shared (P_inr,): the prior's network
        self.grids, self.top = grids, bool(top) and sides is not None
        self.sides = None if sides is None else [int(s) or max(g) for s, g in zip(sides, grids)]
        if sides is not None and max(self.n_groups(i) for i in range(len(grids))) > KEY_SPAN:
            raise ValueError("at most KEY_SPAN delta groups per item")
        self.coded: dict[int, CodedDelta] = {}

    def keys_of(self, items: np.ndarray, unit_ids: np.ndarray) -> np.ndarray:
        """(B,) item and (B,) unit index within it -> (B,) the key of the delta each unit is rendered with."""
        items = np.asarray(items, dtype=np.int64)
        if self.sides is None:
            return items
        maps = {int(i): group_of_units(self.grids[int(i)], self.sides[int(i)]) for i in np.unique(items)}
        groups = np.array([maps[int(i)][int(u)] for i, u in zip(items, unit_ids)], dtype=np.int64)
        return items * KEY_SPAN + groups

    def n_groups(self, item: int) -> int:
        gr, gc = group_grid(*self.grids[item], self.sides[item])
        return gr * gc

    def has_top(self, item: int) -> bool:
        """Whether the item gets an image-level delta under its groups' (three levels, more than one group)."""
        return self.top and self.n_groups(item) > 1

    def top_fields(self, item: int) -> tuple[tuple[int, ...], int]:
        """Kind 15: (scale codes, blocks) of the item's image-level delta under its groups, or ((), 0)."""
        return self.coded[item * KEY_SPAN + TOP_GROUP].fields if self.has_top(item) else ((), 0)

    def group_fields(self, item: int) -> tuple[tuple[tuple[int, ...], int], ...]:
        """Kind 15: (scale codes, blocks) of each of the item's group deltas, in group order."""
        return tuple(self.coded[item * KEY_SPAN + g].fields for g in range(self.n_groups(item)))

    def group_indices(self, item: int) -> np.ndarray:
        """Kind 15: the payload's head: the indices of the item's image-level delta (three levels), then of
        its group deltas, group after group."""
        top = [self.coded[item * KEY_SPAN + TOP_GROUP].indices] if self.has_top(item) else []
        return np.concatenate(top + [self.coded[item * KEY_SPAN + g].indices for g in range(self.n_groups(item))])

    def group_deltas(self, item: int) -> torch.Tensor:
        """Kind 15: what each group of the item adds to the prior's network (its delta, plus the image-level
        delta with three levels) -> (groups, P_inr)."""
        d = torch.stack([self.coded[item * KEY_SPAN + g].delta for g in range(self.n_groups(item))])
        return d + self.coded[item * KEY_SPAN + TOP_GROUP].delta if self.has_top(item) else d

    def chain(self, key: int) -> tuple[int, ...]:
        """The keys of every delta a unit with delta key `key` renders with: its own (its group's or item's),
        then with three levels its item's image-level delta."""
        return (key, key - key % KEY_SPAN + TOP_GROUP) if self.top else (key,)

    def _added(self, key: int) -> torch.Tensor | None:
        """What the coded deltas add to the network of a unit with delta key `key` (None: nothing coded)."""
        parts = [self.coded[k].delta for k in self.chain(key) if k in self.coded]
        return sum(parts[1:], parts[0]) if parts else None

    def weights_of(self, keys: np.ndarray) -> torch.Tensor:
        """(B,) delta key of each unit (its item without groups) -> network weights (adapted by what is
        coded): (B, P_inr), or one (P_inr,) vector when every unit has one key (the network then runs once
        over the whole batch, see siren.forward)."""
        one = len(np.unique(keys)) == 1
        nets = []
        for k in (keys[:1] if one else keys):
            add = self._added(int(k))
            nets.append(self.shared if add is None else self.shared + add)
        return torch.stack(nets)[0 if one else slice(None)]

    def probe(self, obj: Objective, fit: FitConfig, device, seed: int, steps: int, item: np.ndarray,
              kl_target: dict, beta0: float, ls_start: torch.Tensor, gens, total: int, done: int, preview=None,
              unit_ids: np.ndarray | None = None):
        """Fit the batch's latents, and every delta of its units not coded yet (the item's, or with groups its
        groups' that `unit_ids` (B,) name, and with `top` its image-level delta), for `steps` steps with one
        beta per item steered so the item's KL (its units' plus its new deltas') meets kl_target[item] bits;
        then code the new deltas, image-level ones first. Yields
        EncodeEvents; returns (mu, logstd) of the latents, their KL per unit (B,) and the blocks the new deltas
        used per item {item: blocks}. `obj.field.shared` is left at the adapted weights.
        `preview(pred (B, N, C))` makes the events' previews (of the posterior means), as the plain probe's."""
        field, kappa = obj.field, self.kappa
        bsz, P = obj.target.shape[0], obj.mu_p.shape[0]
        keys = self.keys_of(item, unit_ids if unit_ids is not None else np.zeros(len(item), dtype=np.int64))
        items = [int(i) for i in np.unique(item)]
        item_of = {int(k): int(i) for k, i in zip(keys, item)}
        tops = [i * KEY_SPAN + TOP_GROUP for i in items if self.has_top(i)]
        item_of |= {t: t // KEY_SPAN for t in tops}
        new_tops = [t for t in tops if t not in self.coded]
        new = new_tops + [int(k) for k in np.unique(keys) if int(k) not in self.coded]   # image level first
        level = [0] * len(new_tops) + [1] * (len(new) - len(new_tops))
        group_no = [k % KEY_SPAN if self.sides is not None else 0 for k in new]    # each new delta's group
        streams = [TOP_STREAM if lv == 0 else DELTA_STREAM for lv in level]       # its candidate streams
        grp = torch.from_numpy(np.searchsorted(items, item)).to(device)                # (B,) item position
        new_pos = torch.tensor([items.index(item_of[k]) for k in new], dtype=torch.int64, device=device)
        slot = {k: n for n, k in enumerate(new)}
        member = torch.zeros(bsz, len(new), device=device)     # (B, D) 1 where unit b renders with new delta d
        for b, k in enumerate(keys):
            for kk in self.chain(int(k)):
                if kk in slot:
                    member[b, slot[kk]] = 1.0
        st = new_state(obj.mu_p.expand(bsz, P), ls_start.expand(bsz, P), torch.zeros(bsz, 1, device=device), fit.lr)
        n_inr, layer = self.inr.n_params, layer_of(self.inr).to(device)
        # A new delta starts at 0, its posterior std below a prior scale guessed from the network's own (a
        # group's residual under an image-level delta a smaller one).
        ls_p = start_logstd(self.inr, self.shared.to(device))[None]
        under = torch.tensor([lv == 1 and bool(new_tops) for lv in level], device=device)[:, None]
        ls_p = ls_p.expand(len(new), n_inr) - math.log(2.0) * under                     # (D, P_inr)
        d_mu = torch.zeros(len(new), n_inr, device=device, requires_grad=True)
        d_ls = (ls_p - 1.0).clone().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [d_mu], "lr": fit.delta_lr}, {"params": [d_ls], "lr": 5 * fit.delta_lr}])
        frozen = torch.zeros(len(new), n_inr, dtype=torch.bool, device=device)
        coded_d = torch.zeros(len(new), n_inr, device=device)
        # Noise streams of an item's delta depend on the encoder seed alone (as a patch's depend on its
        # position), so an image codes the same whatever else shares its batch.
        d_gen = rng.unit_noise([fit.seed * 1_000_003 + 77_777 + NOISE_STRIDE * g for g in group_no], device)
        base = self.weights_of(keys).to(device)                              # (B, P_inr), or (P_inr,): one net
        beta = torch.full((len(items),), beta0, device=device)
        target = torch.tensor([kl_target[i] for i in items], device=device, dtype=torch.float32)
        cnt = torch.bincount(grp, minlength=len(items)).clamp_min(1)

        def adapted(d: torch.Tensor) -> torch.Tensor:   # (D, P_inr) deltas -> (B, P_inr) network of each unit
            if not new:
                return base
            if base.dim() == 1:                          # one key: (P_inr,), one network for the batch
                return base + member[0] @ d
            return base + member @ d

        def fitted_var() -> torch.Tensor:   # closed form: the per-layer variance that fits the posteriors best
            return layer_means(self.inr, torch.exp(2 * d_ls) + d_mu ** 2)

        def kl_delta(block_of=None, n_blocks=1) -> torch.Tensor:
            kl = (kl_gauss(d_mu, d_ls, torch.zeros_like(ls_p), ls_p) / LN2).masked_fill(frozen, 0.0)  # (D, P_inr)
            return kl.sum(1) if block_of is None else block_sums(kl, block_of, n_blocks)

        def step(beta_delta: torch.Tensor, block_of=None, n_blocks=1):
            """One Adam step on latents and new deltas -> (MSE (B,), unit KL (B,), delta KL (D,) or (D, nb))."""
            eps = (d_gen.normal(n_inr) if isinstance(d_gen, rng.UnitNoise) else
                   torch.stack([torch.randn(n_inr, generator=g, device=device) for g in d_gen])
                   if new else d_mu.detach())
            field.shared = adapted(torch.where(frozen, coded_d, d_mu + d_ls.exp() * eps))
            mse = obj.distortion(obj.sample(st, gens))                                 # (B,)
            klu = obj.kl_bits(st).sum(1)                                                # (B,)
            kld = kl_delta(block_of, n_blocks)
            loss = mse.sum() + (beta[grp] * klu).sum() + (beta_delta * kld).sum()
            st.opt.zero_grad(set_to_none=True)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            st.opt.step()
            if new:
                opt.step()
            return mse.detach(), klu.detach(), kld.detach()

        def steer(klu: torch.Tensor, kld_items: torch.Tensor):
            item_kl = torch.zeros(len(items), device=device).index_add_(0, grp, klu)
            item_kl = item_kl.index_add(0, new_pos, kld_items) if new else item_kl
            return adjust_beta(beta, item_kl / cnt, target / cnt, fit.beta_step)

        last = done + steps   # the probe's share of the progress count: coding the deltas holds at its end

        def event(n_done: int, klu: torch.Tensor, measure: bool = False) -> EncodeEvent:
            """Progress; with `measure`, the PSNR (and preview) of the posterior means, deltas at their means."""
            psnr, prev = float("nan"), None
            if measure:
                with torch.no_grad():
                    field.shared = adapted(torch.where(frozen, coded_d, d_mu))
                    pred = obj.mean_prediction(st)
                    psnr = float((-10 * torch.log10(masked_mse(pred, obj.target, obj.weight).clamp_min(1e-10))).mean())
                    prev = preview(pred) if preview is not None else None
            return EncodeEvent("fit", min(n_done, last), total, 0, 1, psnr, klu[:, None].cpu().numpy(), prev)

        klu = torch.zeros(bsz, device=device)
        for it in range(steps):
            mse, klu, kld = step(beta[new_pos])
            beta = steer(klu, kld)
            if new and (it + 1) % SCALE_EVERY == 0:
                with torch.no_grad():
                    ls_p = (0.5 * torch.log(fitted_var()))[:, layer]
            done += 1
            if it % 5 == 0 or it == steps - 1:
                yield event(done, klu, it % 25 == 0 or it == steps - 1)

        used = {}
        if new:
            # Quantised scales; blocks of about kappa bits each, steered there, then coded group by group.
            with torch.no_grad():
                var = fitted_var()
                codes = [codes_of(var[k]) for k in range(len(new))]
                ls_p = torch.stack([logstd_of(self.inr, c, device) for c in codes])
                kl_now = kl_delta()
            aim = kappa - fit.margin
            nbs = [int(min(MAX_BLOCKS, n_inr, max(1, round(float(kl_now[k]) / aim)))) for k in range(len(new))]
            nb_max = max(nbs)
            bo = torch.stack([torch.from_numpy(np.arange(n_inr) % nb) for nb in nbs]).to(device)  # (D, P_inr)
            beta_b = beta[new_pos][:, None].repeat(1, nb_max)
            for r in range(fit.refine_first):
                mse, klu, kld = step(beta_b, bo, nb_max)
                beta_b = adjust_beta(beta_b, kld, aim, fit.beta_step)
                beta = steer(klu, kld.sum(1))
                done += 1
                if r % 5 == 4:
                    yield event(done, klu)
            idx_all = [np.zeros(nb, dtype=np.int64) for nb in nbs]
            # A*'s arrival noise, only when the encoder codes exact samples (FitConfig.sample)
            noise = (rng.unit_noise([fit.seed * 1_000_003 + 99_991 + NOISE_STRIDE * g for g in group_no], device)
                     if fit.sample else None)
            zero = torch.zeros(n_inr, device=device)
            # Groups of blocks, each followed by fine-tuning of what is left (the candidate coded for a block of
            # a few weights is only near its posterior; the rest of the delta and the latents make up for it).
            # The schedule follows the largest delta of the batch (the encoder codes an image with a delta in a
            # batch of its own), level by level: image-level deltas are coded before the groups' residuals, the
            # coding groups shared between the levels (three levels cost no more fine-tuning steps than two).
            levels = sorted(set(level))
            per_level = max(1, GROUPS_PER_REFINE * max(1, fit.refine_groups) // len(levels))
            for lv in levels:
                ks = [k for k in range(len(new)) if level[k] == lv]
                n_groups = min(max(nbs[k] for k in ks), per_level)
                for g in range(n_groups):
                    cancel.check()
                    for k in ks:
                        for b in np.array_split(np.arange(nbs[k]), n_groups)[g]:
                            b, st_b = int(b), streams[k] + int(b)
                            jt = torch.from_numpy(members(n_inr, nbs[k])[b]).to(device)
                            with torch.no_grad():
                                idx = rec.select(seed, st_b, kappa, d_mu[k:k + 1, jt], d_ls[k:k + 1, jt], zero[jt],
                                                 ls_p[k, jt], rng.take(noise, [k]) if noise is not None else None)
                                coded_d[k, jt] = rec.sample_of(seed, st_b, idx, zero[jt], ls_p[k, jt])[0]
                            idx_all[k][b] = int(idx[0])
                            frozen[k, jt] = True
                    last_group = lv == levels[-1] and g == n_groups - 1
                    for _ in range(0 if last_group else fit.refine_last):
                        mse, klu, kld = step(beta_b, bo, nb_max)
                        beta = steer(klu, kld.sum(1))
                        done += 1
                    yield event(done, klu, g % 8 == 0 or g == n_groups - 1)
            for k, key in enumerate(new):
                self.coded[key] = CodedDelta(codes[k], idx_all[k], coded_d[k].detach().clone())
                used[item_of[key]] = used.get(item_of[key], 0) + nbs[k]
        with torch.no_grad():
            field.shared = self.weights_of(keys).to(device)
            klu = obj.kl_bits(st).sum(1)
        return st.mu.detach(), st.logstd.detach(), klu.cpu().numpy(), used


class CropDeltas:
    """Training side of the network delta (`engine.learn` with `LearnConfig.crop_delta`): prior learning as the
    encoder will use the prior. Every training crop (tile x tile patches, like a group of patches in an
    image) has a delta posterior N(mu, sigma^2) on the shared network's weights against the prior N(0, s_l^2),
    one scale per layer as an encoded delta has; the crop's patches render with w_shared + delta, and the
    delta's KL counts in the crop's rate, so the latents' prior and the shared network are learned for what
    the delta leaves to them. One object serves all of a process's chunks of crops (`states[j]` is chunk j's)
    and holds the per-layer scales once; they are refitted in closed form at every M-step (`layer_sums`,
    `set_scales`). Nothing of it is stored in the prior: the encoder fits its own deltas and scales."""

    def __init__(self, inr: InrConfig, shared: torch.Tensor, crops: list[int], per_crop: int, lr: float,
                 lr_std: float, beta0: torch.Tensor):
        self.inr, self.per_crop = inr, per_crop
        self.logstd_p = start_logstd(inr, shared.detach())                           # (P_inr,)
        n = inr.n_params
        self.states = [new_state(torch.zeros(c, n, device=shared.device), (self.logstd_p - 1.0).expand(c, n),
                                 beta0, lr, lr_std) for c in crops]

    def weights(self, j: int, shared: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """The network of every patch of chunk j (B = crops * per_crop, P_inr): `shared` + the crop's delta,
        sampled with `gen` (the posterior means without)."""
        st = self.states[j]
        d = st.mu
        if gen is not None:
            d = d + st.logstd.exp() * torch.randn(d.shape, generator=gen, device=d.device)
        return shared + d.repeat_interleave(self.per_crop, 0)

    def kl_bits(self, j: int) -> torch.Tensor:
        """KL of every crop's delta in chunk j, in bits -> (crops,)."""
        st = self.states[j]
        return (kl_gauss(st.mu, st.logstd, torch.zeros_like(self.logstd_p), self.logstd_p) / LN2).sum(1)

    def layer_sums(self, j: int) -> torch.Tensor:
        """Sum over chunk j's crops of the per-layer mean of sigma^2 + mu^2 -> (layers,): the closed-form
        scales' statistics (summed over chunks and processes, divided by the crops, it is the best variance
        per layer)."""
        st = self.states[j]
        return layer_means(self.inr, torch.exp(2 * st.logstd) + st.mu ** 2).sum(0).detach()

    def set_scales(self, var_per_layer: torch.Tensor) -> None:
        self.logstd_p = (0.5 * torch.log(var_per_layer.to(self.logstd_p))).float()[
            layer_of(self.inr).to(self.logstd_p.device)]

    def state_dict(self) -> dict:
        """What a learner's checkpoint keeps of the deltas (`load_state_dict` restores it)."""
        return {"delta_mu": [st.mu.detach() for st in self.states],
                "delta_logstd": [st.logstd.detach() for st in self.states],
                "delta_opt": [st.opt.state_dict() for st in self.states], "delta_logstd_p": self.logstd_p}

    def load_state_dict(self, saved: dict) -> None:
        if len(saved["delta_mu"]) != len(self.states):
            raise ValueError("the checkpoint's crop deltas are for another split of the training crops")
        for st, m, s, o in zip(self.states, saved["delta_mu"], saved["delta_logstd"], saved["delta_opt"]):
            with torch.no_grad():
                st.mu.copy_(m), st.logstd.copy_(s)
            st.opt.load_state_dict(o)
        self.logstd_p = saved["delta_logstd_p"]
