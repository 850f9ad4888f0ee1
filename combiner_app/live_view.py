"""The live coding view: bit budget, per-block KL bars with the κ line, PSNR over steps, time/ETA and the
reconstruction preview (for audio, which has no preview, the original waveform instead; for a patch-coded
image the image building up patch by patch beside a map of the KL of every patch). Events are recorded as they
arrive and drawn at most ~20 times a second, so a fast encoder can never flood the GUI thread.

Progress is honest: the step total is fixed before the first step (`progress.work_of`), and the ETA comes from
a per-phase cost model measured as the encode runs (`progress.PhaseClock`). The live PSNR is that of the
posterior mean (what the fit is aiming at); the decoded file's PSNR, usually a little lower because coded
weights are samples, is shown when the encode finishes.

Patch-coded images: patches hold different block counts, so the bars show each block's KL averaged over the
patches that have that block; during the first half of an adaptive fit (the content probe) the engine reports
one KL per patch instead, and only the map is drawn."""
from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QStackedWidget, QVBoxLayout, QWidget

from engine.codec import EncodeEvent
from engine.config import FitConfig

from .audio_views import ORIG_PEN, mono, peak_envelope
from .image_panels import show_rgb
from .plans import AudioClip, EncodePlan
from .progress import DEFAULT_CODE_RATIO, PhaseClock, Work, code_groups, coder_of, refine_steps, size_of, work_of

LIVE_PSNR_NOTE = ("live PSNR = posterior mean (an estimate while fitting); the decoded file's PSNR, measured on "
                  "the real file, is shown when the encode finishes")

CODED = pg.mkBrush(70, 130, 200)
OPEN = pg.mkBrush(200, 200, 200)


def _fmt_time(s: float) -> str:
    s = max(0.0, s)
    return f"{int(s // 60)}:{s % 60:04.1f}" if s >= 60 else f"{s:.1f} s"


class LiveView(QWidget):
    REDRAW_MS = 50

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plan: EncodePlan | None = None
        self.t0 = 0.0
        self.steps: list[int] = []
        self.psnrs: list[float] = []
        self.last: EncodeEvent | None = None
        self.units_before = 0      # units fully coded in earlier batches (a long clip is coded in batches)
        self._dirty = False
        self.fit: FitConfig | None = None
        self.code_ratio, self.fit_cost_per_size = DEFAULT_CODE_RATIO, None
        self.work: Work | None = None
        self.clock: PhaseClock | None = None
        self.batch = 0                 # batch of units being coded (patch images over MAX_UNITS patches)
        self._anchor = 0               # engine step count at the start of this batch's current segment
        self._probing = False
        self.canvas: np.ndarray | None = None      # patch images: the reconstruction so far, padded to patches
        self._canvas_dirty = False
        self.image_shape: tuple[int, int] | None = None
        self.finished_text = ""

        self.phase_label = QLabel("Waiting for an encode")
        self.phase_label.setObjectName("phaseLabel")
        self.time_label = QLabel("")
        self.time_label.setObjectName("timeLabel")
        self.bits_bar = QProgressBar()
        self.bits_bar.setObjectName("bitsBar")
        self.bits_bar.setTextVisible(True)
        self.step_bar = QProgressBar()
        self.step_bar.setObjectName("stepBar")

        self.kl_plot = pg.PlotWidget(title="KL per block (bits)")
        self.kl_plot.setLabel("bottom", "block")
        self.kl_plot.setLabel("left", "KL", units="bits")
        self.kl_plot.setMouseEnabled(x=False, y=False)
        self.kl_plot.hideButtons()
        self.bars = pg.BarGraphItem(x=np.zeros(0), height=np.zeros(0), width=0.8, brush=OPEN)
        self.kl_plot.addItem(self.bars)
        self.kappa_line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen((220, 60, 40), width=2),
                                          label="κ", labelOpts={"position": 0.97, "color": (220, 60, 40)})
        self.kl_plot.addItem(self.kappa_line)

        self.psnr_plot = pg.PlotWidget(title="PSNR of the posterior mean (live estimate)")
        self.psnr_plot.setLabel("bottom", "step")
        self.psnr_plot.setLabel("left", "PSNR", units="dB")
        self.psnr_plot.hideButtons()
        self.psnr_curve = self.psnr_plot.plot([], [], pen=pg.mkPen((40, 160, 90), width=2))
        self.code_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine),
                                         label="coding starts", labelOpts={"position": 0.1})
        self.code_line.hide()
        self.psnr_plot.addItem(self.code_line)

        self.preview = pg.GraphicsLayoutWidget()
        self.preview.addLabel("Reconstruction so far", row=0, col=0)
        self.preview_box = self.preview.addViewBox(row=1, col=0, invertY=True, lockAspect=True, enableMenu=False)
        self.preview_item = pg.ImageItem()
        self.preview_box.addItem(self.preview_item)
        self.preview_box.setMouseEnabled(False, False)
        self.wave_plot = pg.PlotWidget(title="Original clip")
        self.wave_plot.setObjectName("liveWaveform")
        self.wave_plot.setLabel("bottom", "time", units="s")
        self.wave_plot.setLabel("left", "amplitude")
        self.wave_plot.getAxis("left").enableAutoSIPrefix(False)
        self.wave_plot.hideButtons()
        self.wave_curve = self.wave_plot.plot([], [], pen=ORIG_PEN)
        self.patch_map = pg.GraphicsLayoutWidget()
        self.patch_map.setObjectName("livePatchMap")
        self.patch_map_label = self.patch_map.addLabel("KL per patch (bits)", row=0, col=0)
        self.patch_map_box = self.patch_map.addViewBox(row=1, col=0, invertY=True, lockAspect=True,
                                                       enableMenu=False)
        self.patch_map_item = pg.ImageItem()
        self.patch_map_item.setColorMap(pg.colormap.get("viridis"))
        self.patch_map_box.addItem(self.patch_map_item)
        self.patch_map_box.setMouseEnabled(False, False)
        self.patch_kl: np.ndarray | None = None    # (units,) latest KL of every patch, bits
        # patch-coded images: the reconstruction building up, in the same layout as the map
        self.patch_preview_label = self.patch_map.addLabel("Reconstruction so far (posterior mean)", row=0, col=1)
        self.patch_preview_box = self.patch_map.addViewBox(row=1, col=1, invertY=True, lockAspect=True,
                                                           enableMenu=False)
        self.patch_preview_item = pg.ImageItem()
        self.patch_preview_box.addItem(self.patch_preview_item)
        self.patch_preview_box.setMouseEnabled(False, False)
        self.preview_stack = QStackedWidget()
        self.preview_stack.addWidget(self.preview)
        self.preview_stack.addWidget(self.wave_plot)
        self.preview_stack.addWidget(self.patch_map)
        self.psnr_note = QLabel(LIVE_PSNR_NOTE)
        self.psnr_note.setObjectName("psnrNote")
        self.psnr_note.setWordWrap(True)
        self.psnr_note.setStyleSheet("color: #667")

        grid = QGridLayout()
        grid.addWidget(self.kl_plot, 0, 0)
        grid.addWidget(self.preview_stack, 0, 1)
        grid.addWidget(self.psnr_plot, 1, 0, 1, 2)
        grid.addWidget(self.psnr_note, 2, 0, 1, 2)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        lay = QVBoxLayout(self)
        lay.addWidget(self.phase_label)
        lay.addWidget(QLabel("Bits spent (header + coded blocks) against the target"))
        lay.addWidget(self.bits_bar)
        lay.addWidget(self.step_bar)
        lay.addWidget(self.time_label)
        lay.addLayout(grid, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(self.REDRAW_MS)
        self.timer.timeout.connect(self.redraw)
        self._after_paint = None
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.timeout.connect(lambda: self._run_after_paint())

    @staticmethod
    def _title(plot: pg.PlotWidget, text: str) -> None:
        """Set a plot's title only when it changes: pyqtgraph lays the whole plot out again (label, view box,
        both axes redrawn) on every setTitle, which the patch redraws used to do 20 times a second."""
        if getattr(plot, "_title_text", None) != text:
            plot._title_text = text
            plot.setTitle(text)

    # -- feeding -------------------------------------------------------------------------------------
    def start(self, original: np.ndarray | AudioClip | None = None) -> None:
        """A new encode begins (its plan arrives with `set_plan`)."""
        self.plan, self.t0, self.last = None, time.perf_counter(), None
        self.steps, self.psnrs, self.units_before = [], [], 0
        self.patch_kl = None
        self.work, self.clock, self.batch, self._anchor, self._probing = None, None, 0, 0, False
        self._global = False
        self.canvas, self._canvas_dirty, self.finished_text = None, False, ""
        self.image_shape = None if original is None or isinstance(original, AudioClip) else original.shape[:2]
        show_rgb(self.patch_preview_item, None)
        self._title(self.kl_plot, "KL per block (bits)")
        self._title(self.psnr_plot, "PSNR of the posterior mean")
        if isinstance(original, AudioClip):
            self._start_audio(original)
            return
        self._reset_widgets()
        self.preview_stack.setCurrentWidget(self.preview)
        blank = None if original is None else np.zeros((*original.shape[:2], 3 if original.shape[2] >= 3 else 1),
                                                       np.uint8)
        show_rgb(self.preview_item, blank)
        if original is not None:
            self.preview_box.autoRange(padding=0)
        self.timer.start()

    def _start_audio(self, clip: AudioClip) -> None:
        self._reset_widgets()
        self.preview_stack.setCurrentWidget(self.wave_plot)
        t, y = peak_envelope(mono(clip.samples), clip.sample_rate)
        self.wave_curve.setData(t, y)
        self.wave_plot.setXRange(0, clip.seconds, padding=0.01)
        self.wave_plot.setYRange(-1, 1, padding=0.02)
        self.timer.start()

    def _reset_widgets(self) -> None:
        self.code_line.hide()
        self.psnr_curve.setData([], [])
        self.phase_label.setText("Starting…")
        self.time_label.setText("")
        self.step_bar.setValue(0)
        self.bits_bar.setValue(0)
        self.bars.setOpts(x=np.zeros(0), height=np.zeros(0), brushes=None)

    def set_fit(self, fit: FitConfig, device: str = "cpu", code_ratio: float | None = None,
                fit_cost_per_size: float | None = None, tail_per_size: float | None = None) -> None:
        """The effort preset of the encode about to start, and this machine's stored cost model
        (`tail_per_size`: seconds per unit of size of the work after the last step)."""
        self.fit = fit
        self.code_ratio = code_ratio or DEFAULT_CODE_RATIO
        self.fit_cost_per_size = fit_cost_per_size
        self.tail_per_size = tail_per_size

    def _start_clock(self, work: Work) -> None:
        self.work = work
        cost, tail = None, 0.0
        if self.fit_cost_per_size and self.plan is not None:
            cost = self.fit_cost_per_size * size_of(self.plan) / work.batches
        if getattr(self, "tail_per_size", None) and self.plan is not None:
            tail = self.tail_per_size * size_of(self.plan)
        self.clock = PhaseClock(work, self.code_ratio, cost, tail)

    @staticmethod
    def _plan_key(plan: EncodePlan) -> tuple:
        return (plan.modality, plan.prior.id, plan.units, plan.n_blocks, plan.kappa, plan.patch, tuple(plan.grid),
                plan.total_blocks, plan.overhead_bits, plan.target_bits)

    def set_plan(self, plan: EncodePlan) -> None:
        """Lay the view out for this plan. The window sets the plan it already knows before the Live tab is
        shown, so the first paint is the only one; the worker's own plan then changes nothing unless it
        differs (it is the same computation)."""
        if self.plan is not None and self._plan_key(self.plan) == self._plan_key(plan):
            self.plan = plan
            return
        self.plan = plan
        if plan.patch and self.fit is not None:
            self._start_clock(work_of(plan, self.fit))   # fixed before the first step
            rows, cols = plan.grid
            self.canvas = np.full((rows * plan.patch, cols * plan.patch, 3), 40, np.uint8)
            self._canvas_dirty = True
        self.kappa_line.setValue(plan.kappa)
        self.bars.setOpts(x=np.arange(plan.n_blocks), height=np.zeros(plan.n_blocks), brush=OPEN, brushes=None)
        self.kl_plot.setYRange(0, plan.kappa * 1.6)
        self.kl_plot.setXRange(-1, plan.n_blocks)
        if plan.patch:
            rows, cols = plan.grid
            self._title(self.kl_plot, f"KL per block (bits, mean over {plan.units} patches)")
            self._title(self.psnr_plot, "PSNR of the posterior mean (mean over patches)")
            self.patch_kl = np.zeros(plan.units)
            self.patch_map_label.setText(f"KL per patch (bits), {cols}×{rows} patches of {plan.patch}×{plan.patch}")
            self.patch_map_item.setImage(self.patch_kl.reshape(rows, cols), autoLevels=False, levels=(0, 1))
            self.patch_map_box.autoRange(padding=0)
            self.preview_stack.setCurrentWidget(self.patch_map)
        elif plan.units > 1:
            self._title(self.kl_plot, f"KL per block (bits, mean over {plan.units} units)")
            # the engine averages per-unit PSNRs, so this reads higher than the final whole-clip PSNR
            self._title(self.psnr_plot, "PSNR of the posterior mean (mean over units)")
        self._set_bits(0)

    def add_event(self, ev: EncodeEvent) -> None:
        if self.code_line.isVisible() is False and ev.phase == "code" and self.steps:
            self.code_line.setValue(self.steps[-1])
            self.code_line.show()
        prev = self.last
        new_batch = prev is not None and prev.phase == "code" and ev.phase == "fit"
        if new_batch and prev.kl_bits is not None:
            self.units_before += np.asarray(prev.kl_bits).shape[0]   # the next batch of units began
        self._track(ev, prev, new_batch)
        if ev.preview is not None and self.canvas is not None and self.plan is not None and self.plan.patch:
            self._paste(ev.preview)
        self.steps.append(ev.step)
        psnr = ev.psnr
        if not np.isfinite(psnr) and self.psnrs:   # the PSNR is measured every few events: hold the last one
            psnr = self.psnrs[-1]
        self.psnrs.append(psnr)
        if ev.preview is None and self.last is not None:
            ev.preview = self.last.preview   # keep showing the latest preview
        self.last = ev
        self._dirty = True

    def _track(self, ev: EncodeEvent, prev: EncodeEvent | None, new_batch: bool) -> None:
        """Engine step counts -> (fitting steps, coding steps) done over all batches, fed to the clock."""
        if self.fit is None:
            return
        # the steps the encoder runs: the preset with its coder's defaults (engine FitConfig.for_modality)
        fit = self.fit.for_modality(coder_of(self.plan)) if self.plan is not None else self.fit
        if self.clock is None:   # not a patch image: the engine's own total is fixed across batches
            per = fit.steps + refine_steps(fit, ev.n_blocks)
            self._start_clock(Work(max(1, int(round(ev.total_steps / per))), fit.steps,
                                   refine_steps(fit, ev.n_blocks), code_groups(fit, ev.n_blocks)))
            self._anchor = 0 if ev.total_steps >= per * self.work.batches else ev.step - 1
            self._global = True
        probing = ev.phase == "fit" and ev.n_blocks == 1 and self.plan is not None and self.plan.patch
        if getattr(self, "_global", False):
            within = ev.step
            self.batch = 0
        else:
            if prev is None or new_batch:
                if new_batch:
                    self.batch += 1
                self._anchor = ev.step - 1
            elif self._probing and not probing and ev.phase == "fit":   # the probe ended, the fit goes on
                self._anchor = ev.step - (fit.steps // 2 + 1)
            within = ev.step - self._anchor
        self._probing = probing
        w = self.work
        if getattr(self, "_global", False):
            per = w.fit_steps + w.code_steps
            b, within = divmod(max(0, within), per)
            fit_done = b * w.fit_steps + min(within, w.fit_steps)
            code_done = b * w.code_steps + max(0, within - w.fit_steps)
        else:
            b = self.batch
            fit_done = self.batch * w.fit_steps + min(within, w.fit_steps)
            code_done = self.batch * w.code_steps + (max(0, within - w.fit_steps) if ev.phase == "code" else 0)
        groups = None
        if ev.phase == "code" and w.groups and ev.n_blocks:   # groups selected: blocks coded, in group units
            groups = min(b, w.batches - 1) * w.groups + min(w.groups, int(round(ev.blocks_done * w.groups
                                                                                 / ev.n_blocks)))
        self.clock.update(ev.phase, min(fit_done, w.batches * w.fit_steps), min(code_done, w.batches * w.code_steps),
                          groups_done=groups)

    def _paste(self, patches: np.ndarray) -> None:
        """(b, p, p, 3) posterior-mean patches of the current batch -> the canvas (only those patches change)."""
        p = self.plan
        rows, cols = p.grid
        lo = min(self.units_before, p.units)
        hi = min(lo + patches.shape[0], p.units)
        for k, u in enumerate(range(lo, hi)):
            r, c = divmod(u, cols)
            self.canvas[r * p.patch:(r + 1) * p.patch, c * p.patch:(c + 1) * p.patch] = patches[k]
        self._canvas_dirty = True

    def progress(self) -> tuple[int, int]:
        """(steps done, fixed total) over the whole encode."""
        if self.clock is None:
            return (self.last.step, self.last.total_steps) if self.last else (0, 1)
        return self.clock.fit_done + self.clock.code_done, self.work.total

    def finish(self, result) -> None:
        """The encode's result arrived: say so, with the decoded file's PSNR beside the live estimate."""
        enc = result.encoded
        live = self.psnrs[-1] if self.psnrs else float("nan")
        unit = f"{enc.kbps:.2f} kbps" if hasattr(enc, "kbps") else f"{enc.bpp:.3f} bpp"
        self.finished_text = (f"Finished in {_fmt_time(result.seconds)}: {len(enc.data)} bytes ({unit}); decoded "
                              f"file PSNR {enc.psnr:.2f} dB" + (f" (live posterior-mean estimate {live:.2f} dB)"
                                                                 if np.isfinite(live) else ""))
        if self.canvas is not None and self.image_shape is not None and enc.reconstruction.ndim == 3:
            show_rgb(self.patch_preview_item, enc.reconstruction)
            self.patch_preview_label.setText("Decoded result")
            self._canvas_dirty = False
        self._dirty = True

    def stop(self) -> None:
        self._dirty = True
        self.redraw()
        self.timer.stop()

    # -- first paint ---------------------------------------------------------------------------------
    def after_paint(self, callback, fallback_ms: int = 600) -> None:
        """Call `callback` once, when this view has been painted and then not repainted for a redraw interval
        (the first show of the tab takes two passes: its layout settles after the first paint), or after
        `fallback_ms` if it is not painted at all (a hidden window). The window starts the encode's worker this
        way: the Live tab's first paint (every plot, axis and image laid out at once, the heaviest paint of the
        app) then runs alone instead of sharing the CPU and the GIL with the encode's first steps."""
        self._after_paint = callback
        if not self.isVisible():
            fallback_ms = 0
        QTimer.singleShot(fallback_ms, lambda: self._run_after_paint(callback))

    def _run_after_paint(self, only=None) -> None:
        cb = getattr(self, "_after_paint", None)
        if cb is None or (only is not None and cb is not only):   # done already, or an older fallback
            return
        self._after_paint = None
        self._settle.stop()
        cb()

    def paintEvent(self, e) -> None:
        super().paintEvent(e)
        if getattr(self, "_after_paint", None) is not None:
            self._settle.start(self.REDRAW_MS)    # (re)started by each pass: fires once the paints settle

    # -- drawing -------------------------------------------------------------------------------------
    def _set_bits(self, blocks_done: int, units_in_batch: int = 0, n_blocks: int = 0) -> None:
        p = self.plan
        units_in_batch = units_in_batch or p.units
        if p.patch or p.modality == "audio":   # units differ in block count; each batch codes the same share
            frac = blocks_done / max(1, n_blocks or p.n_blocks)
            coded = int(round(p.total_blocks * (self.units_before + frac * units_in_batch) / p.units))
        else:
            coded = self.units_before * p.n_blocks + blocks_done * units_in_batch
        spent = p.overhead_bits + coded * p.kappa
        target = int(round(p.target_bits))
        self.bits_bar.setMaximum(max(target, p.file_bits, 1))
        self.bits_bar.setValue(min(spent, self.bits_bar.maximum()))
        if p.patch:
            self.bits_bar.setFormat(f"{spent} / {target} bits  ({coded}/{p.total_blocks} blocks over "
                                    f"{p.units} patches)")
        elif p.modality == "audio":
            self.bits_bar.setFormat(f"{spent / 1000:.1f} / {target / 1000:.1f} kbit  "
                                    f"({coded}/{p.total_blocks} blocks over {p.units} units)")
        else:
            self.bits_bar.setFormat(f"{spent} / {target} bits  ({blocks_done}/{p.n_blocks} blocks)")

    def redraw(self) -> None:
        ev = self.last
        elapsed = time.perf_counter() - self.t0
        if ev is None:
            self.time_label.setText(f"Elapsed {_fmt_time(elapsed)}")
            return
        if not self._dirty:
            return
        self._dirty = False
        done, total = self.progress()
        if self.finished_text:
            done = total
        eta = self.clock.remaining() if self.clock is not None else None
        psnr = self.psnrs[-1] if self.psnrs else ev.psnr
        self.time_label.setText(f"Elapsed {_fmt_time(elapsed)}   "
                                + ("" if self.finished_text else
                                   f"About {_fmt_time(eta)} left" if eta is not None else "Time left: measuring…")
                                + (f"   live PSNR {psnr:.2f} dB (posterior mean)" if np.isfinite(psnr) else ""))
        if self.finished_text:
            self.phase_label.setText(self.finished_text)
        else:
            self.phase_label.setText(("Fitting the posterior" if ev.phase == "fit" else "Coding blocks") +
                                     f" — step {done}/{total}")
        self.step_bar.setMaximum(max(1, total))
        self.step_bar.setValue(min(done, total))
        self.step_bar.setFormat("step %v / %m")
        kl_all = None if ev.kl_bits is None else np.asarray(ev.kl_bits, dtype=np.float64)
        if kl_all is not None and kl_all.ndim != 2:
            kl_all = kl_all.reshape(kl_all.shape[0], -1) if kl_all.ndim else None
        if self.plan is not None:
            self._set_bits(ev.blocks_done, 0 if kl_all is None else kl_all.shape[0], ev.n_blocks)
        if kl_all is not None and self.plan is not None and self.plan.patch:
            self._draw_patches(ev, kl_all)
        elif kl_all is not None:
            # one image: its own KL; audio: the mean over the batch's units that have the block (a unit with
            # fewer blocks reports exactly 0 for the blocks it lacks)
            kl = kl_all.sum(axis=0) / np.maximum((kl_all > 0).sum(axis=0), 1)
            brushes = [CODED if i < ev.blocks_done else OPEN for i in range(len(kl))]
            self.bars.setOpts(x=np.arange(len(kl)), height=kl, brushes=brushes)
        self.psnr_curve.setData(np.asarray(self.steps, float), np.asarray(self.psnrs, float))
        self.psnr_plot.setXRange(0, ev.total_steps, padding=0.02)
        if self._canvas_dirty and self.canvas is not None and self.image_shape is not None:
            h, w = self.image_shape
            first = self.patch_preview_item.image is None
            show_rgb(self.patch_preview_item, self.canvas[:h, :w])
            self._canvas_dirty = False
            if first:
                self.patch_preview_box.autoRange(padding=0)
        if ev.preview is not None and self.preview_stack.currentWidget() is self.preview:
            first = self.preview_item.image is None
            show_rgb(self.preview_item, ev.preview[0])
            if first:
                self.preview_box.autoRange(padding=0)

    def _draw_patches(self, ev: EncodeEvent, kl_all: np.ndarray) -> None:
        """Patch-coded image: (patches of this batch, blocks) KL -> the patch map and the per-block bars."""
        p = self.plan
        n = kl_all.shape[0]
        lo = min(self.units_before, p.units)
        hi = min(lo + n, p.units)
        self.patch_kl[lo:hi] = kl_all[:hi - lo].sum(axis=1)
        rows, cols = p.grid
        top = max(1.0, float(np.nanmax(self.patch_kl)))
        self.patch_map_item.setImage(self.patch_kl.reshape(rows, cols), autoLevels=False, levels=(0, top))
        probing = ev.phase == "fit" and kl_all.shape[1] == 1 and ev.n_blocks == 1 and p.n_blocks > 1
        if probing:   # one KL per patch, not per block: only the map can show it
            self._title(self.kl_plot, "Probing the patches' content (KL per patch: see the map)")
            done, total = self.progress()
            self.phase_label.setText(f"Probing the content of every patch to share out the blocks — step "
                                     f"{done}/{total}")
            self.bars.setOpts(x=np.zeros(0), height=np.zeros(0), brushes=None)
            return
        self._title(self.kl_plot, f"KL per block (bits, mean over {p.units} patches)")
        have = kl_all > 0    # a patch with fewer blocks reports exactly 0 for the blocks it lacks
        kl = kl_all.sum(axis=0) / np.maximum(have.sum(axis=0), 1)
        brushes = [CODED if i < ev.blocks_done else OPEN for i in range(len(kl))]
        self.bars.setOpts(x=np.arange(len(kl)), height=kl, brushes=brushes)
        self.kl_plot.setXRange(-1, len(kl))
