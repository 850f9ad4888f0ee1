"""“Explore rates” for audio: encode the opened clip at a ladder of kbps in the background, then flip among the
cached results with a slider. Each position shows the COMBINER spectrogram beside MP3 and Opus at the same
file size (made by the worker thread with `engine.reference_codecs.at_size`), a table of kbps / bytes /
PSNR / SNR, and every point on a small rate–distortion plot."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QWidget

from engine.audio_codec import audio_psnr, audio_snr
from engine.metrics import fmt

from .audio_views import mono, stft_db
from .plans import AudioClip, distinct_rates, plan_audio
from .ladder import LadderMixin
from .worker import EncodeResult, EncodeRunner

AUDIO_LADDER = (5.0, 10.0, 20.0, 40.0)
CODECS = ("COMBINER", "MP3", "Opus")
COLORS = {"COMBINER": (40, 110, 220), "MP3": (200, 80, 40), "Opus": (40, 160, 90)}
REF_NAMES = {"mp3": "MP3", "opus": "Opus"}
DB_RANGE = 100.0
MAX_FRAMES = 800     # spectrogram columns per panel: three panels side by side need less detail


def feasible_kbps(clip: AudioClip, ladder=AUDIO_LADDER, prior_dirs=None) -> list[float]:
    """Rates of the ladder the installed audio priors can code, each giving a distinct file. A rate below the
    smallest file of its prior (one block per unit) is dropped, unless no rate is above it."""
    return distinct_rates(ladder, lambda r: plan_audio(clip, r, prior_dirs))


@dataclass
class Point:
    """One codec at one ladder position, ready to draw."""

    codec: str
    nbytes: int
    kbps: float
    psnr: float
    snr: float
    spectrum: np.ndarray      # (freqs, frames) dB
    note: str = ""
    stoi: float | None = None
    pesq: float | None = None


class AudioRateExplorer(LadderMixin, QWidget):
    busy_changed = Signal(bool)
    ladder_done = Signal(bool)          # cancelled?
    result_added = Signal(int)          # number of cached results
    shown = Signal(int)                 # slider position shown
    failed = Signal(str)

    RATE_UNIT = "kbps"

    def has_signal(self) -> bool:
        return self.clip is not None

    def __init__(self, settings: Callable[[], tuple], prior_dirs=None, ladder=AUDIO_LADDER, parent=None):
        """`settings()` -> (FitConfig, device, audio's delta choice) at the moment Explore is pressed."""
        super().__init__(parent)
        self.settings, self.prior_dirs, self.ladder = settings, prior_dirs, tuple(ladder)
        self.clip: AudioClip | None = None
        self.rates: list[float] = []
        self.results: list[EncodeResult] = []
        self.points: list[list[Point]] = []     # parallel to results: COMBINER first, then references
        self.runner = EncodeRunner(self)
        self.runner.encoded.connect(self._on_encoded)
        self.runner.rate_failed.connect(self._on_rate_failed)
        self.runner.failed.connect(self.failed)
        self.runner.done.connect(self._on_done)

        self._build_controls("audio", "Open an audio file, then encode it at a ladder of rates.")

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("audioExploreGraphics")
        self.cmap = pg.colormap.get("magma")
        self.plots: dict[str, pg.PlotItem] = {}
        self.images: dict[str, pg.ImageItem] = {}
        for row, name in enumerate(CODECS):   # stacked: a spectrogram wants a long time axis
            p = self.graphics.addPlot(row=row, col=0, title=name)
            img = pg.ImageItem()
            img.setColorMap(self.cmap)
            p.addItem(img)
            p.setLabel("left", "frequency", units="Hz")
            if row == len(CODECS) - 1:
                p.setLabel("bottom", "time", units="s")
            if row:
                p.setXLink(self.plots["COMBINER"])
                p.setYLink(self.plots["COMBINER"])
            p.setMouseEnabled(x=True, y=False)
            self.plots[name], self.images[name] = p, img
        self.colorbar = pg.ColorBarItem(values=(-DB_RANGE, 0), colorMap=self.cmap, label="level (dB FS)",
                                        interactive=False, width=12)
        self.colorbar.setImageItem(list(self.images.values()))
        self.graphics.addItem(self.colorbar, row=0, col=1, rowspan=len(CODECS))
        self.rd = pg.PlotWidget(title="Rate–distortion (this clip)")
        self.rd.setObjectName("audioRdPlot")
        self.rd.setLabel("bottom", "rate (kbps)")
        self.rd.setLabel("left", "PSNR (dB)")
        self.rd.addLegend(offset=(5, 5), labelTextSize="8pt")   # top left: low rate, high PSNR is empty
        self.rd.showGrid(x=True, y=True, alpha=0.2)
        self.rd.hideButtons()
        self.rd_curves = {}
        for c in CODECS:
            style = Qt.PenStyle.SolidLine if c == "COMBINER" else Qt.PenStyle.DashLine
            self.rd_curves[c] = self.rd.plot([], [], pen=pg.mkPen(COLORS[c], width=2 if c == "COMBINER" else 1,
                                                                  style=style),
                                             symbol="o" if c == "COMBINER" else "s", symbolSize=7,
                                             symbolBrush=COLORS[c], name=c)
        self.rd_current = pg.ScatterPlotItem(size=16, symbol="o", brush=None,   # light ring: dark background
                                             pen=pg.mkPen((255, 255, 255), width=2))
        self.rd.addItem(self.rd_current)

        self._lay_out(self.graphics, self.rd, rd_stretch=2)

    # -- state ----------------------------------------------------------------------------------------
    def set_clip(self, clip: AudioClip | None) -> None:
        self.runner.cancel()
        self.clip = clip
        self.results, self.points = [], []
        self._reset_ladder()
        for img in self.images.values():
            img.clear()
        for c in self.rd_curves.values():
            c.setData([], [])
        self.rd_current.setData([])
        self.explore_button.setEnabled(clip is not None and not self.runner.is_running())
        self.status.setText("Press Explore rates to encode this clip at a ladder of rates."
                            if clip is not None else "Open an audio file first.")

    def explore(self) -> None:
        if self.clip is None or self.runner.is_running():
            return
        rates = feasible_kbps(self.clip, self.ladder, self.prior_dirs)
        if not rates:
            self.failed.emit("No installed audio prior can code this clip at any rate of the ladder "
                             f"({', '.join(f'{r:g}' for r in self.ladder)} kbps).")
            return
        self.set_clip(self.clip)
        self._start(self.clip, rates, f"Encoding at {', '.join(f'{r:g}' for r in rates)} kbps (with MP3 and "
                    "Opus at each file size)…")

    def _points(self, res: EncodeResult) -> list[Point]:
        """Measure and transform everything a flip shows once, when the result arrives."""
        clip, enc = self.clip, res.encoded
        hop = max(128, -(-clip.n_samples // MAX_FRAMES))

        def spec(y: np.ndarray) -> np.ndarray:
            return stft_db(mono(y), clip.sample_rate, 512, hop)[0]

        pts = [Point("COMBINER", len(enc.data), enc.kbps, enc.psnr, enc.snr, spec(enc.reconstruction),
                     f"{enc.header.units} units, {enc.header.n_indices} blocks", res.metrics.get("stoi"),
                     res.metrics.get("pesq"))]
        for ref in res.references:
            note = f"{'average bitrate, ' if ref.mode == 'AVERAGE' else ''}level {ref.level:.2f}"
            if ref.nbytes > 1.25 * len(enc.data):   # e.g. Ogg/Opus has a floor of about a kilobyte
                note += " (its smallest file)"
            pts.append(Point(REF_NAMES.get(ref.codec, ref.codec), ref.nbytes, ref.kbps(clip.seconds),
                             audio_psnr(clip.samples, ref.decoded), audio_snr(clip.samples, ref.decoded),
                             spec(ref.decoded), note, res.ref_metrics.get(ref.codec, {}).get("stoi"),
                             res.ref_metrics.get(ref.codec, {}).get("pesq")))
        return pts

    def _on_encoded(self, i: int, res: EncodeResult) -> None:
        pts = self._points(res)
        self.results.append(res)
        self.points.append(pts)
        order = np.argsort([r.encoded.kbps for r in self.results], kind="stable")
        self.results = [self.results[k] for k in order]
        self.points = [self.points[k] for k in order]
        self.status.setText(f"{len(self.results)} of {len(self.rates)} rates encoded…")
        self._draw_rd()
        self._slide_to(res)

    # -- showing --------------------------------------------------------------------------------------
    def _draw_rd(self) -> None:
        for c in CODECS:
            pts = sorted((p.kbps, p.psnr) for row in self.points for p in row if p.codec == c)
            xs, ys = (list(v) for v in zip(*pts)) if pts else ([], [])
            self.rd_curves[c].setData(xs, ys)

    def show_position(self, pos: int) -> None:
        if not 0 <= pos < len(self.results) or self.clip is None:
            return
        pts = self.points[pos]
        self._shown_result = self.results[pos]
        duration, nyquist = self.clip.seconds, self.clip.sample_rate / 2.0
        top = np.ceil(max(float(p.spectrum.max()) for p in pts) / 10) * 10
        levels = (top - DB_RANGE, top)
        self.rate_label.setText(f"{pts[0].kbps:.2f} kbps")
        for name in CODECS:
            self.images[name].clear()
            self.plots[name].setTitle(name)
        for p in pts:
            img = self.images[p.codec]
            img.setImage(p.spectrum, autoLevels=False, levels=levels)
            img.setRect(QRectF(0.0, 0.0, duration, nyquist))
            self.plots[p.codec].setTitle(f"{p.codec} — {p.kbps:.2f} kbps, PSNR {p.psnr:.1f} dB")
        self.colorbar.setLevels(levels)
        self.plots["COMBINER"].setRange(xRange=(0, duration), yRange=(0, nyquist), padding=0)
        cell = "<td style='padding:0 8px'>{}</td>"
        html = "<table><tr>" + "".join(f"<th style='padding:0 8px'>{h}</th>" for h in
                                       ("codec", "bytes", "kbps", "PSNR (dB)", "SNR (dB)", "STOI", "PESQ",
                                        "")) + "</tr>"
        for p in pts:
            html += "<tr>" + "".join(cell.format(v) for v in (f"<b>{p.codec}</b>", p.nbytes, f"{p.kbps:.2f}",
                                                                f"{p.psnr:.2f}", f"{p.snr:.2f}", fmt(p.stoi, 3),
                                                                fmt(p.pesq, 2), p.note)) + "</tr>"
        if len(pts) == 1:
            html += "<tr><td colspan=8>(MP3/Opus unavailable in this libsndfile)</td></tr>"
        self.table.setText(html + "</table>")
        self.rd_current.setData([pts[0].kbps], [pts[0].psnr])
        self.shown.emit(pos)
