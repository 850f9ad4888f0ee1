"""The audio codec: 1-D INRs over time, one per chunk of each channel, level-normalised, bits by content.

Sender/receiver contract. The header carries the original sample count N, channel count C and sample rate
sr, the number of units U, the clip's gain code g and the block count n_u of every unit (a class table and one
class per unit). The prior fixes the coded sample rate R and chunk length L. Both sides compute
M = ceil(N * R / sr) samples per channel at rate R and K = ceil(M / L) chunks per channel, and a file is valid
only if U = C * K. Unit u = c * K + k codes samples [k L, (k + 1) L) of channel c; with n_u blocks its weights
are drawn from the prior exactly as a single image with n_u blocks (the prior's partition for n_u blocks,
candidate stream (seed, b) for its block b); a unit with n_u = 0 is silent. The receiver evaluates every unit
on the L-point grid, keeps the first M samples, maps them from the network scale (x / 2) back to [-1, 1],
multiplies unit u by its chunk-envelope factor (kinds 13 and 14, engine/audio_envelope.py), divides by the
gain 10^(g * GAIN_STEP_DB / 20) (engine/audio_gain.py), resamples to sr with SciPy's polyphase
filter, keeps the first N samples and clips to [-1, 1]. Files of the older kind 8 (one block count for every
unit, no gain) decode the same way with g = 0.

Latent priors (``prior.latent``, 1-D grids; engine/latent.py): a unit's vector starts with its latent grids.
The receiver stitches the grids of the K units of each channel in time order (a silent unit, n_u = 0, takes
the prior mean), turns them into features with the prior's upsampler and evaluates each sounding unit's INR on
its features; silent units still decode to exact zeros. It may do so in windows of units with one unit of
margin on each side (see latent.py), which gives the features of the whole channel.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Generator, Sequence

import numpy as np
import torch

from . import audio_bands, audio_envelope, audio_shaping, cancel, container, hierarchy, limits, rng, siren
from .audio_gain import factor, gain_code
from .audio_io import resample, resampled_length
from .codec import EncodeEvent, Reporting, _members, _weights
from .metrics import audio_psnr, snr as audio_snr  # noqa: F401 (re-exported)
from .latent import Canvas
from .journal import Journal, encode_key
from .unit_coding import CodedBatch, ContentBatch, LatentContext, code_by_content, unit_weights
from .config import FitConfig
from .container import CmbHeader
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .prior import Prior, find_by_short_id, nearest

MAX_SAMPLE_RATE = 1_536_000
EITHER = "either"    # encode_audio_batch(adapt=EITHER): each clip coded with and without its delta, the better kept
MAX_UNITS = 512      # sounding chunks the encoder fits and codes together (memory is bounded by this, not the clip)
RENDER_BATCH = 256   # units evaluated together when rendering; fixed so sender and receiver compute alike
LEVELS = 8           # distinct block counts a clip's sounding units may take (plus 0 for digital silence)


@dataclass
class EncodedAudio:
    data: bytes
    reconstruction: np.ndarray      # (N, C) float32 in [-1, 1] at the original rate: what decode returns
    sample_rate: int
    header: CmbHeader
    prior: Prior
    psnr: float                     # dB, waveform mapped to [0, 1] (peak 1), as COIN++/RECOMBINER
    snr: float                      # dB
    block_kl_bits: np.ndarray = field(repr=False, default=None)   # (U, max blocks) KL of each block when coded
    warnings: list[str] = field(default_factory=list)
    unit_blocks: np.ndarray = field(repr=False, default=None)     # (U,) blocks of each unit (0: silent)

    @property
    def seconds(self) -> float:
        return self.header.shape[0] / self.sample_rate

    @property
    def kbps(self) -> float:
        return 8.0 * len(self.data) / self.seconds / 1000.0


def layout(n_samples: int, channels: int, sample_rate: int, prior: Prior) -> tuple[int, int]:
    """-> (M samples per channel at the prior's rate, K chunks per channel); U = channels * K."""
    m = resampled_length(n_samples, sample_rate, prior.audio.sample_rate)
    return m, -(-m // prior.audio.chunk)


def audio_header(n: int, c: int, sr: int, prior: Prior, seed: int, class_blocks, unit_class, gain: int,
                 delta: tuple[tuple[int, ...], int] = ((), 0), envelope=None, bands=None,
                 band_set: int = 0) -> CmbHeader:
    """The (kind 10) header of a clip of n samples x c channels at sr Hz with these block-count classes; kind 12
    with `delta` = (scale codes, blocks) of a clip-level network delta (engine.hierarchy); kinds 13 and 14 with
    `envelope`, every unit's chunk-envelope code (0 for units without blocks); kind 5 with `bands`, the band-gain
    codes of set `band_set` (engine/audio_bands.py)."""
    return CmbHeader("audio", (n, c, sr), prior.short_id, seed, prior.kappa, max(class_blocks), len(unit_class), 0,
                     tuple(int(b) for b in class_blocks), tuple(int(k) for k in unit_class), b"", int(gain),
                     tuple(delta[0]), int(delta[1]),
                     None if envelope is None else tuple(int(k) for k in envelope),
                     bands=None if bands is None else tuple(int(k) for k in bands), band_set=int(band_set))


@dataclass(frozen=True)
class Budget:
    """What a clip's file will hold, known before fitting: the app's plan and the encoder share it."""
    total: int                  # blocks over all units
    units: int
    sounding: int               # units that are not digital silence (each gets one block at least)
    overhead_bytes: int         # header (with the widest class table) and checksum
    warnings: list[str]
    raised: bool = False        # the rate was below the smallest file and was raised to it


def block_budget(kbps: float, n: int, c: int, sr: int, prior: Prior, seed: int = 0, gain: int = 0,
                 sounding: int | None = None, delta: bool = False, envelope: bool = False,
                 band_set: int | None = None) -> Budget:
    """Blocks over all units (and the clip's network delta, with `delta`) whose file (header with the widest
    class table, delta fields, with `envelope` the sounding units' envelope codes and with `band_set` the codes
    of that band-gain set; checksum) is nearest
    kbps * seconds / 8 bytes. `sounding` units (default: all) need one block at least: a rate below that
    smallest file is raised to it, with a warning."""
    _, k = layout(n, c, sr, prior)
    units = c * k
    sounding = units if sounding is None else sounding
    levels = list(range(prior.n_params - LEVELS + 1, prior.n_params + 1))   # the widest class table
    probe = audio_header(n, c, sr, prior, seed, [0] + levels, [LEVELS] * sounding + [0] * (units - sounding), gain,
                         hierarchy.widest_fields(prior.inr) if delta else ((), 0),
                         [0] * units if envelope else None,
                         None if band_set is None else [0] * audio_bands.SETS[band_set].n_codes(units, c),
                         band_set or 0)
    overhead = len(container.header_bytes(probe)) + container.CRC_BYTES
    total = int(np.floor((kbps * 1000.0 * n / sr - 8 * overhead) / prior.kappa))
    warns, raised = [], total < sounding
    if raised:
        smallest = (8.0 * overhead + sounding * prior.kappa) / (n / sr) / 1000.0
        warns.append(f"{kbps:g} kbps is below the smallest file for {n} samples x {c} channel(s) "
                     f"({smallest:.3g} kbps); coding at that")
        total = sounding
    return Budget(min(total, sounding * prior.n_params), units, sounding, overhead, warns, raised)


def bandwidth_notes(sample_rate: int, prior: Prior) -> list[str]:
    """What a user must know before coding a clip with this prior: audio above the prior's Nyquist frequency is
    lost, and the shipped priors model speech (music and other sounds are coded with a model of speech)."""
    r = prior.audio.sample_rate
    if sample_rate <= r:
        return []
    note = (f"the prior {prior.name} codes {r / 1000:g} kHz audio: everything above {r / 2000:g} kHz in this "
            f"{sample_rate / 1000:g} kHz file is lost")
    if "speech" in (prior.name or ""):
        note += "; it is a model of speech, so music and other sounds come back muffled and noisy"
    return [note]


def plan_budget(samples: np.ndarray, sample_rate: int, kbps: float, prior: Prior, seed: int = 0,
                adapt: bool = False, envelope: bool = True, bands: bool = True) -> Budget:
    """The budget `encode_audio` will use for this clip (level and silent chunks measured as it does; `adapt`,
    `envelope` and `bands` as encode_audio_batch's)."""
    return _plan_clip(check_audio(samples, sample_rate), int(sample_rate), kbps, prior, seed, adapt,
                      envelope, bands).budget


def level_grid(mean_blocks: float, cap: int, levels: int = LEVELS) -> np.ndarray:
    """The block counts a clip's units may take: `levels` geometric steps around the clip's mean (from a sixth to
    four times it), within 1..cap. Fixed per clip, so every batch of a long clip uses the same classes."""
    lo, hi = max(1.0, mean_blocks / 6.0), min(float(cap), max(1.0, mean_blocks * 4.0))
    return np.unique(np.clip(np.round(np.geomspace(lo, max(lo, hi), levels)), 1, cap).astype(np.int64))


def allocate(kl: np.ndarray, total: int, grid: np.ndarray) -> np.ndarray:
    """Blocks per unit in proportion to each unit's KL at a common rate weight, snapped to the clip's `grid`
    (log-nearest), with the scale found by bisection so the sum is as near `total` as the grid allows."""
    k = np.maximum(np.asarray(kl, dtype=np.float64), 1e-3)
    lg = np.log(grid.astype(np.float64))

    def counts(scale: float) -> np.ndarray:
        return grid[np.abs(np.log(scale * k)[:, None] - lg[None, :]).argmin(1)]

    lo, hi = 1e-9, 1e9
    for _ in range(100):
        mid = np.sqrt(lo * hi)
        if counts(mid).sum() > total:
            hi = mid
        else:
            lo = mid
    a, b = counts(lo), counts(hi)
    return a if abs(int(a.sum()) - total) <= abs(int(b.sum()) - total) else b


def _chunks(x: np.ndarray, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """(M, C) at the prior's rate -> (chunks (U, L, 1), mask (U, L, 1)); chunk u = c * K + k."""
    L = prior.audio.chunk
    m, c = x.shape
    k = -(-m // L)
    padded = np.zeros((c, k * L), dtype=np.float32)
    padded[:, :m] = x.T
    mask = np.zeros((c, k * L), dtype=np.float32)
    mask[:, :m] = 1.0
    return padded.reshape(c * k, L, 1), mask.reshape(c * k, L, 1)


def _render(prior: Prior, seed: int, unit_blocks: np.ndarray, indices: Sequence[np.ndarray], n: int, c: int,
            sr: int, gain: int | None, device="cpu", progress=None, delta: torch.Tensor | None = None,
            envelope: Sequence[int] | None = None, bands: Sequence[int] | None = None, band_set: int = 0
            ) -> np.ndarray:
    """Receiver side: per unit its block count and indices -> (N, C) float32 at the original rate. Units with
    no blocks are silent. `gain` None: a kind-8 file (no level normalisation). `progress(done, total)`:
    sounding units rendered so far, after each render batch. `delta` (P_inr,) adapts a shared-network prior's
    network to the clip (kind 12). `envelope` (U,) the units' chunk-envelope codes (kinds 13 and 14). `bands`
    the band-gain codes of set `band_set` (kind 5)."""
    y = _at_prior_rate(prior, seed, unit_blocks, indices, n, c, sr, device, progress, delta, envelope)
    return _finish(prior, y, n, sr, gain, bands, unit_blocks, band_set)


@torch.no_grad()
def _at_prior_rate(prior: Prior, seed: int, unit_blocks: np.ndarray, indices: Sequence[np.ndarray], n: int, c: int,
                   sr: int, device="cpu", progress=None, delta: torch.Tensor | None = None,
                   envelope: Sequence[int] | None = None) -> np.ndarray:
    """Receiver side: the units' network outputs, times their envelope factors, as (M, C) at the prior's rate
    (see _render)."""
    L = prior.audio.chunk
    m, k = layout(n, c, sr, prior)
    emb = siren.fourier_embed(siren.grid_coords((L,), device=device), prior.inr)
    mix = prior.mixers(device)
    out = np.zeros((len(unit_blocks), L), dtype=np.float32)
    ub = np.asarray(unit_blocks)
    done, total = 0, int((ub > 0).sum())
    if prior.latent is not None:
        out = _render_latent(prior, seed, ub, indices, c, k, emb, device, progress, delta)
    else:
        for nb in np.unique(ub[ub > 0]):
            us = np.flatnonzero(ub == nb)
            members = _members(prior, int(nb))
            for s in range(0, len(us), RENDER_BATCH):
                part = us[s:s + RENDER_BATCH]
                w = _weights(prior, members, seed, np.stack([indices[u] for u in part]), device)
                out[part] = (siren.forward(w, emb, prior.inr, mix)[:, :, 0] * 2.0).cpu().numpy()
                done += len(part)
                if progress is not None:
                    progress(done, total)
    if envelope is not None:
        out *= audio_envelope.factors(np.asarray(envelope))[:, None]
    return out.reshape(c, k * L)[:, :m].T                           # (M, C) at the prior's rate


def _finish(prior: Prior, y: np.ndarray, n: int, sr: int, gain: int | None, bands: Sequence[int] | None = None,
            unit_blocks: np.ndarray | None = None, band_set: int = 0) -> np.ndarray:
    """Receiver side: (M, C) network outputs at the prior's rate -> (N, C) float32 at the original rate: the
    band gains applied (kind 5 with flag bit 2; the samples of silent units, no blocks, stay exact zeros), the
    clip gain undone, resampled, clipped to [-1, 1]."""
    if bands is not None:
        m, c = y.shape
        L = prior.audio.chunk
        sounding = np.repeat(np.asarray(unit_blocks).reshape(c, -1) > 0, L, axis=1)[:, :m].T   # (M, C)
        y = _with_bands(y, bands, L, band_set) * sounding
    if gain is not None:
        y = y / np.float32(factor(gain))
    y = resample(np.ascontiguousarray(y), prior.audio.sample_rate, sr)[:n]
    return np.clip(y, -1.0, 1.0).astype(np.float32)


def _with_bands(y: np.ndarray, bands: Sequence[int], chunk: int, band_set: int) -> np.ndarray:
    """(M, C) at the prior's rate and a file's band-gain codes (channel-major) -> (M, C) with them applied."""
    per = len(bands) // y.shape[1]
    codes = np.asarray(bands, dtype=np.int64)
    return np.stack([audio_bands.apply(y[:, ch], codes[ch * per:(ch + 1) * per], chunk, band_set)
                     for ch in range(y.shape[1])], 1)


def _choose_bands(target: np.ndarray, y: np.ndarray, chunk: int, band_set: int) -> np.ndarray:
    """Sender side: (M, C) levelled original and decode at the prior's rate -> band-gain codes, channel-major."""
    return np.concatenate([audio_bands.choose(target[:, ch], y[:, ch], chunk, band_set).reshape(-1)
                           for ch in range(y.shape[1])])


def _render_latent(prior: Prior, seed: int, ub: np.ndarray, indices: Sequence[np.ndarray], c: int, k: int,
                   emb: torch.Tensor, device, progress=None, delta: torch.Tensor | None = None) -> np.ndarray:
    """Receiver side of a latent prior -> (U, L) network outputs x 2: per channel, windows of RENDER_BATCH units
    with one unit of margin each side (which gives the whole channel's features, see latent.py); silent units
    stay zero. `progress(done, total)` counts sounding units."""
    out = np.zeros((len(ub), prior.audio.chunk), dtype=np.float32)
    done, total = 0, int((ub > 0).sum())
    for ch in range(c):
        for a in range(0, k, RENDER_BATCH):
            cancel.check()
            b = min(k, a + RENDER_BATCH)
            lo, hi = ch * k + max(0, a - 1), ch * k + min(k, b + 1)    # one unit of margin each side
            w = _vectors(prior, seed, ub[lo:hi], indices[lo:hi], device)   # (hi-lo, P)
            field = prior.field(emb, device, [Canvas(1, hi - lo, torch.arange(hi - lo, device=device))])
            if delta is not None:
                field.shared = field.shared + delta.to(device)
            feat = field.features(w)                                  # (hi-lo, L, F)
            keep = torch.arange(ch * k + a - lo, ch * k + b - lo, device=device)
            keep = keep[torch.from_numpy(ub[ch * k + a:ch * k + b] > 0).to(device)]
            if len(keep):
                out[(keep + lo).cpu().numpy()] = (field(w[keep], feat[keep])[:, :, 0] * 2.0).cpu().numpy()
                done += len(keep)
                if progress is not None:
                    progress(done, total)
    return out


def _vectors(prior: Prior, seed: int, unit_blocks: np.ndarray, indices: Sequence[np.ndarray], device
             ) -> torch.Tensor:
    """Receiver side: units' coded vectors (n, P); a silent unit (no blocks) takes the prior mean."""
    w = torch.from_numpy(prior.mu).to(device).repeat(len(unit_blocks), 1)
    on = np.flatnonzero(np.asarray(unit_blocks) > 0)
    if len(on):
        w[torch.from_numpy(on).to(device)] = unit_weights(prior, seed, unit_blocks[on], [indices[u] for u in on],
                                                          device)
    return w


def _batch_bounds(item: Sequence[int], max_units: int, alone: bool) -> list[tuple[int, int]]:
    """[start, end) of each encoder batch over the units in order (`item` (n,) the clip of each): max_units at a
    time; with `alone`, a batch also ends where a clip does."""
    out, s = [], 0
    while s < len(item):
        e = min(len(item), s + max_units)
        if alone:
            e = s + int(np.argmax(np.asarray(item[s:e]) != item[s])) if item[e - 1] != item[s] else e
        out.append((s, e))
        s = e
    return out


def _canvases(part: list[tuple[int, int]], plans: list["_ClipPlan"], context: LatentContext, device
              ) -> list[Canvas]:
    """Stitching layout of one batch of a latent prior: per (clip, channel) the run of chunks from the batch's
    first unit there to its last, with one unit of margin each side; cells outside the batch (silent units,
    units of other batches) take their latents from `context` (coded values, or the prior mean)."""
    per_channel = {i: plans[i].chunks.shape[0] // plans[i].x.shape[1] for i, _ in part}   # K of each clip
    where: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for j, (i, u) in enumerate(part):
        where.setdefault((i, u // per_channel[i]), []).append((j, u))
    out = []
    for (i, ch), members in where.items():
        k = per_channel[i]
        us = [u for _, u in members]
        lo, hi = max(ch * k, min(us) - 1), min((ch + 1) * k, max(us) + 2)
        cells = torch.full((hi - lo,), -1, dtype=torch.int64, device=device)
        cells[torch.tensor([u - lo for u in us], device=device)] = torch.tensor([j for j, _ in members],
                                                                                device=device)
        ctx = None if bool((cells >= 0).all()) else context[i][lo:hi]
        out.append(Canvas(1, hi - lo, cells, ctx))
    return out


def check_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise MediaError(f"expected audio samples of shape (N, C), got {x.shape}")
    if not 1 <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise MediaError(f"sample rate {sample_rate} Hz is out of range")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(-np.iinfo(x.dtype).min)
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise MediaError("audio holds NaN or infinite samples")
    return np.clip(x, -1.0, 1.0)


def adapt_mode(delta: bool | None, try_delta: bool) -> bool | str:
    """`encode_audio_batch`'s `adapt` for a user's choice: `delta` True or False when the user asked for or
    against a clip delta, None when they did not; `try_delta` asks the sender to try both (EITHER). Asking for
    both is refused (CombinerError): the user would not know which was obeyed."""
    if try_delta and delta is not None:
        raise CombinerError("--try-delta chooses per clip whether to code a network delta: "
                            "give it without --delta or --no-delta")
    return EITHER if try_delta else bool(delta)


def delta_triable(units: int, prior: Prior, max_units: int | None = None) -> bool:
    """Whether `adapt=EITHER` codes a clip of `units` units a second time, with its delta: a shared-network prior
    and a clip of at most one encoder batch (a longer clip gets the plain file, in one pass)."""
    return hierarchy.adapts(prior) and units <= (max_units or MAX_UNITS)


def encode_audio(samples: np.ndarray, sample_rate: int, kbps: float | None = None, **kw
                 ) -> Generator[EncodeEvent, None, EncodedAudio]:
    """Encode one clip, (N,) or (N, C) samples (float in [-1, 1] or integer PCM) at `sample_rate` Hz.
    Yields EncodeEvents (steps counted over the whole clip); returns EncodedAudio. See encode_audio_batch."""
    out = yield from encode_audio_batch([(samples, sample_rate)], kbps, **kw)
    return out[0]


@dataclass
class _ClipPlan:
    x: np.ndarray                 # (N, C) input
    sr: int
    gain: int                     # gain code (0 for a silent clip)
    chunks: np.ndarray            # (U, L, 1) level-normalised (and with `envelope`, each at the reference level)
    mask: np.ndarray              # (U, L, 1) error weights: 0 in padding, else 1 or the envelope factor squared
    envelope: np.ndarray | None   # (U,) chunk-envelope codes (0 for silent units), or None
    sounding: np.ndarray          # (U,) bool: not digital silence
    grid: np.ndarray              # block counts the clip's sounding units may take
    budget: Budget
    levelled: np.ndarray          # (M, C) the clip at the prior's rate and the reference level (band gains' target)
    band_set: int | None          # the band-gain set (engine/audio_bands.py) whose codes are chosen once every unit
                                  # is coded; None: no band gains
    blocks: np.ndarray = None     # (U,) blocks of each unit, filled while coding
    indices: list = None          # per unit its indices
    kl: list = None               # per unit the KL of each block when coded


def _plan_clip(x: np.ndarray, sr: int, kbps: float, prior: Prior, seed: int, adapt: bool, envelope: bool,
               bands: bool = True) -> _ClipPlan:
    xr = resample(x, sr, prior.audio.sample_rate)                  # (M, C) at the prior's rate
    code = gain_code(xr, prior.audio.sample_rate)
    gain = 0 if code is None else code
    levelled = (xr * np.float32(factor(gain))).astype(np.float32)
    chunks, mask = _chunks(levelled, prior)
    sounding = np.abs(chunks * mask).reshape(chunks.shape[0], -1).max(1) > 0
    env = None
    if envelope:
        env = np.where(sounding, audio_envelope.codes(chunks, mask), 0)
        chunks, mask = audio_envelope.normalise(chunks, mask, env)
    n, c = x.shape
    # a silent clip decodes to zeros: nothing to correct
    band_set = (audio_bands.set_for(kbps / c) if bands and sounding.any() and audio_bands.usable(prior.audio.chunk)
                else None)
    budget = block_budget(kbps, n, c, sr, prior, seed, gain, int(sounding.sum()), adapt and bool(sounding.any()),
                          envelope, band_set)
    budget.warnings.extend(bandwidth_notes(sr, prior))
    grid = level_grid(budget.total / max(1, budget.sounding), prior.n_params)
    u = chunks.shape[0]
    return _ClipPlan(x, sr, gain, chunks, mask, env, sounding, grid, budget, levelled, band_set,
                     np.zeros(u, dtype=np.int64), [np.zeros(0, dtype=np.int64)] * u, [np.zeros(0)] * u)


def encode_audio_batch(clips: Sequence[tuple[np.ndarray, int]], kbps: float | None = None, *,
                       prior: Prior | None = None, fit: FitConfig = FitConfig(),
                       device: str | torch.device = "cpu", seed: int = 0, prior_dirs=None, compile: bool = False,
                       max_units: int | None = None, adaptive: bool = True, adapt: bool | str = False,
                       envelope: bool = True, bands: bool = True,
                       journal: Journal | None = None) -> Generator[EncodeEvent, None, list[EncodedAudio]]:
    """Encode clips [(samples, sample_rate), ...] at one target rate (kbit/s from the real file size).

    Every clip is brought to the reference level (one quantised gain per clip, in the header), so the error
    follows the signal's level. With `adaptive`, the sounding units are first fitted for half the steps with
    one rate weight per clip; the clip's block budget is then split across its units in proportion to their KL
    (on a fixed grid of LEVELS counts per clip), so loud, busy chunks get more blocks than pauses. Digital
    silence gets no blocks at all and decodes to exact zeros. Units of all clips are fitted and coded together,
    `max_units` at a time, so memory does not grow with the length of the audio. Yields EncodeEvents (steps
    counted over all units); returns one EncodedAudio per clip.

    `adapt` also codes a delta on a shared-network prior's network for each sounding clip, in the clip's first
    batch (kind 12; engine.hierarchy). A clip is then never batched with another, so its file does not depend on
    what it is encoded with. Off by default: on speech_test at 24 kbps it measured 0.1 dB below kind 10 (the
    latent grids carry the clip; the shared network is small) at 1.4x the encode time (docs/results.md).
    `adapt=EITHER` codes every clip both ways and keeps the better file (`_encode_either`).

    `envelope` (default) also stores one level per chunk (kinds 13 and 14; engine/audio_envelope.py): each chunk
    is fitted at the reference level and its error weighed by its level. Without it: kinds 10 and 12.

    `bands` (default) also chooses, once every unit is coded, a gain per band and segment of the decode
    (engine/audio_bands.py; kind 5); their codes count in the rate. A silent clip gets none.

    `journal` (engine/journal.py) makes a long encode resumable: every finished batch is written to it, and the
    batches an earlier run of the same encode wrote there are taken from it instead of being coded again
    (`journal.restored` says how many). The file is the same either way.
    """
    if adapt == EITHER:
        return (yield from _encode_either(clips, kbps, dict(
            prior=prior, fit=fit, device=device, seed=seed, prior_dirs=prior_dirs, compile=compile,
            max_units=max_units, adaptive=adaptive, envelope=envelope, bands=bands, journal=journal)))
    device = torch.device(device)
    fit = fit.for_modality("audio")
    xs = [(check_audio(x, sr), int(sr)) for x, sr in clips]
    if kbps is not None and not kbps > 0:
        raise CombinerError("the target rate must be positive")
    if prior is None:
        if kbps is None:
            raise ValueError("give kbps or prior")
        prior = nearest("audio", 1, kbps, prior_dirs)
    if prior.modality != "audio" or prior.audio is None or prior.inr.out_dim != 1:
        raise PriorError(f"prior {prior.name} is not a mono audio prior")
    if fit.shape_g1 > 0 and fit.points < 1:
        raise CombinerError("noise shaping filters whole chunks: it needs points = 1")
    if adapt and not hierarchy.adapts(prior):
        raise CombinerError(f"prior {prior.name} has no shared network to adapt to a clip")
    delta = (hierarchy.ImageDelta(prior.inr, torch.from_numpy(prior.inr_weights).to(device), prior.kappa)
             if adapt else None)
    rate = kbps if kbps is not None else prior.rate
    plans = [_plan_clip(x, sr, rate, prior, seed, adapt, envelope, bands) for x, sr in xs]
    # All sounding units in one list: (clip, unit within clip); batches of max_units (of one clip with `adapt`).
    units = [(i, u) for i, pl in enumerate(plans) for u in np.flatnonzero(pl.sounding)]
    n_all = max(1, len(units))
    L = prior.audio.chunk
    emb = siren.fourier_embed(siren.grid_coords((L,), device=device), prior.inr)
    # latent priors: each clip's best-known latents per unit (the prior mean until the unit is coded)
    context = LatentContext(prior, [pl.chunks.shape[0] for pl in plans], device) if prior.latent is not None else None
    field = prior.field(emb, device, compile=compile)

    def split(i: int, units: np.ndarray, kl: np.ndarray, total: int) -> np.ndarray:
        return allocate(kl, total, plans[i].grid)

    max_units = max_units or MAX_UNITS
    bounds = _batch_bounds([i for i, _ in units], max_units, alone=adapt)
    if len(bounds) < 2:   # the whole encode is one batch: nothing to resume
        journal = None
    done = 0 if journal is None else journal.restore(
        encode_key([x for x, _ in xs], rate, prior.id, fit, seed, max_units,
                   dict(rates=[sr for _, sr in xs], adaptive=adaptive, adapt=adapt, envelope=envelope)
                   | ({"bands": True} if bands else {})),
        [np.array(units[s:e], dtype=np.int64).reshape(-1, 2) for s, e in bounds])
    for b, (s, e) in enumerate(bounds):
        part = units[s:e]
        if b < done:   # coded by an earlier run of this encode: take it from the journal
            _keep(plans, part, journal.coded(b, delta, device), context, prior, seed, device)
            continue
        begun = journal.begin(delta) if journal is not None else None
        clip_of = np.array([i for i, _ in part])
        uid = np.array([u for _, u in part])
        target = torch.from_numpy(np.stack([plans[i].chunks[u] for i, u in part])).to(device) * 0.5  # network scale
        mask = np.stack([plans[i].mask[u] for i, u in part])
        weight = torch.from_numpy(mask).to(device) if (mask != 1).any() else None
        if fit.shape_g1 > 0:
            weight = audio_shaping.shaped(weight, target, audio_shaping.Shaping(fit.shape_g1, fit.shape_g2))
        if context is not None:
            field = prior.field(emb, device, _canvases(part, plans, context, device), compile=compile)
        share = {i: _share(plans[i], int((clip_of == i).sum()), hierarchy.coded_of(delta, i).fields[1])
                 for i in np.unique(clip_of)}
        gens = rng.unit_noise([fit.seed * 1_000_003 + 700_001 + int(u) for u in uid], device)
        coded = yield from code_by_content(ContentBatch(target, field, weight, clip_of, uid, share, gens), prior,
                                           fit, device, seed, split if adaptive else None,
                                           Reporting(None, 1, (s, n_all), pooled=True), adapt=delta)
        _keep(plans, part, coded, context, prior, seed, device)
        if journal is not None:
            journal.finish(part, coded, delta, begun)
    out = []
    for i, pl in enumerate(plans):
        n, c = pl.x.shape
        cls_blocks = np.unique(np.concatenate([[0], pl.blocks])) if not pl.sounding.all() else np.unique(pl.blocks)
        cd = hierarchy.coded_of(delta, i)
        # The sender's final reconstruction goes through the receiver's own path.
        y = _at_prior_rate(prior, seed, pl.blocks, pl.indices, n, c, pl.sr, delta=cd.delta, envelope=pl.envelope)
        codes = _choose_bands(pl.levelled, y, L, pl.band_set) if pl.band_set is not None else None
        recon = _finish(prior, y, n, pl.sr, pl.gain, codes, pl.blocks, pl.band_set or 0)
        hdr = audio_header(n, c, pl.sr, prior, seed, cls_blocks, np.searchsorted(cls_blocks, pl.blocks), pl.gain,
                           cd.fields, pl.envelope, codes, pl.band_set or 0)
        data = container.write(hdr, np.concatenate([cd.indices] + list(pl.indices)))
        kl = np.zeros((len(pl.blocks), max(1, int(pl.blocks.max()))))
        for u, row in enumerate(pl.kl):
            kl[u, :len(row)] = row
        out.append(EncodedAudio(data, recon, pl.sr, hdr, prior, audio_psnr(pl.x, recon), audio_snr(pl.x, recon),
                                kl, list(pl.budget.warnings), pl.blocks.copy()))
    return out


def _encode_either(clips: Sequence[tuple[np.ndarray, int]], kbps: float | None, kw: dict
                   ) -> Generator[EncodeEvent, None, list[EncodedAudio]]:
    """`encode_audio_batch(adapt=EITHER)`: every clip is coded without a network delta, then, where a delta can
    serve it (a shared-network prior, a sounding clip of at most one batch of units), again with its clip's
    delta alone; per clip the file whose decoded SNR against the input is higher is kept (the plain one on a
    tie). The receiver needs nothing new: either file is an ordinary kind 13/14 (10/12) file. The delta helps
    clips the prior fits badly and costs the others its blocks (docs/results.md), and only the sender can tell
    which, by trying. Up to twice the encode time; steps are reported over both passes."""
    prior, most = kw.get("prior"), kw.get("max_units")
    if prior is None and kbps is not None:
        prior = nearest("audio", 1, kbps, kw.get("prior_dirs"))   # as encode_audio_batch chooses it

    def units(x: np.ndarray, sr: int) -> int:
        x = check_audio(x, sr)
        return x.shape[1] * layout(x.shape[0], x.shape[1], int(sr), prior)[1]

    if (prior is None or prior.audio is None
            or not any(delta_triable(units(x, sr), prior, most) for x, sr in clips)):
        # no second pass can follow: one ordinary encode, its progress its own (or its error)
        return (yield from encode_audio_batch(clips, kbps, adapt=False, **kw))
    span: list[int] = []
    plain = yield from _rescaled(encode_audio_batch(clips, kbps, adapt=False, **kw), span)
    tries = [i for i, r in enumerate(plain) if r.unit_blocks.any() and delta_triable(len(r.unit_blocks), prior, most)]
    if not tries:
        return plain
    again = yield from _rescaled(encode_audio_batch([clips[i] for i in tries], kbps, adapt=True,
                                                    **dict(kw, prior=prior, journal=None)), span)
    out = list(plain)
    for i, r in zip(tries, again):
        if r.snr > plain[i].snr:
            out[i] = r
    return out


def _rescaled(gen: Generator[EncodeEvent, None, list], span: list[int]) -> Generator[EncodeEvent, None, list]:
    """The events of one of `_encode_either`'s two passes as steps of both, out of twice the first pass's
    total: the first pass (`span` empty) fills the first half and leaves its total in `span`; the second is
    scaled into the other half."""
    first = not span
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return stop.value
        if first:
            span[:] = [ev.total_steps]
            step = ev.step
        else:
            step = span[0] + round(span[0] * ev.step / max(1, ev.total_steps))
        yield dataclasses.replace(ev, step=step, total_steps=2 * span[0])


def _share(plan: _ClipPlan, here: int, delta_blocks: int) -> float:
    """A batch's share of its clip's block budget: what the clip has not spent yet (on units coded in earlier
    batches and on its network delta), in proportion to the clip's `here` sounding units in this batch among those
    not coded yet. A batch that could not hit its share exactly (the block counts are snapped to the clip's grid)
    thus passes the difference on, and the clip's file lands on its budget."""
    spent = int(plan.blocks.sum()) + delta_blocks
    left = int(plan.sounding.sum()) - int((plan.blocks > 0).sum())   # every coded sounding unit has a block
    return max(float(here), (plan.budget.total - spent) * here / max(here, left))


def _keep(plans: list[_ClipPlan], part: list[tuple[int, int]], coded: CodedBatch, context: LatentContext | None,
          prior: Prior, seed: int, device) -> None:
    """Store a coded batch in its clips' plans; later batches stitch with its coded latents."""
    for k, (i, u) in enumerate(part):
        nb = coded.blocks[k]
        plans[i].blocks[u] = nb
        plans[i].indices[u] = coded.indices[k, :nb]
        plans[i].kl[u] = coded.kl[k, :nb]
    if context is not None:
        context.record(prior, seed, part, coded, device)


def decode_audio_full(data: bytes, prior_dirs=None, device="cpu", progress=None
                      ) -> tuple[np.ndarray, int, CmbHeader, Prior]:
    """`.cmb` bytes -> ((N, C) float32 samples in [-1, 1], sample rate, header, prior); `progress(done, total)`
    as the sounding units are rendered (see _render)."""
    hdr, idx = container.read(bytes(data))
    if hdr.modality != "audio":
        raise CmbFormatError(f"this is an {hdr.modality} file, not audio")
    limits.check_header(hdr)
    n, c, sr = hdr.shape
    if sr > MAX_SAMPLE_RATE:
        raise CmbFormatError(f"corrupt .cmb header: sample rate {sr} Hz")
    prior = find_by_short_id(hdr.prior_id, prior_dirs)
    if prior.kappa != hdr.kappa or prior.modality != "audio" or prior.audio is None:
        raise PriorError(f"prior {hdr.prior_id.hex()} does not match this file (not an audio prior of this kappa)")
    if hdr.gain is None and not 1 <= hdr.n_blocks <= prior.n_params:
        raise CmbFormatError(f"corrupt .cmb header: {hdr.n_blocks} blocks for a {prior.n_params}-weight prior")
    _, k = layout(n, c, sr, prior)
    if hdr.units != c * k:
        raise CmbFormatError(f"corrupt .cmb header: {hdr.units} units for {n} samples x {c} channel(s)")
    if max(hdr.class_blocks or (hdr.n_blocks,)) > prior.n_params:
        raise CmbFormatError(f"corrupt .cmb header: more blocks than the prior's {prior.n_params} weights")
    if hdr.bands is not None and not audio_bands.usable(prior.audio.chunk):
        raise PriorError(f"prior {prior.name}'s chunks of {prior.audio.chunk} samples cannot carry band gains")
    delta = hierarchy.from_header(prior, hdr, idx, device)
    ub = np.asarray(hdr.unit_blocks, dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(ub)]) + hdr.delta_blocks
    per_unit = [idx[offs[u]:offs[u + 1]] for u in range(len(ub))]
    y = _render(prior, hdr.seed, ub, per_unit, n, c, sr, hdr.gain, device, progress, delta, hdr.envelope, hdr.bands,
                hdr.band_set)
    return y, sr, hdr, prior


def decode_audio(data: bytes, prior_dirs=None) -> tuple[np.ndarray, int]:
    """`.cmb` bytes -> ((N, C) float32 samples, sample rate)."""
    y, sr, _, _ = decode_audio_full(data, prior_dirs)
    return y, sr
