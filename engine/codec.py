"""The image codec: batched posterior fitting, progressive A* block coding, and decoding.

Sender/receiver contract. The receiver needs only the `.cmb` bytes and the prior they name. Both sides
derive from the header (prior id, seed, kappa, block count) and the prior (order, KL profile, mu_p,
sigma_p) the same partition of weights into blocks, and the weights of block b are
    mu_p[J_b] + sigma_p[J_b] * rng.candidates(seed, b, [index_b], |J_b|).
The network is then evaluated on the row-major pixel grid, and values are rounded to 8 bits.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generator, Sequence

import numpy as np
import torch

from . import cancel, container, limits, partition, rec, rng, siren
from .config import FitConfig
from .container import CmbHeader
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .fitting import Objective, adjust_beta, masked_mse, new_state, point_subsets
from .prior import Prior, find_by_short_id, nearest
from .signals import image_targets, psnr_uint8, to_uint8

MAX_PIXELS = 1 << 16   # one INR per image until patch coding lands; bounds memory


@dataclass
class EncodeEvent:
    """Progress of a batch encode, one per few steps (the GUI and the CLI progress bar read these)."""

    phase: str                      # "fit" | "code"
    step: int                       # optimisation steps done so far
    total_steps: int
    blocks_done: int
    n_blocks: int
    psnr: float                     # mean PSNR (dB) of the batch's current posterior-mean reconstruction
    kl_bits: np.ndarray | None = None   # (B, n_blocks) current KL per block (bits); coded blocks hold the
                                        # KL they had when coded
    preview: np.ndarray | None = None   # (B, H, W, C) uint8 reconstruction, sent when blocks are coded


@dataclass
class Encoded:
    data: bytes
    reconstruction: np.ndarray      # (H, W, C) uint8, exactly what `decode(data)` returns
    header: CmbHeader
    prior: Prior
    psnr: float
    block_kl_bits: np.ndarray = field(repr=False, default=None)  # (n_blocks,) KL of each block when coded

    @property
    def bpp(self) -> float:
        h, w, _ = self.header.shape
        return 8.0 * len(self.data) / (h * w)


def check_image_shape(shape: tuple[int, ...]) -> None:
    """Raise MediaError if this version cannot code an image of this (H, W, C) shape."""
    if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
        raise MediaError(f"expected an RGB image, got an array of shape {tuple(shape)}")
    h, w, _ = shape
    if h * w > MAX_PIXELS:
        raise MediaError(f"{w}x{h} is larger than this version codes in one piece "
                         f"({MAX_PIXELS} pixels); patch coding is not available yet")


def blocks_for_rate(rate_bpp: float, shape: tuple[int, int, int], prior: Prior, seed: int = 0) -> int:
    """Block count whose file size (header and checksum included) is nearest rate_bpp * H * W / 8 bytes."""
    h, w, c = shape
    target_bytes = rate_bpp * h * w / 8.0
    probe = CmbHeader("image", (h, w, c), prior.short_id, seed, prior.kappa, 1)
    overhead = len(container.header_bytes(probe)) + container.CRC_BYTES
    n = int(round((target_bytes - overhead) * 8.0 / prior.kappa))
    for _ in range(3):  # the block-count varint may grow by a byte
        probe = CmbHeader("image", (h, w, c), prior.short_id, seed, prior.kappa, max(n, 1))
        overhead = len(container.header_bytes(probe)) + container.CRC_BYTES
        n = int(round((target_bytes - overhead) * 8.0 / prior.kappa))
    if n < 1:
        min_bpp = 8.0 * (overhead + container.payload_bytes(1, prior.kappa)) / (h * w)
        raise CombinerError(f"{rate_bpp:g} bpp is below what a {w}x{h} image can be coded at "
                            f"(the smallest file is {min_bpp:.3g} bpp)")
    return min(n, prior.n_params)


def _weights(prior: Prior, members: list[np.ndarray], seed: int, indices: np.ndarray,
             device) -> torch.Tensor:
    """Receiver side: coded indices (B, n_blocks) -> weights (B, P) (the h of a reparameterised prior)."""
    mu_p, ls_p = prior.tensors(device)
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64, device=device)
    w = torch.empty(idx.shape[0], prior.n_params, device=device)
    for b, j in enumerate(members):
        jt = torch.from_numpy(j).to(device)
        w[:, jt] = rec.sample_of(seed, b, idx[:, b], mu_p[jt], ls_p[jt])
    return w


@torch.no_grad()
def _render(prior: Prior, weights: torch.Tensor, h: int, w: int) -> np.ndarray:
    """(B, P) weights -> (B, H, W, C) uint8, evaluated one network at a time so results don't depend on B."""
    emb = siren.fourier_embed(siren.grid_coords((h, w), device=weights.device), prior.inr)
    mix = prior.mixers(weights.device)
    return np.concatenate([to_uint8(siren.forward(weights[i:i + 1], emb, prior.inr, mix), h, w)
                           for i in range(weights.shape[0])])


def _members(prior: Prior, n_blocks: int) -> list[np.ndarray]:
    bo = partition.block_of(prior.order, prior.kl_profile, n_blocks, prior.kappa)
    return partition.block_members(bo, n_blocks)


@dataclass
class UnitBatch:
    """B units (INRs) fitted and coded together, sharing one coordinate grid.

    target (B, N, C) on the network scale; `field` the prior's networks on that grid (`prior.field(emb,
    ...)`: flat vectors (B, P) -> (B, N, C)). `members`: the weight indices of each block, shared by all
    units; or, with `unit_class` (B,) ints, one such list per class (class k's units get len(members[k])
    blocks). `weight` (B, N, 1) masks padding out of the distortion. `start` = (mu, logstd) (B, P) continues
    from an earlier fit instead of the prior. `unit_ids` (B,) name each unit's private noise stream (default
    0..B-1): a unit with the same id, target and class is fitted and coded alike whatever else shares its
    batch."""

    target: torch.Tensor
    field: object
    members: list
    weight: torch.Tensor | None = None
    unit_class: np.ndarray | None = None
    start: tuple[torch.Tensor, torch.Tensor] | None = None
    unit_ids: np.ndarray | None = None


@dataclass(frozen=True)
class Reporting:
    """How a batch reports progress. `preview(pred (B, N, C)) -> array` makes the event previews (every
    `preview_every` coded groups); `total_offset` = (units before this batch, units in all) scales the step
    counts when a long signal is coded in several batches; `done_before` counts steps already reported (a
    probe); `pooled` reports one PSNR over all units (they are one signal); an event every `event_every`
    steps keeps cancel and progress responsive."""

    preview: object = None
    preview_every: int = 1
    total_offset: tuple[int, int] = (0, 1)
    done_before: int = 0
    pooled: bool = False
    event_every: int = 5


@torch.no_grad()
def _least_distortion(obj: Objective, st, seed: int, block: int, picks: list, mu_p: torch.Tensor,
                      ls_p: torch.Tensor) -> list:
    """Of each unit's shortlist for `block` keep the candidate whose weights give the least distortion, with
    every uncoded weight at its posterior mean -> picks with candidates (1, n). `picks` holds, per class of
    units, (units (n,), the block's weight indices (d,), candidates (m, n) best q/p first). The m candidates
    of all classes are tried side by side: try r sets every unit's r-th candidate."""
    base = torch.where(st.frozen, st.fixed, st.mu)                                   # (B, P)
    rows = torch.cat([u for u, _, _ in picks])                                       # (n_all,)
    target = obj.target[rows]
    weight = None if obj.weight is None else obj.weight[rows]
    units = getattr(obj.field, "units", None)
    like = obj.field.features(base) if units is not None else None                 # (B, N, F) or None
    changed = torch.unique(torch.cat([jt for _, jt, _ in picks]))
    samples = [rec.sample_of(seed, block, cand.reshape(-1), mu_p[jt], ls_p[jt]).reshape(*cand.shape, -1)
               for _, jt, cand in picks]                                             # per class (m, n, d)
    errs = []
    for r in range(picks[0][2].shape[0]):
        w = base.clone()
        for (u, jt, _), smp in zip(picks, samples):
            uu, jj = torch.meshgrid(u, jt, indexing="ij")
            w[uu, jj] = smp[r]
        pred = units(w, rows, like, changed) if units is not None else obj.field(w)[rows]  # (n_all, N, C)
        errs.append(masked_mse(pred, target, weight))
    best = torch.stack(errs).argmin(0)                                               # (n_all,)
    out, o = [], 0
    for u, jt, cand in picks:
        out.append((u, jt, cand.gather(0, best[None, o:o + len(u)])))
        o += len(u)
    return out


def code_units(batch: UnitBatch, prior: Prior, fit: FitConfig, device: torch.device, seed: int,
               report: Reporting = Reporting()) -> Generator[EncodeEvent, None, tuple[np.ndarray, np.ndarray]]:
    """Fit (fit.steps beta-ELBO steps) and code a batch of units. `fit.shortlist` is set by the modality's
    encoder (`FitConfig.for_modality`); None codes the candidate of largest q/p. Yields EncodeEvents; returns
    (indices
    (B, n_blocks) int64, KL of each block when coded (B, n_blocks)); rows of units with fewer blocks are
    zero-padded. Block b of every class uses candidate stream (seed, b), so units of one class share
    candidates."""
    target, field, weight, start = batch.target, batch.field, batch.weight, batch.start
    members, unit_class, unit_ids = batch.members, batch.unit_class, batch.unit_ids
    preview, preview_every, pooled, event_every = report.preview, report.preview_every, report.pooled, report.event_every
    bsz = target.shape[0]
    if unit_class is None:
        classes, unit_class = [members], np.zeros(bsz, dtype=np.int64)
    else:
        classes, unit_class = members, np.asarray(unit_class, dtype=np.int64)
    counts = [len(m) for m in classes]
    n_blocks = max(counts)
    kappa, P = prior.kappa, prior.n_params
    bo = np.empty((len(classes), P), dtype=np.int64)
    for k, mem in enumerate(classes):
        for b, j in enumerate(mem):
            bo[k, j] = b
    block_of = torch.from_numpy(bo[0] if len(classes) == 1 else bo[unit_class]).to(device)  # (P,) | (B, P)
    units_of = [torch.from_numpy(np.flatnonzero(unit_class == k)).to(device) for k in range(len(classes))]
    mu_p, ls_p = prior.tensors(device)
    ls0 = torch.from_numpy(prior.start_logstd()).to(device)
    obj = Objective(field, target, mu_p, ls_p, block_of, n_blocks, weight, point_subsets(field, fit.points, fit.seed))
    mu0, ls_start = start if start is not None else (mu_p.expand(bsz, P), ls0.expand(bsz, P))
    st = new_state(mu0, ls_start, torch.full((bsz, n_blocks), prior.beta, device=device), fit.lr)
    st.frozen = torch.zeros(bsz, P, dtype=torch.bool, device=device)
    ids = np.arange(bsz) if unit_ids is None else np.asarray(unit_ids)
    gens = rng.unit_noise([fit.seed * 1_000_003 + int(i) for i in ids], device)
    target_kl = kappa - fit.margin
    fit_steps = fit.steps

    # The schedule is a function of fit alone, so a unit's own groups and refinement steps do not depend on the
    # other units of its batch: a class of c blocks codes one group of np.array_split(range(c), refine_groups)
    # after another (one block each in the first c groups when c < refine_groups). Once every unit is coded
    # (after min(refine_groups, n_blocks) groups) nothing is left to refine.
    groups = [np.array_split(np.arange(c), fit.refine_groups) for c in counts]  # per class: its blocks in each group
    refine = [int(round(fit.refine_first + (fit.refine_last - fit.refine_first) * g / max(1, fit.refine_groups - 1)))
              for g in range(fit.refine_groups)]
    n_groups = min(fit.refine_groups, n_blocks)
    refine = refine[:n_groups]
    refine[-1] = 0  # nothing left to refine after the last group
    per_batch = report.done_before + fit_steps + sum(refine)
    # Several batches of one signal report one progress count: steps so far over all batches.
    before, n_all = report.total_offset
    total = int(round(per_batch * n_all / bsz)) if n_all > bsz else per_batch
    done = (int(round(per_batch * before / bsz)) if before else 0) + report.done_before
    klb = torch.zeros(bsz, n_blocks, device=device)

    def snapshot(with_preview: bool) -> tuple[float, np.ndarray | None]:
        """PSNR of the posterior-mean reconstruction and, if asked, that reconstruction: one forward pass.
        Images: the mean of per-image PSNRs. Units of one signal (`pooled`): the PSNR of their pooled MSE."""
        pred = obj.mean_prediction(st)  # (B, N, C)
        mse = masked_mse(pred, obj.target, weight)
        psnr = float(-10 * torch.log10(mse.mean().clamp_min(1e-10)) if pooled
                     else (-10 * torch.log10(mse.clamp_min(1e-10))).mean())
        return psnr, (preview(pred) if with_preview and preview is not None else None)

    psnr = float("nan")
    for it in range(fit_steps):
        _, klb = obj.step(st, gens)
        st.beta = adjust_beta(st.beta, klb, target_kl, fit.beta_step)
        done += 1
        if it % event_every == 0 or it == fit_steps - 1:  # frequent events keep cancel and progress responsive
            prev = None
            if it % 25 == 0 or it == fit_steps - 1:      # the PSNR costs a forward pass: less often
                psnr, prev = snapshot(it % 100 == 0)
            yield EncodeEvent("fit", done, total, 0, n_blocks, psnr, klb.cpu().numpy(), prev)

    indices = torch.zeros(bsz, n_blocks, dtype=torch.int64, device=device)
    coded_kl = np.zeros((bsz, n_blocks))
    coded = np.zeros(bsz, dtype=np.int64)  # blocks coded so far, per unit
    ucls = [u.cpu().numpy() for u in units_of]
    for gi in range(n_groups):
        with torch.no_grad():
            klw = obj.kl_bits(st)
            # Block b of every class draws from candidate stream (seed, b), and a shorter block's candidates
            # are a prefix of a longer one's: classes that code block b in this group share one table.
            todo: dict[int, list[int]] = {}
            for k in range(len(classes)):
                if len(ucls[k]):
                    for b in groups[k][gi]:
                        todo.setdefault(int(b), []).append(k)
            for b, ks in sorted(todo.items()):
                dmax = max(len(classes[k][b]) for k in ks)
                table = (rec.candidate_table(seed, b, kappa, dmax, device)
                         if len(ks) > 1 and (dmax << kappa) <= rec.SHARED_TABLE_BUDGET else None)
                picks = []   # per class: (units (n,), weights of block b (d,), candidates (m, n) best first)
                for k in ks:
                    cancel.check()
                    u, un, jt = units_of[k], ucls[k], torch.from_numpy(classes[k][b]).to(device)
                    coded_kl[un, b] = klw[u][:, jt].sum(1).cpu().numpy()
                    args = (seed, b, kappa, st.mu[u][:, jt], st.logstd[u][:, jt], mu_p[jt], ls_p[jt])
                    tab = None if table is None else table[:, :len(jt)].contiguous()
                    if fit.sample or (fit.shortlist or 1) <= 1:
                        cand = rec.select(*args, rng.take(gens, un) if fit.sample else None, tab)[None]
                    else:
                        cand = rec.shortlist(*args, fit.shortlist, tab)
                    picks.append((u, jt, cand))
                if picks[0][2].shape[0] > 1:
                    picks = _least_distortion(obj, st, seed, b, picks, mu_p, ls_p)
                for u, jt, cand in picks:
                    idx = cand[0]
                    indices[u, b] = idx
                    uu, jj = torch.meshgrid(u, jt, indexing="ij")
                    st.fixed[uu, jj] = rec.sample_of(seed, b, idx, mu_p[jt], ls_p[jt])
                    st.frozen[uu, jj] = True
            for k in range(len(classes)):
                coded[ucls[k]] += len(groups[k][gi])
        ndone = int(coded.max())
        kl_view = klb.cpu().numpy().copy()
        done_mask = np.arange(n_blocks)[None, :] < coded[:, None]
        kl_view[done_mask] = coded_kl[done_mask]
        psnr, prev = snapshot(gi % max(1, preview_every) == 0 or gi == n_groups - 1)
        yield EncodeEvent("code", done, total, ndone, n_blocks, psnr, kl_view, prev)
        for r in range(refine[gi]):
            _, klb = obj.step(st, gens)
            st.beta = adjust_beta(st.beta, klb, target_kl, fit.beta_step)
            done += 1
            if r % event_every == event_every - 1:
                yield EncodeEvent("code", done, total, ndone, n_blocks, psnr, kl_view, None)
    return indices.cpu().numpy(), coded_kl


def encode_batch(images: Sequence[np.ndarray], rate_bpp: float | None = None, *, prior: Prior | None = None,
                 n_blocks: int | None = None, fit: FitConfig = FitConfig(), device: str | torch.device = "cpu",
                 seed: int = 0, prior_dirs=None, preview_every: int = 1, compile: bool = False
                 ) -> Generator[EncodeEvent, None, list[Encoded]]:
    """Encode same-size (H, W, 3) uint8 images as one batch. Yields EncodeEvents; returns one Encoded each.

    Give `rate_bpp` (the prior nearest in rate and the block count are chosen so the file lands on it), or
    an explicit `prior` and `n_blocks`.
    """
    device = torch.device(device)
    fit = fit.for_modality("whole image")
    imgs = np.stack([np.asarray(i) for i in images])
    if imgs.ndim != 4 or imgs.dtype != np.uint8:
        raise MediaError("images must be (H, W, C) uint8 arrays of one size")
    bsz, h, w, c = imgs.shape
    check_image_shape((h, w, c))
    if rate_bpp is not None and not rate_bpp > 0:
        raise CombinerError("the target rate must be positive")
    if prior is None:
        if rate_bpp is None:
            raise ValueError("give rate_bpp or prior")
        prior = nearest("image", c, rate_bpp, prior_dirs)
    if prior.inr.out_dim != c:
        raise PriorError(f"prior {prior.name} codes {prior.inr.out_dim}-channel images, not {c}")
    if n_blocks is None:
        n_blocks = blocks_for_rate(rate_bpp if rate_bpp is not None else prior.rate, (h, w, c), prior, seed)
    members = _members(prior, n_blocks)
    emb = siren.fourier_embed(siren.grid_coords((h, w), device=device), prior.inr)

    def preview(pred: torch.Tensor) -> np.ndarray:
        return to_uint8(pred, h, w)

    batch = UnitBatch(image_targets(imgs, device), prior.field(emb, device, compile=compile), members)
    indices, coded_kl = yield from code_units(batch, prior, fit, device, seed,
                                              Reporting(preview if preview_every else None, preview_every))
    # The sender's final reconstruction goes through the receiver's own path.
    idx_np = indices
    recon = _render(prior, _weights(prior, members, seed, idx_np, "cpu"), h, w)
    out = []
    for i in range(bsz):
        hdr = CmbHeader("image", (h, w, c), prior.short_id, seed, prior.kappa, n_blocks)
        out.append(Encoded(container.write(hdr, idx_np[i]), recon[i], hdr, prior, psnr_uint8(imgs[i], recon[i]),
                           coded_kl[i]))
    return out


def run(gen: Generator):
    """Drive an event generator to the end and return its value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def encode(image: np.ndarray, rate_bpp: float, **kw) -> bytes:
    """One image -> `.cmb` bytes."""
    return run(encode_batch([image], rate_bpp, **kw))[0].data


def decode_full(data: bytes, prior_dirs=None, device="cpu") -> tuple[np.ndarray, CmbHeader, Prior]:
    """`.cmb` bytes -> ((H, W, C) uint8 image, header, prior). Raises CmbFormatError on any defect."""
    hdr, idx = container.read(bytes(data))
    if hdr.modality != "image":
        raise CmbFormatError(f"this is a {hdr.modality} file; this decoder handles images")
    limits.check_header(hdr)
    prior = find_by_short_id(hdr.prior_id, prior_dirs)
    if prior.kappa != hdr.kappa or prior.modality != "image" or prior.inr.out_dim != hdr.shape[2]:
        raise PriorError(f"prior {hdr.prior_id.hex()} does not match this file (kappa/channels differ)")
    if not 1 <= hdr.n_blocks <= prior.n_params:
        raise CmbFormatError(f"corrupt .cmb header: {hdr.n_blocks} blocks for a {prior.n_params}-weight prior")
    h, w, _ = hdr.shape
    if h * w > MAX_PIXELS:
        raise CmbFormatError(f"corrupt .cmb header: image size {w}x{h} is larger than this version codes")
    members = _members(prior, hdr.n_blocks)
    img = _render(prior, _weights(prior, members, hdr.seed, idx[None], device), h, w)[0]
    return img, hdr, prior


def decode(data: bytes, prior_dirs=None) -> np.ndarray:
    """`.cmb` bytes -> (H, W, C) uint8 image."""
    return decode_full(data, prior_dirs)[0]
