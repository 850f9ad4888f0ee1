"""Honest progress for an encode: a step total fixed before the first step, and an ETA from a per-phase cost
model. Fitting steps and coding steps cost differently (a coding step carries its share of the A* selection
of a group of blocks, about twice a fitting step on CPU), so each phase's seconds per step are measured while
it runs; before the coding phase starts, its cost is the fitting cost times the ratio measured on the last
encode on this machine and device (kept in QSettings), or 2.3 without one.

The same model gives the estimate shown before Compress is pressed: seconds per fitting step per pixel
(patch-coded images) or per unit (one-network images, audio), as measured by the last encode with this
device."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from engine.config import FitConfig
from engine.patch_codec import MAX_UNITS

from .plans import EncodePlan

DEFAULT_CODE_RATIO = 2.3   # shipped patch priors, CPU: 2.2-2.3 measured (A* selection included)


def code_groups(fit: FitConfig, n_blocks: int) -> int:
    """Groups of blocks the coding phase selects (by A*) one after another, as engine.codec.code_units."""
    return max(1, min(fit.refine_groups, n_blocks))


def refine_steps(fit: FitConfig, n_blocks: int) -> int:
    """Refinement steps between coded groups, exactly as engine.codec.code_units counts them."""
    n_groups = max(1, min(fit.refine_groups, n_blocks))
    refine = [int(round(fit.refine_first + (fit.refine_last - fit.refine_first) * g / max(1, n_groups - 1)))
              for g in range(n_groups)]
    refine[-1] = 0
    return sum(refine)


@dataclass
class Work:
    batches: int
    fit_steps: int        # per batch (the content probe included)
    code_steps: int       # per batch: refinement steps of the coding phase
    groups: int = 0       # per batch: groups of blocks selected in the coding phase (0: unknown)

    @property
    def total(self) -> int:
        return self.batches * (self.fit_steps + self.code_steps)


def coder_of(plan: EncodePlan) -> str:
    """The key of engine.config's per-coder defaults (SHORTLIST, POINTS) that this plan's encoder uses."""
    if plan.modality == "audio":
        return "audio"
    return "image" if plan.patch else "whole image"


def work_of(plan: EncodePlan, fit: FitConfig) -> Work:
    """Steps an encode of this plan takes, known before it starts (with the coder's defaults filled in, as the
    encoder fills them: `FitConfig.for_modality`)."""
    fit = fit.for_modality(coder_of(plan))
    if plan.patch:
        batches = max(1, math.ceil(plan.units / MAX_UNITS))
        # patches get different block counts; the largest count sets the groups (at least the mean)
        nb = max(plan.n_blocks, fit.refine_groups)
        return Work(batches, fit.steps, refine_steps(fit, nb), code_groups(fit, nb))
    return Work(1, fit.steps, refine_steps(fit, plan.n_blocks), code_groups(fit, plan.n_blocks))


def size_of(plan: EncodePlan) -> float:
    """What a step's cost scales with: pixels of all patches (patch images), samples or units otherwise."""
    if plan.patch:
        return float(plan.units * plan.patch * plan.patch)
    return float(max(1, plan.units))


class PhaseClock:
    """Measures seconds per step in each phase and predicts the time left.

    All the time between two events is charged to the phase of the later one, including time in which no step
    was counted: the A* selection of a group of blocks reports progress (blocks coded) without a refinement
    step, and the first coding event arrives after the first group was selected. Dropping those intervals made
    the coding phase look about half as costly as it is. `tail`: seconds of work after the last step (final
    decode, MS-SSIM, the classical codecs at the same size), from the cost model."""

    def __init__(self, work: Work, code_ratio: float = DEFAULT_CODE_RATIO, fit_cost: float | None = None,
                 tail: float = 0.0):
        self.work, self.code_ratio = work, code_ratio
        self.fit_cost = fit_cost           # seconds per fitting step, from the cost model (until measured)
        self.tail = tail
        self.rate = {"fit": None, "code": None}
        self._mark: dict[str, tuple[float, int] | None] = {"fit": None, "code": None}
        self._spent = {"fit": 0.0, "code": 0.0}
        self._steps = {"fit": 0, "code": 0}
        self._last: float | None = None    # time of the previous event
        self.fit_done = 0                  # fitting steps done over all batches
        self.code_done = 0
        self.groups_done = 0               # coding groups selected over all batches
        self._code_t = 0.0                 # seconds charged to the coding phase so far
        self._obs: list[tuple[float, int, int]] = []   # (coding seconds, steps, groups) at coding events
        self.per_group: tuple[float, float] | None = None   # (s per refinement step, s per group selection)

    def update(self, phase: str, fit_done: int, code_done: int, now: float | None = None,
               groups_done: int | None = None) -> None:
        """`groups_done`: coding groups selected so far over all batches, when known (see `_fit_groups`)."""
        now = time.perf_counter() if now is None else now
        if phase == "code" and self._last is not None:
            self._code_t += now - self._last
            if groups_done is not None:
                self.groups_done = groups_done
                self._obs.append((self._code_t, code_done, groups_done))
                self._fit_groups()
        steps = fit_done if phase == "fit" else code_done
        other = "code" if phase == "fit" else "fit"
        if self._mark[phase] is None:
            if self._last is not None and self._mark[other] is not None:
                # a phase change: its clock starts at the previous event, with the steps done by then
                self._mark[phase] = (self._last, self.fit_done if phase == "fit" else self.code_done)
            else:
                self._mark[phase] = (now, steps)   # the very first event only starts the clock (warm-up)
        self._mark[other] = None
        mark = self._mark[phase]
        if steps > mark[1]:
            self._spent[phase] += now - mark[0]
            self._steps[phase] += steps - mark[1]
            self.rate[phase] = self._spent[phase] / self._steps[phase]
            self._mark[phase] = (now, steps)
        # else: no step counted yet; the time keeps running from the mark
        self._last = now
        self.fit_done, self.code_done = fit_done, code_done

    def _fit_groups(self) -> None:
        """Coding time = a * refinement steps + b * group selections, by least squares over the coding events
        once three group counts are seen. The refinement steps per group shrink (30 to 5 in the fast preset)
        while a group's A* selection costs about the same, so a cost per step alone, measured on the first
        groups, ran 20-35 % low for the rest."""
        if len({g for _, _, g in self._obs}) < 3:
            return
        t, st, gr = (np.array(v, dtype=np.float64) for v in zip(*self._obs))
        m = np.array([[st @ st, st @ gr], [st @ gr, gr @ gr]])
        if abs(np.linalg.det(m)) < 1e-9:
            return
        a, b = np.linalg.solve(m, np.array([st @ t, gr @ t]))
        self.per_group = (float(a), float(b)) if a >= 0 and b >= 0 else None

    def seconds_per_step(self) -> tuple[float | None, float | None]:
        f = self.rate["fit"] if self.rate["fit"] is not None else self.fit_cost
        # the coding cost comes in lumps (a group's A* selection, then its refinement steps): it is trusted once
        # an eighth of the coding steps are measured, the model's ratio to the fitting cost before that
        # (a single first group made the ETA jump to twice the truth and back)
        enough = self._steps["code"] >= max(1, self.work.batches * self.work.code_steps // 8)
        c = self.rate["code"] if self.rate["code"] is not None and enough else (f * self.code_ratio if f else None)
        return f, c

    def remaining(self) -> float | None:
        f, c = self.seconds_per_step()
        if f is None or c is None:
            return None
        w = self.work
        steps_left = max(0, w.batches * w.code_steps - self.code_done)
        if self.per_group is not None and w.groups:
            a, b = self.per_group
            code_left = a * steps_left + b * max(0, w.batches * w.groups - self.groups_done)
        else:
            code_left = steps_left * c
        return max(0, w.batches * w.fit_steps - self.fit_done) * f + code_left + self.tail

    def steps_seconds(self) -> float | None:
        """All the steps of the encode at the measured (or modelled) costs."""
        f, c = self.seconds_per_step()
        if f is None or c is None:
            return None
        w = self.work
        return w.batches * (w.fit_steps * f + w.code_steps * c)

    def measured_ratio(self) -> float | None:
        f, c = self.rate["fit"], self.rate["code"]
        return c / f if f and c else None


def estimate_seconds(plan: EncodePlan, fit: FitConfig, fit_cost_per_size: float | None,
                     code_ratio: float | None, extra_per_size: float | None = None) -> float | None:
    """Whole-encode estimate from the stored cost model (None when this machine has none yet):
    the steps, plus the work outside them (`extra_per_size`: the classical codecs' curves before the first
    step, the final decode, MS-SSIM and the codecs at the same size after the last), per unit of size."""
    if not fit_cost_per_size:
        return None
    w = work_of(plan, fit)
    f = fit_cost_per_size * size_of(plan) / w.batches
    steps = w.batches * (w.fit_steps * f + w.code_steps * f * (code_ratio or DEFAULT_CODE_RATIO))
    return steps + (extra_per_size or 0.0) * size_of(plan)


def probe_batch(plan: EncodePlan, max_units: int = 16) -> int:
    """Units the probe fits at once: a patch image's real batch (all its patches, up to MAX_UNITS), since
    the cost of a patch-step is not constant in the batch size (on this 2-core CPU it doubled from 16 to 96
    patches, 7.5 -> 15.7 ms); for other plans up to `max_units` units."""
    if plan.patch:
        return max(1, min(plan.units, MAX_UNITS))
    return max(1, min(max_units, plan.units))


def probe_fit_cost(plan: EncodePlan, device: str = "cpu", steps: int = 5, max_units: int = 16,
                   stop=None, budget_s: float = 3.0, token=None) -> float | None:
    """A short probe of this machine: seconds per fitting step per unit of `size_of`, from real β-ELBO steps of
    the plan's prior on the encode's own batch of units (`probe_batch`) of random data. One warm-up step is
    not counted; then up to `steps` steps, fewer once `budget_s` has passed (two at least), and their median
    is taken, so that a moment of load on a shared machine does not set the estimate. None when `stop()`
    becomes true or `token` (engine.cancel) is cancelled: an encode began, which measures the costs itself."""
    import torch

    from engine import cancel, latent, rng, siren
    from engine.config import POINTS
    from engine.fitting import Objective, new_state, point_subsets

    prior = plan.prior
    dev = torch.device(device)
    b = probe_batch(plan, max_units)
    if plan.patch:
        n, size = plan.patch * plan.patch, b * plan.patch * plan.patch
        coords = siren.grid_coords((plan.patch, plan.patch), device=dev)
    else:
        shape = prior.item_shape or (32, 32)
        n = int(np.prod(shape[:-1])) if len(shape) > 1 else int(shape[0])
        size = b
        coords = (siren.grid_coords(tuple(shape[:2]), device=dev) if prior.inr.in_dim == 2
                  else torch.linspace(-1, 1, n, device=dev)[:, None])
    times = []
    try:
        with cancel.scope(token):
            emb = siren.fourier_embed(coords, prior.inr)
            mu_p, ls_p = prior.tensors(dev)
            target = torch.rand(b, emb.shape[0], prior.inr.out_dim, device=dev) - 0.5
            canvases = latent.uniform_canvases(b, 1, 1, dev) if prior.latent is not None else None
            field = prior.field(emb, dev, canvases)
            # steps over the share of the points the encoder's steps measure (engine.config.POINTS)
            obj = Objective(field, target, mu_p, ls_p, points=point_subsets(field, POINTS[coder_of(plan)], 0))
            st = new_state(mu_p.expand(b, -1), (ls_p - 2.0).expand(b, -1),
                           torch.full((b, 1), prior.beta, device=dev), 2e-3)
            gens = rng.unit_noise(list(range(b)), dev)
            t_start = time.perf_counter()
            for k in range(steps + 1):
                if stop is not None and stop():
                    return None
                t0 = time.perf_counter()
                obj.step(st, gens)
                if k:                                  # the first step is a warm-up
                    times.append(time.perf_counter() - t0)
                if len(times) >= 2 and time.perf_counter() - t_start > budget_s:
                    break
    except cancel.Cancelled:
        cancel.cleanup()
        return None
    return float(np.median(times)) / size
