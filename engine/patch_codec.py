"""Images of any size: one INR per square patch, all patches fitted and coded as one batch.

Sender/receiver contract. The header carries H, W, the channel count C, the patch side p (equal to the
prior's), and the block count of every patch as a small class table plus one class per patch. Both sides
cut the image into ceil(H/p) x ceil(W/p) patches in row-major order; patch u with n_u blocks draws its
weights exactly as a single image with n_u blocks would (partition from the prior's order and KL profile,
candidate stream (seed, b) for its block b). The receiver evaluates every patch network on the p x p grid
(coordinates in [-1, 1] across the patch, as in training), rounds to 8 bits, pastes the patches and crops
the bottom/right border to H x W. Pixels of a border patch that fall outside the image are never coded: they
are masked out of the distortion, so they cost no bits. Grayscale is coded as three equal channels and
decoded as their rounded mean; alpha (2/4 channels) is stored losslessly (zlib) inside the header.

Bit allocation (encoder only, nothing of it needs to be known to decode): with `adaptive`, the patches are
first fitted for half the steps with one rate weight per image, so each patch's KL shows what its content
costs at one slope of the rate-distortion curve; the image's block budget is then split across its patches
in proportion to that KL, quantised to a few block counts, and every block is held to kappa bits as usual.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Generator, Sequence

import numpy as np
import torch

from . import cancel, container, hierarchy, limits, restoration, rng, siren
from .latent import Canvas
from .codec import EncodeEvent, Reporting
from .config import FitConfig
from .container import CmbHeader
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .journal import Journal, encode_key
from .prior import Prior, available, find_by_short_id, nearest_patch
from .signals import psnr_uint8
from .unit_coding import CodedBatch, ContentBatch, LatentContext, code_by_content, unit_weights

MAX_UNITS = 384      # patches fitted together: bounds memory whatever the image size
DELTA_GROUP = 3      # side, in patches, of the groups with a network delta of their own (0: one per image); 3
                     # since 2026-12-05 (fifth): +0.08 dB over 4 on all 24 Kodak images at 0.3 bpp (docs/results.md)
MIN_GROUP_BLOCKS = 512   # blocks of an image's budget per delta group, at least (else larger groups)
DELTA_TOP = True     # with more than one group, an image-level delta under the groups' (three levels)
RENDER_BATCH = 64    # patches evaluated together when rendering
LEVELS = 8           # distinct block counts per image when allocating by content
RESTORE = restoration.Restoration()   # kind-15 images carry spectral floors (+0.2 dB on the 24 Kodak images at
                     # 0.5 bpp, 18 bytes) and Wiener filters (about +0.15 dB more, about 100 bytes on a Kodak
                     # image): docs/results.md, sessions of 2026-12-06, twelfth and thirteenth


@dataclass
class EncodedImage:
    data: bytes
    reconstruction: np.ndarray      # (H, W, C) uint8, exactly what `decode_image(data)` returns
    header: CmbHeader
    prior: Prior
    psnr: float                     # dB over the colour channels (alpha is lossless)
    warnings: list[str] = field(default_factory=list)
    unit_blocks: np.ndarray = field(repr=False, default=None)   # (U,) blocks of each patch
    block_kl_bits: np.ndarray = field(repr=False, default=None)  # (U, max blocks) KL of each block when coded
    probe_kl_bits: np.ndarray = field(repr=False, default=None)  # (U,) KL per patch after the content probe

    @property
    def bpp(self) -> float:
        h, w, _ = self.header.shape
        return 8.0 * len(self.data) / (h * w)


# ---- layout ---------------------------------------------------------------------------------------------

def patch_grid(h: int, w: int, p: int) -> tuple[int, int]:
    return -(-h // p), -(-w // p)


def split_rgb(rgb: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 -> (patches (U, p, p, 3) uint8 edge-padded, mask (U, p*p, 1) float32, 1 inside)."""
    h, w, _ = rgb.shape
    rows, cols = patch_grid(h, w, p)
    padded = np.pad(rgb, ((0, rows * p - h), (0, cols * p - w), (0, 0)), mode="edge")
    mask = np.zeros((rows * p, cols * p), dtype=np.float32)
    mask[:h, :w] = 1.0
    patches = padded.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4).reshape(-1, p, p, 3)
    m = mask.reshape(rows, p, cols, p).transpose(0, 2, 1, 3).reshape(-1, p * p, 1)
    return np.ascontiguousarray(patches), np.ascontiguousarray(m)


def stitch(patches: np.ndarray, h: int, w: int) -> np.ndarray:
    """(U, p, p, C) row-major patches -> (H, W, C), border cropped."""
    p, c = patches.shape[1], patches.shape[3]
    rows, cols = patch_grid(h, w, p)
    full = patches.reshape(rows, cols, p, p, c).transpose(0, 2, 1, 3, 4).reshape(rows * p, cols * p, c)
    return np.ascontiguousarray(full[:h, :w])


def to_rgb(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, C) uint8 with C in 1..4 -> (RGB (H, W, 3), alpha (H, W) or None)."""
    c = img.shape[2]
    colour = img[:, :, :3] if c >= 3 else np.repeat(img[:, :, :1], 3, axis=2)
    alpha = img[:, :, c - 1] if c in (2, 4) else None
    return np.ascontiguousarray(colour), alpha


def from_rgb(rgb: np.ndarray, c: int, alpha: np.ndarray | None) -> np.ndarray:
    """Inverse of to_rgb on the decoded colour: gray is the rounded mean of the three channels."""
    if c >= 3:
        colour = rgb
    else:
        colour = np.round(rgb.astype(np.float32).mean(axis=2, keepdims=True)).astype(np.uint8)
    out = colour if alpha is None else np.concatenate([colour, alpha[:, :, None]], axis=2)
    return np.ascontiguousarray(out)


def check_image(img: np.ndarray) -> np.ndarray:
    x = np.asarray(img)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.dtype != np.uint8 or not 1 <= x.shape[2] <= 4 or min(x.shape[:2]) < 1:
        raise MediaError(f"expected an (H, W, C) uint8 image with 1 to 4 channels, got {x.shape} {x.dtype}")
    if max(x.shape[:2]) > container.MAX_SIDE:
        raise MediaError(f"{x.shape[1]}x{x.shape[0]}: sides above {container.MAX_SIDE} pixels are not supported")
    return x


def uses_patches(shape: tuple[int, ...], prior: Prior | None = None, prior_dirs=None) -> bool:
    """Which coder an (H, W, C) image goes to (the CLI and the app share this rule): patches, unless the given
    prior is a single-image one, or (no prior given) the image has exactly the size a single-image RGB prior
    was trained on (e.g. 32x32 for the CIFAR-10 priors) or no patch prior is installed."""
    if prior is not None:
        return bool(prior.patch)
    priors = [p for p in available(prior_dirs) if p.modality == "image"]
    if shape[2] in (1, 3) and any(not p.patch and (p.item_shape or ())[:2] == tuple(shape[:2]) for p in priors):
        return False
    return any(p.patch for p in priors)


# ---- rate ------------------------------------------------------------------------------------------------

def _header(shape, prior: Prior, seed: int, class_blocks, unit_class, alpha: bytes,
            delta: tuple[tuple[int, ...], int] = ((), 0), groups: tuple = (0, (), ((), 0)),
            floors=None, wiener=None) -> CmbHeader:
    """`delta` = (scale codes, blocks) of an image-level network delta (kind 11), or `groups` = (group side,
    ((scale codes, blocks) of each group), (scale codes, blocks) of the image-level delta under them or
    ((), 0)) of group deltas (kind 15; engine.hierarchy), with `floors` its spectral-floor codes and `wiener`
    its Wiener filters, or None."""
    h, w, c = shape
    units = container.patch_units(h, w, prior.patch)
    top = (tuple(groups[2][0]), int(groups[2][1]))
    n_delta = top[1] + sum(b for _, b in groups[1]) if groups[1] else int(delta[1])
    return CmbHeader("image", (h, w, c), prior.short_id, seed, prior.kappa, max(class_blocks), units,
                     prior.patch, tuple(int(b) for b in class_blocks), tuple(int(k) for k in unit_class), alpha,
                     delta_scales=tuple(delta[0]), delta_blocks=n_delta, delta_group=int(groups[0]),
                     group_deltas=tuple((tuple(sc), int(b)) for sc, b in groups[1]), top_delta=top,
                     floors=None if floors is None else tuple(int(v) for v in floors), wiener=wiener)


adapts = hierarchy.adapts   # images coded with this prior may carry a network delta (kind 11 or 15)


def delta_groups(shape, patch: int, group: int) -> int:
    """Groups of `group` x `group` patches over an image of `shape` (1 for group 0: one delta, kind 11)."""
    if not group:
        return 1
    gr, gc = container.group_grid(*patch_grid(shape[0], shape[1], patch), group)
    return gr * gc


def group_side(rate_bpp: float, shape: tuple[int, int, int], prior: Prior, seed: int, alpha: bytes,
               adaptive: bool, group: int, restore: restoration.Restoration = RESTORE) -> int:
    """The delta group side the encoder uses for an image (0: one delta for the image, kind 11): `group`,
    doubled while the image's budget gives a group fewer than MIN_GROUP_BLOCKS blocks (a delta costs a few
    hundred blocks: small budgets keep fewer, larger groups), and 0 once one group would hold the image."""
    side = group
    while side and delta_groups(shape, prior.patch, side) > 1:
        total, _ = block_budget(rate_bpp, shape, prior, seed, alpha, adaptive, True, side, restore)
        if total >= MIN_GROUP_BLOCKS * delta_groups(shape, prior.patch, side):
            return side
        side *= 2
    return 0


def overhead_bytes(shape: tuple[int, int, int], prior: Prior, seed: int, alpha: bytes, adaptive: bool,
                   delta: bool = False, group: int = 0, restore: restoration.Restoration = RESTORE) -> int:
    """Bytes of a file that are not block indices (header, class table, alpha, delta fields, checksum), sized
    for the longest class table and delta fields the encoder can write: what the budget reserves. `group`:
    the side of the delta groups (kind 15 when the image holds more than one; the reserve holds the fields of
    an image-level delta under them too, whether the encoder codes one or not, and the room of the `restore`
    filters)."""
    units = container.patch_units(shape[0], shape[1], prior.patch)
    n_cls = min(LEVELS, units) if adaptive else 2
    dfields = hierarchy.widest_fields(prior.inr) if delta else ((), 0)
    n_groups = delta_groups(shape, prior.patch, group) if delta else 1
    gfields = (group, (dfields,) * n_groups, dfields) if n_groups > 1 else (0, (), ((), 0))
    probe = _header(shape, prior, seed, [4096] * n_cls, [n_cls - 1] * units, alpha,
                    ((), 0) if n_groups > 1 else dfields, gfields)
    return len(container.header_bytes(probe)) + container.CRC_BYTES + (restore.room(shape) if gfields[0] else 0)


def block_budget(rate_bpp: float, shape: tuple[int, int, int], prior: Prior, seed: int, alpha: bytes,
                 adaptive: bool, delta: bool = False, group: int = 0,
                 restore: restoration.Restoration = RESTORE) -> tuple[int, list[str]]:
    """Total blocks over all patches (and the image's network deltas, with `delta`) whose file (header, class
    table, alpha, delta fields, checksum) is nearest rate_bpp * H * W / 8 bytes, the class table sized for its
    largest case, and warnings. A rate below the smallest file (one block per patch) is raised to it, with a
    warning."""
    h, w, _ = shape
    units = container.patch_units(h, w, prior.patch)
    overhead = overhead_bytes(shape, prior, seed, alpha, adaptive, delta, group, restore)
    total = int(np.floor((rate_bpp * h * w / 8.0 - overhead) * 8.0 / prior.kappa))
    warns = []
    if total < units:
        smallest = 8.0 * (overhead + container.payload_bytes(units, prior.kappa)) / (h * w)
        warns.append(f"{rate_bpp:g} bpp is below the smallest file for a {w}x{h} image "
                     f"({smallest:.3g} bpp); coding at that")
        total = units
    return min(total, units * prior.n_params), warns


def allocate(kl: np.ndarray, total: int, cap: int, levels: int = LEVELS) -> np.ndarray:
    """Split `total` blocks over patches in proportion to their KL `kl` (U,), at least 1 and at most `cap`
    each, using at most `levels` distinct counts -> (U,) int64 blocks per patch, summing to about `total`.

    The counts are the wanted shares rounded (in log) to a geometric grid of `levels` values, which can miss
    the total by a large part of it; the shares are scaled until the rounded counts meet it, and what is left
    (less than a class's size) moves the classes of most blocks, where one block is the smallest part of a
    patch's count. (Moving the most populous class instead took a large class of quiet patches down to one
    block each: kodim20's sky at 0.5 bpp, docs/results.md, session of 2026-12-07, twentieth.)"""
    u = len(kl)
    k = np.maximum(np.asarray(kl, dtype=np.float64), 1e-3)
    share = total * k / k.sum()

    def counts(scale: float) -> np.ndarray:
        want = np.clip(scale * share, 1.0, cap)
        grid = np.unique(np.round(np.geomspace(want.min(), want.max(), max(1, min(levels, u)))).astype(np.int64))
        return grid[np.abs(np.log(want[:, None]) - np.log(grid[None, :])).argmin(1)]

    lo, hi = 0.0, 1.0                # the largest scale whose counts stay within the total, by bisection
    while (n := counts(hi)).sum() <= total and n.max() < cap and hi < 1e6:
        lo, hi = hi, 2.0 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if int(counts(mid).sum()) <= total else (lo, mid)
    n = counts(lo) if lo > 0 else counts(hi)
    for _ in range(64 * levels):  # the rest: whole classes by one block, those of most blocks first
        diff = total - int(n.sum())
        vals, sizes = np.unique(n, return_counts=True)
        ok = [(v, c) for v, c in zip(vals, sizes) if c <= abs(diff) and (1 <= v + np.sign(diff) <= cap)]
        if diff == 0 or not ok:
            break
        v, _ = max(ok)
        n[n == v] = v + np.sign(diff)
    return n


# ---- encoder ---------------------------------------------------------------------------------------------

def _importance(weights, grid: tuple[int, int]) -> np.ndarray:
    """A region-of-interest map over an image's patch grid (rows, cols) -> flat per-patch weights (> 0)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != tuple(grid):
        raise CombinerError(f"the importance map is {w.shape[::-1] if w.ndim == 2 else w.shape}, the image has "
                            f"{grid[1]}x{grid[0]} patches")
    if not np.isfinite(w).all():
        raise CombinerError("the importance map holds NaN or infinite values")
    return np.maximum(w.reshape(-1), 1e-3)


def _batches(grids: list[tuple[int, int]], max_units: int, stitched: bool,
             alone: bool = False) -> list[list[tuple[int, np.ndarray]]]:
    """Plan the encoder's batches: each a list of (image, its patch indices). Plain priors fill batches of
    `max_units` patches in image order. Latent priors keep images whole, or (an image of more than
    `max_units` patches) cut it into bands of whole patch rows, so every batch stitches its patches. With
    `alone` every batch holds one image (or one band of it): an image's network delta is coded on a
    schedule of its own (engine.hierarchy)."""
    sizes = [r * c for r, c in grids]
    if not stitched:
        units = [(i, u) for i, n in enumerate(sizes) for u in range(n)]
        out = []
        for s in range(0, len(units), max_units):
            part = units[s:s + max_units]
            out.append([(i, np.array([u for j, u in part if j == i])) for i in dict.fromkeys(j for j, _ in part)])
        return out
    out, cur, n_cur = [], [], 0
    for i, (rows, cols) in enumerate(grids):
        if sizes[i] <= max_units:
            if (alone or n_cur + sizes[i] > max_units) and cur:
                out.append(cur)
                cur, n_cur = [], 0
            cur.append((i, np.arange(sizes[i])))
            n_cur += sizes[i]
            continue
        if cur:
            out.append(cur)
            cur, n_cur = [], 0
        band = max(1, max_units // cols)
        for r0 in range(0, rows, band):
            out.append([(i, np.arange(r0 * cols, min(rows, r0 + band) * cols))])
    if cur:
        out.append(cur)
    return out


def _canvases(segs, grids, context, device) -> list[Canvas]:
    """Stitching layout of one latent batch: an image whole, or a band of it with one patch row of context
    above and below (more than the upsampler's reach) taken from `context`."""
    out, off = [], 0
    for i, us in segs:
        rows, cols = grids[i]
        if len(us) == rows * cols:
            out.append(Canvas(rows, cols, torch.arange(off, off + len(us), device=device)))
        else:
            r0, r1 = int(us[0]) // cols, int(us[-1]) // cols + 1
            a, b = max(0, r0 - 1), min(rows, r1 + 1)
            cells = torch.full(((b - a) * cols,), -1, dtype=torch.int64, device=device)
            cells[(r0 - a) * cols:(r1 - a) * cols] = torch.arange(off, off + len(us), device=device)
            out.append(Canvas(b - a, cols, cells, context[i][a * cols:b * cols]))
        off += len(us)
    return out


@torch.no_grad()
def _render(prior: Prior, seed: int, unit_blocks: Sequence[int], indices: Sequence[np.ndarray], device="cpu",
            progress=None, grid: tuple[int, int] | None = None, delta: torch.Tensor | None = None,
            delta_group: int = 0) -> np.ndarray:
    """Receiver side: per patch its block count and indices -> (U, p, p, 3) uint8 patches. `grid` (rows, cols)
    is the patch layout (latent priors stitch their grids over it). `delta` (P_inr,) adapts a shared-network
    prior's network to the image (kind 11); (groups, P_inr) with `delta_group` (the group side) adapts it to
    each group of patches (kind 15). `progress(done, total)` (patches), if given, is called after every
    render batch."""
    p = prior.patch
    emb = siren.fourier_embed(siren.grid_coords((p, p), device=device), prior.inr)
    n = len(unit_blocks)
    w = unit_weights(prior, seed, unit_blocks, indices, device)         # (U, P)
    rows, cols = grid if grid is not None else (1, n)
    field = prior.field(emb, device, [Canvas(rows, cols, torch.arange(n, device=device))])
    group_nets = unit_group = None
    if delta is not None and delta.dim() == 2:    # kind 15: each patch renders with its group's network
        group_nets = field.shared + delta.to(device)                                        # (groups, P_inr)
        unit_group = torch.from_numpy(hierarchy.group_of_units((rows, cols), delta_group)).to(device)  # (U,)
    elif delta is not None:
        field.shared = field.shared + delta.to(device)
    feat = field.features(w)                                              # (U, p*p, F) or None
    out = np.empty((n, p, p, 3), dtype=np.uint8)
    for s in range(0, n, RENDER_BATCH):
        cancel.check()
        sl = slice(s, min(n, s + RENDER_BATCH))
        if group_nets is not None:
            field.shared = group_nets[unit_group[sl]]                     # (b, P_inr)
        y = field(w[sl], feat[sl] if feat is not None else None)  # (b, p*p, 3)
        x = ((y + 0.5).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        out[sl] = x.reshape(-1, p, p, 3).cpu().numpy()
        if progress is not None:
            progress(sl.stop, n)
    return out


def encode_image_batch(images: Sequence[np.ndarray], rate_bpp: float | None = None, *, prior: Prior | None = None,
                       fit: FitConfig = FitConfig(), device: str | torch.device = "cpu", seed: int = 0,
                       prior_dirs=None, compile: bool = False, adaptive: bool = True, max_units: int = MAX_UNITS,
                       preview_every: int = 1, importance: Sequence[np.ndarray | None] | None = None,
                       adapt: bool | None = None, journal: Journal | None = None, delta_group: int = DELTA_GROUP,
                       delta_top: bool = DELTA_TOP, restore: restoration.Restoration = RESTORE
                       ) -> Generator[EncodeEvent, None, list[EncodedImage]]:
    """Encode images of any sizes (H, W, C) uint8, C in 1..4, at `rate_bpp` (from the real file size).
    All their patches are fitted and coded together, `max_units` at a time. Yields EncodeEvents; returns one
    EncodedImage per image. An image's result does not depend on the other images in the batch.
    `importance` (one per image, None or a (rows, cols) array of non-negative weights over its patch grid)
    scales each patch's measured KL before the adaptive allocation, so a painted region of interest gets more
    blocks; the file format is unchanged (the allocation is encoder-side only).
    `adapt` (default: whenever the prior allows it, `adapts(prior)`) also codes a delta on a shared-network
    prior's network for each image (engine.hierarchy; kind-11 files), or with `delta_group` G > 0 one for each
    group of G x G patches of an image that holds more than one group (kind 15), with `delta_top` under an
    image-level delta (three levels: the groups' deltas are residuals); kind-15 images then also get the
    `restore` filters the sender picks once every patch is coded (engine/restoration.py).
    `journal` (engine/journal.py) makes an encode of more than one batch (a large photo) resumable: each
    finished batch is written to it, and batches an earlier run of the same encode wrote there are taken from
    it instead of being coded again. The files are the same either way.
    """
    device = torch.device(device)
    fit = fit.for_modality("image")
    imgs = [check_image(i) for i in images]
    if rate_bpp is not None and not rate_bpp > 0:
        raise CombinerError("the target rate must be positive")
    if prior is None:
        if rate_bpp is None:
            raise ValueError("give rate_bpp or prior")
        prior = nearest_patch(rate_bpp, prior_dirs)
    if not prior.patch or prior.modality != "image" or prior.inr.out_dim != 3:
        raise PriorError(f"prior {prior.name} is not an RGB patch prior")
    rate = rate_bpp if rate_bpp is not None else prior.rate
    p = prior.patch
    if adapt and not adapts(prior):
        raise CombinerError(f"prior {prior.name} has no shared network to adapt to an image")
    adapt = adapts(prior) if adapt is None else adapt
    if not 0 <= delta_group <= container.MAX_SIDE:
        raise CombinerError("the delta group side must be 0 (one delta per image) or a number of patches")
    grids = [patch_grid(img.shape[0], img.shape[1], p) for img in imgs]
    cap = prior.n_params

    # Per image: colour patches, masks, alpha bytes, the delta group side and the block budget.
    plan, sides = [], []
    for img in imgs:
        rgb, alpha = to_rgb(img)
        alpha_bytes = zlib.compress(alpha.tobytes(), 9) if alpha is not None else b""
        patches, mask = split_rgb(rgb, p)
        side = group_side(rate, img.shape, prior, seed, alpha_bytes, adaptive, delta_group, restore) if adapt else 0
        total, warns = block_budget(rate, img.shape, prior, seed, alpha_bytes, adaptive, adapt, side, restore)
        plan.append(dict(patches=patches, mask=mask, alpha=alpha_bytes, alpha_arr=alpha, total=total, warns=warns))
        sides.append(side)
    delta = (hierarchy.ImageDelta(prior.inr, torch.from_numpy(prior.inr_weights).to(device), prior.kappa,
                                  sides if delta_group else None, grids, delta_top) if adapt else None)

    def fields_of(i: int) -> tuple[tuple, tuple]:
        """Image i's coded delta fields: (kind-11 fields, kind-15 group fields), either one empty."""
        if delta is not None and sides[i]:
            return ((), 0), (sides[i], delta.group_fields(i), delta.top_fields(i))
        return hierarchy.coded_of(delta, i).fields, (0, (), ((), 0))   # one group: the image's delta, kind 11
    if importance is not None and len(importance) != len(imgs):
        raise CombinerError(f"{len(importance)} importance maps for {len(imgs)} images")
    n_all = sum(pl["patches"].shape[0] for pl in plan)
    emb = siren.fourier_embed(siren.grid_coords((p, p), device=device), prior.inr)
    blocks = [np.zeros(pl["patches"].shape[0], dtype=np.int64) for pl in plan]
    idx_out = [[None] * pl["patches"].shape[0] for pl in plan]
    kl_out = [[None] * pl["patches"].shape[0] for pl in plan]
    probe_out = [np.zeros(pl["patches"].shape[0]) for pl in plan]
    weights = [np.ones(pl["patches"].shape[0]) if importance is None or importance[i] is None
               else _importance(importance[i], grids[i]) for i, pl in enumerate(plan)]

    def split(i: int, units: np.ndarray, kl: np.ndarray, total: int) -> np.ndarray:
        k = kl * weights[i][units]
        n = allocate(k, total, cap)
        if len(units) < plan[i]["patches"].shape[0]:
            return n   # a band of a large image: its class table's reserve is a tiny share of the file
        # The budget reserved header room for the longest class table; the table now known, the bytes it
        # leaves free go to more blocks (a small image's rate otherwise lands a few percent low).
        reserve = overhead_bytes(imgs[i].shape, prior, seed, plan[i]["alpha"], adaptive, adapt, sides[i], restore)
        fields, gfields = fields_of(i)
        room = restore.room(imgs[i].shape) if gfields[0] else 0

        def spare_blocks(nb: np.ndarray) -> int:
            cls = np.unique(nb)
            hdr = _header(imgs[i].shape, prior, seed, cls, np.searchsorted(cls, nb), plan[i]["alpha"], fields,
                          gfields)
            return (reserve - len(container.header_bytes(hdr)) - container.CRC_BYTES - room) * 8 // prior.kappa

        for e in range(spare_blocks(n), 0, -1):   # the most blocks whose file still fits the reserve
            more = allocate(k, total + e, cap)
            if int(more.sum()) > int(n.sum()) and spare_blocks(more) >= int(more.sum()) - total:
                return more
        return n

    def preview_of(points: torch.Tensor | None):
        """(b, n, 3) posterior-mean values at the batch's kept grid points -> (b, p, p, 3) uint8 patches (points
        outside the image in every patch of the batch are not evaluated and show black)."""
        def preview(pred: torch.Tensor) -> np.ndarray:
            if points is not None:
                full = torch.full((pred.shape[0], p * p, 3), -0.5, dtype=pred.dtype, device=pred.device)
                full[:, points] = pred
                pred = full
            return ((pred + 0.5).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).reshape(-1, p, p, 3).cpu().numpy()
        return preview

    # latent priors: each image's best-known latents (the prior mean until a band of it is coded)
    context = (LatentContext(prior, [pl["patches"].shape[0] for pl in plan], device)
               if prior.latent is not None else None)
    bands = list(_batches(grids, max_units, prior.latent is not None, alone=delta is not None))
    batches = [[(i, int(u)) for i, us in segs for u in us] for segs in bands]
    if journal is not None and len(batches) > 1:
        key = encode_key(list(imgs) + list(importance or []), rate, prior.id, fit, seed, max_units,
                         dict(adaptive=adaptive, adapt=adapt, importance=importance is not None)
                         | ({"delta_groups": sides} if adapt and delta_group else {})
                         | ({"delta_top": True} if adapt and delta_group and delta_top else {}))
        done = journal.restore(key, [np.array(part, dtype=np.int64).reshape(-1, 2) for part in batches])
    else:
        journal, done = None, 0   # one batch: nothing to resume
    s = 0
    for b, (segs, part) in enumerate(zip(bands, batches)):
        if b < done:   # coded by an earlier run of this encode: take it from the journal
            coded = journal.coded(b, delta, device)
            _keep(part, coded, blocks, idx_out, kl_out, probe_out)
            if context is not None:
                context.record(prior, seed, part, coded, device)
            s += len(part)
            continue
        begun = journal.begin(delta) if journal is not None else None
        img_of = np.array([i for i, _ in part])
        uid = np.array([u for _, u in part])
        tgt = np.stack([plan[i]["patches"][u] for i, u in part])
        target = (torch.from_numpy(tgt).to(device).float() / 255.0 - 0.5).reshape(len(part), p * p, 3)
        mask = np.stack([plan[i]["mask"][u] for i, u in part])
        weight = torch.from_numpy(mask).to(device) if mask.min() < 1 else None
        emb_b, target, weight = _inside_coords(emb, target, mask, weight)  # skip grid points outside the image
        kept = None if emb_b.shape[0] == p * p else torch.from_numpy(
            np.flatnonzero(mask.max(axis=0)[:, 0] > 0)).to(device)
        canvases = _canvases(segs, grids, context, device) if context is not None else None
        field = prior.field(emb_b, device, canvases, kept, compile)
        preview = preview_of(kept) if preview_every else None
        # this batch's share of each image's budget, in proportion to its patches here
        share = {i: plan[i]["total"] * int((img_of == i).sum()) / plan[i]["patches"].shape[0]
                 for i in np.unique(img_of)}
        gens = rng.unit_noise([fit.seed * 1_000_003 + 500_009 + int(u) for u in uid], device)
        coded = yield from code_by_content(ContentBatch(target, field, weight, img_of, uid, share, gens), prior,
                                           fit, device, seed, split if adaptive else None,
                                           Reporting(preview, preview_every, (s, n_all)), preview, delta)
        _keep(part, coded, blocks, idx_out, kl_out, probe_out)
        if context is not None:  # later bands of these images see this band's coded latents
            context.record(prior, seed, part, coded, device)
        if journal is not None:
            journal.finish(part, coded, delta, begun)
        s += len(part)

    out = []
    for i, (img, pl) in enumerate(zip(imgs, plan)):
        nb = blocks[i]
        cls_blocks = np.unique(nb)
        fields, gfields = fields_of(i)
        if gfields[0]:
            d_idx, d_net = delta.group_indices(i), delta.group_deltas(i)
        else:
            cd = hierarchy.coded_of(delta, i)
            d_idx, d_net = cd.indices, cd.delta
        # The sender's reconstruction goes through the receiver's own path.
        rgb = stitch(_render(prior, seed, nb, idx_out[i], grid=grids[i], delta=d_net, delta_group=gfields[0]),
                     img.shape[0], img.shape[1])
        codes = wiener = None
        if gfields[0]:   # kind 15: the sender picks the restoration filters
            rgb, codes, wiener = restore.choose(to_rgb(img)[0], rgb)
        hdr = _header(img.shape, prior, seed, cls_blocks, np.searchsorted(cls_blocks, nb), pl["alpha"], fields, gfields,
                      codes, wiener)
        data = container.write(hdr, np.concatenate([d_idx] + idx_out[i]))
        recon = from_rgb(rgb, img.shape[2], pl["alpha_arr"])
        nc = min(3, img.shape[2]) if img.shape[2] != 2 else 1
        kl = np.zeros((len(nb), int(nb.max())))
        for u, row in enumerate(kl_out[i]):
            kl[u, :len(row[:nb.max()])] = row[:nb.max()]
        out.append(EncodedImage(data, recon, hdr, prior, psnr_uint8(img[:, :, :nc], recon[:, :, :nc]),
                                pl["warns"], nb, kl, probe_out[i] if adaptive else None))
    return out


def _keep(part: list[tuple[int, int]], coded: CodedBatch, blocks, idx_out, kl_out, probe_out) -> None:
    """Store a coded batch's blocks, indices, KL and probe KL under each (image, patch) of `part`."""
    for k, (i, u) in enumerate(part):
        blocks[i][u] = coded.blocks[k]
        idx_out[i][u] = coded.indices[k, :coded.blocks[k]]
        kl_out[i][u] = coded.kl[k]
        if coded.probe_kl is not None:
            probe_out[i][u] = coded.probe_kl[k]


def _inside_coords(emb: torch.Tensor, target: torch.Tensor, mask: np.ndarray, weight: torch.Tensor | None):
    """Keep only the patch-grid points that lie inside the image in at least one patch of the batch: points
    outside it in every patch are masked out of the distortion anyway, so dropping them changes nothing but
    the cost (a 1x10000 image is 157 patches of which one row is inside: 64x less work)."""
    keep = mask.max(axis=0)[:, 0] > 0            # (p*p,)
    if keep.all():
        return emb, target, weight
    sel = torch.from_numpy(np.flatnonzero(keep)).to(emb.device)
    return emb[sel], target[:, sel], (weight[:, sel] if weight is not None else None)


def _inflate_bounded(data: bytes, size: int) -> bytes:
    """zlib-decompress at most size + 1 bytes (a small forged stream cannot expand to gigabytes)."""
    d = zlib.decompressobj()
    try:
        raw = d.decompress(data, size + 1)
    except zlib.error as e:
        raise CmbFormatError(f"corrupt .cmb file: alpha plane ({e})") from None
    if len(raw) != size or d.unconsumed_tail or not d.eof:
        raise CmbFormatError("corrupt .cmb file: alpha plane has the wrong size")
    return raw


def encode_image(image: np.ndarray, rate_bpp: float, **kw) -> Generator[EncodeEvent, None, EncodedImage]:
    """One image of any size -> EncodedImage (a generator; see encode_image_batch)."""
    res = yield from encode_image_batch([image], rate_bpp, **kw)
    return res[0]


# ---- decoder ---------------------------------------------------------------------------------------------

def decode_image_full(data: bytes, prior_dirs=None, device="cpu", progress=None
                      ) -> tuple[np.ndarray, CmbHeader, Prior]:
    """Patch-coded `.cmb` bytes -> ((H, W, C) uint8, header, prior). Raises CmbFormatError on any defect.
    `progress(done, total)` (patches rendered) is called as the patches are evaluated."""
    hdr, idx = container.read(bytes(data))
    if not hdr.patch:
        raise CmbFormatError("this file is not a patch-coded image")
    limits.check_header(hdr)
    prior = find_by_short_id(hdr.prior_id, prior_dirs)
    if prior.kappa != hdr.kappa or prior.modality != "image" or prior.patch != hdr.patch:
        raise PriorError(f"prior {hdr.prior_id.hex()} does not match this file (kappa or patch size differ)")
    if max(hdr.class_blocks) > prior.n_params:
        raise CmbFormatError(f"corrupt .cmb header: {max(hdr.class_blocks)} blocks for a "
                             f"{prior.n_params}-weight prior")
    h, w, c = hdr.shape
    alpha = None
    if c in (2, 4):
        raw = _inflate_bounded(hdr.alpha, h * w)
        alpha = np.frombuffer(raw, dtype=np.uint8).reshape(h, w)
    delta = hierarchy.from_header(prior, hdr, idx, device)
    ub = hdr.unit_blocks
    offs = np.concatenate([[0], np.cumsum(ub)]) + hdr.delta_blocks
    per_unit = [idx[offs[u]:offs[u + 1]] for u in range(len(ub))]
    rgb = stitch(_render(prior, hdr.seed, ub, per_unit, device, progress, patch_grid(h, w, hdr.patch), delta,
                         hdr.delta_group), h, w)
    rgb = restoration.restore(rgb, hdr.floors, hdr.wiener)
    return from_rgb(rgb, c, alpha), hdr, prior


def decode_image(data: bytes, prior_dirs=None) -> np.ndarray:
    return decode_image_full(data, prior_dirs)[0]
