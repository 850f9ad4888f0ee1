"""Audio comparison widgets: waveforms (stacked or overlaid, min/max peak downsampling for long signals) and
spectrograms of the original, the decoded signal and their difference, with time (s) / frequency (Hz) axes
and a shared dB colour bar. They take plain numpy arrays; `AudioResultView` is the main window's audio
result page (an encode: original, decoded and difference; an opened .cmb: the decoded signal alone)."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTabWidget, QVBoxLayout, QWidget

from . import image_panels  # noqa: F401  (row-major image axis order)

ORIG_PEN = pg.mkPen((90, 90, 90), width=1)
DEC_PEN = pg.mkPen((30, 110, 220), width=1)
DIFF_PEN = pg.mkPen((210, 60, 40), width=1)


def mono(x: np.ndarray) -> np.ndarray:
    """(N,) or (N, C) samples -> (N,) float64 (channels averaged; integers scaled to [-1, 1])."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def peak_envelope(x: np.ndarray, sample_rate: float, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Min/max downsampling: -> (t seconds, y) with at most ~max_points points whose envelope covers every
    peak of x (each bin contributes its minimum then its maximum). Short signals come back unchanged."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if n <= max_points:
        return np.arange(n) / sample_rate, x
    bins = max_points // 2
    size = int(np.ceil(n / bins))
    pad = bins * size - n
    xp = np.concatenate([x, np.full(pad, x[-1])]) if pad else x
    blocks = xp.reshape(bins, size)
    y = np.empty(2 * bins)
    y[0::2], y[1::2] = blocks.min(1), blocks.max(1)
    starts = np.arange(bins) * size
    t = np.empty(2 * bins)
    t[0::2], t[1::2] = starts, np.minimum(starts + size - 1, n - 1)
    return t / sample_rate, y


def stft_db(x: np.ndarray, sample_rate: float, n_fft: int = 512, hop: int | None = None,
            floor_db: float = -120.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hann-window STFT magnitude in dB (re full scale 1.0) -> (S (freqs, frames), times s, freqs Hz)."""
    x = np.asarray(x, dtype=np.float64)
    hop = hop or n_fft // 4
    if x.shape[0] < n_fft:
        x = np.concatenate([x, np.zeros(n_fft - x.shape[0])])
    frames = 1 + (x.shape[0] - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    win = np.hanning(n_fft)
    spec = np.fft.rfft(x[idx] * win, axis=1)
    mag = np.abs(spec) * 2.0 / win.sum()       # a full-scale sine peaks at 0 dB
    s = 20.0 * np.log10(np.maximum(mag, 10 ** (floor_db / 20))).T
    times = (np.arange(frames) * hop + n_fft / 2) / sample_rate
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    return s, times, freqs


def snr_db(original: np.ndarray, decoded: np.ndarray) -> float:
    o, d = mono(original), mono(decoded)
    noise = float(np.sum((o - d) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(float(np.sum(o ** 2)) / noise)


class WaveformView(pg.GraphicsLayoutWidget):
    """Original and decoded waveforms: overlaid in one plot or stacked (with the difference) in three
    x-linked plots."""

    def __init__(self, stacked: bool = True, max_points: int = 4000, parent=None):
        super().__init__(parent)
        self.stacked, self.max_points = stacked, max_points
        self.plots: list[pg.PlotItem] = []
        self.curves: dict[str, pg.PlotDataItem] = {}

    def set_signals(self, original: np.ndarray | None, decoded: np.ndarray, sample_rate: float,
                    alone: str = "decoded") -> None:
        """`original` None: one signal alone (an opened .cmb, or an opened clip before any encode), titled
        `alone`."""
        self.clear()
        self.plots, self.curves = [], {}
        d = mono(decoded)
        if original is None:
            series = [(alone, d, ORIG_PEN if alone == "original" else DEC_PEN)]
        else:
            o = mono(original)
            n = min(len(o), len(d))
            o, d = o[:n], d[:n]
            series = [("original", o, ORIG_PEN), ("decoded", d, DEC_PEN)]
        if self.stacked:
            if original is not None:
                series.append(("difference", d - o, DIFF_PEN))
            for row, (name, x, pen) in enumerate(series):
                p = self.addPlot(row=row, col=0, title=name)
                self._curve(p, name, x, pen, sample_rate)
                p.setLabel("left", "amplitude")
                p.getAxis("left").enableAutoSIPrefix(False)   # full scale is 1: no "(x0.001)"
                if self.plots:
                    p.setXLink(self.plots[0])
                self.plots.append(p)
        else:
            title = "original (grey) and decoded (blue)" if original is not None else alone
            p = self.addPlot(row=0, col=0, title=title)
            p.addLegend()
            for name, x, pen in series:
                self._curve(p, name, x, pen, sample_rate)
            p.setLabel("left", "amplitude")
            p.getAxis("left").enableAutoSIPrefix(False)
            self.plots.append(p)
        self.plots[-1].setLabel("bottom", "time", units="s")

    def _curve(self, plot: pg.PlotItem, name: str, x: np.ndarray, pen, sr: float) -> None:
        t, y = peak_envelope(x, sr, self.max_points)
        self.curves[name] = plot.plot(t, y, pen=pen, name=name)


class SpectrogramView(pg.GraphicsLayoutWidget):
    """Spectrograms of original, decoded and difference, time/frequency axes, one dB colour bar."""

    def __init__(self, n_fft: int = 512, db_range: float = 100.0, max_frames: int = 2000, parent=None):
        super().__init__(parent)
        self.n_fft, self.db_range, self.max_frames = n_fft, db_range, max_frames
        self.images: dict[str, pg.ImageItem] = {}
        self.spectra: dict[str, np.ndarray] = {}
        self.colorbar: pg.ColorBarItem | None = None

    def set_signals(self, original: np.ndarray | None, decoded: np.ndarray, sample_rate: float,
                    alone: str = "decoded") -> None:
        """`original` None: one signal alone, titled `alone` ("decoded" for an opened .cmb, "original" for an
        opened clip)."""
        self.clear()
        self.images, self.spectra = {}, {}
        d = mono(decoded)
        if original is None:
            n = len(d)
            series = [(alone, d)]
        else:
            o = mono(original)
            n = min(len(o), len(d))
            series = [("original", o[:n]), ("decoded", d[:n]), ("difference", d[:n] - o[:n])]
        # a long clip gets a longer hop, so the image stays ~max_frames wide whatever the duration
        hop = max(self.n_fft // 4, -(-n // self.max_frames))
        cmap = pg.colormap.get("magma")
        first = None
        top = -np.inf
        for row, (name, x) in enumerate(series):
            s, times, freqs = stft_db(x, sample_rate, self.n_fft, hop)
            self.spectra[name] = s
            top = max(top, float(s.max()))
            p = self.addPlot(row=row, col=0, title=name)
            img = pg.ImageItem(s)      # row-major: rows are frequencies, columns are frames
            img.setColorMap(cmap)
            duration = n / sample_rate
            img.setRect(QRectF(0.0, 0.0, duration, sample_rate / 2.0))
            p.addItem(img)
            p.setLabel("left", "frequency", units="Hz")
            p.setLimits(xMin=0, xMax=duration, yMin=0, yMax=sample_rate / 2.0)
            if first is not None:
                p.setXLink(first)
                p.setYLink(first)
            else:
                first = p
            if row == len(series) - 1:
                p.setLabel("bottom", "time", units="s")
            self.images[name] = img
        hi = np.ceil(top / 10) * 10
        levels = (hi - self.db_range, hi)
        for img in self.images.values():
            img.setLevels(levels)
        self.colorbar = pg.ColorBarItem(values=levels, colorMap=cmap, label="level (dB FS)", interactive=False)
        self.colorbar.setImageItem(list(self.images.values()))
        self.addItem(self.colorbar, row=0, col=1, rowspan=len(series))


class AudioResultView(QWidget):
    """Waveforms and spectrograms of an audio result, the numbers under them, Save/Export, and playback of the
    original, the decoded signal and Opus / MP3 at the same size with an A/B switch (same position). Without an
    audio device the buttons stay in view, disabled, with the reason beside them."""

    save_requested = Signal()
    export_requested = Signal()
    play_requested = Signal(str)     # "original" | "decoded" | "opus" | "mp3"
    ab_requested = Signal()
    stop_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.title = QLabel("")
        self.title.setObjectName("audioTitle")
        self.stats = QLabel("")
        self.stats.setObjectName("audioStats")
        self.stats.setWordWrap(True)
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.waveforms = WaveformView(stacked=True)
        self.overlay = WaveformView(stacked=False)
        self.spectrograms = SpectrogramView()
        self.views = QTabWidget()
        self.views.setObjectName("audioViews")
        self.views.addTab(self.spectrograms, "Spectrograms")
        self.views.addTab(self.waveforms, "Waveforms")
        self.views.addTab(self.overlay, "Overlay")
        self.save_button = QPushButton("Save .cmb…")
        self.save_button.setObjectName("audioSaveButton")
        self.export_button = QPushButton("Export decoded WAV…")
        self.export_button.setObjectName("audioExportButton")
        self.play_original = QPushButton("▶ Play original")
        self.play_original.setObjectName("playOriginal")
        self.play_decoded = QPushButton("▶ Play decoded")
        self.play_decoded.setObjectName("playDecoded")
        self.play_opus = QPushButton("▶ Opus")
        self.play_opus.setObjectName("playOpus")
        self.play_mp3 = QPushButton("▶ MP3")
        self.play_mp3.setObjectName("playMp3")
        self.ab_button = QPushButton("A/B")
        self.ab_button.setObjectName("abToggle")
        self.ab_button.setToolTip("Switch between the original and the decoded signal at the same position")
        self.stop_button = QPushButton("■ Stop")
        self.stop_button.setObjectName("stopPlayback")
        self.play_note = QLabel("")
        self.play_note.setObjectName("playNote")
        self.play_note.setStyleSheet("color: #a60")
        self.playing_label = QLabel("")
        self.playing_label.setObjectName("playingLabel")
        self.save_button.clicked.connect(self.save_requested)
        self.export_button.clicked.connect(self.export_requested)
        self.play_original.clicked.connect(lambda: self.play_requested.emit("original"))
        self.play_decoded.clicked.connect(lambda: self.play_requested.emit("decoded"))
        self.play_opus.clicked.connect(lambda: self.play_requested.emit("opus"))
        self.play_mp3.clicked.connect(lambda: self.play_requested.emit("mp3"))
        self.ab_button.clicked.connect(self.ab_requested)
        self.stop_button.clicked.connect(self.stop_requested)
        self.can_play = False
        self.has_original = False
        self.sources: set[str] = set()
        buttons = QHBoxLayout()
        for b in (self.save_button, self.export_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.play_note)
        buttons.addWidget(self.playing_label)
        for b in (self.play_original, self.play_decoded, self.play_opus, self.play_mp3, self.ab_button,
                  self.stop_button):
            buttons.addWidget(b)
        lay = QVBoxLayout(self)
        lay.addWidget(self.title)
        lay.addWidget(self.views, 1)
        lay.addWidget(self.stats)
        lay.addLayout(buttons)
        self.fields: dict[str, str] = {}
        self._signals: tuple | None = None
        self._stale: set = set()
        self.views.currentChanged.connect(lambda _: self._draw_current())
        self.set_playable(False)

    def _draw_current(self) -> None:
        page = self.views.currentWidget()
        if page in self._stale and self._signals is not None:
            self._stale.discard(page)
            page.set_signals(*self._signals)

    def set_playable(self, can_play: bool, reason: str = "") -> None:
        """Play buttons stay visible; they are enabled where a device exists and the version is there (see
        combiner_app.playback); otherwise the reason is shown beside them."""
        self.can_play = can_play
        self.play_note.setText("" if can_play else f"Playback unavailable: {reason or 'no audio output device'}")
        for name, b in (("original", self.play_original), ("decoded", self.play_decoded),
                        ("opus", self.play_opus), ("mp3", self.play_mp3)):
            b.setEnabled(can_play and name in self.sources)
            b.setVisible(name in ("original", "decoded") or name in self.sources)
        self.ab_button.setEnabled(can_play and {"original", "decoded"} <= self.sources)
        self.stop_button.setEnabled(can_play)

    def set_sources(self, names) -> None:
        """The versions that can be played now (e.g. {"original"} right after opening a clip)."""
        self.sources = set(names)
        self.set_playable(self.can_play, self.play_note.text().removeprefix("Playback unavailable: "))

    def set_playing(self, name: str) -> None:
        self.playing_label.setText(f"Playing: {name}" if name else "")

    def show_fields(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        self.stats.setText("&nbsp;&nbsp;&nbsp;".join(f"{k}: <b>{v}</b>" for k, v in fields.items()))

    def set_signals(self, original: np.ndarray | None, decoded: np.ndarray, sample_rate: float,
                    nbytes: int | None = None, alone: str = "decoded") -> None:
        """Draw everything; `original` None for one signal alone, titled `alone` (an opened .cmb: "decoded";
        an opened clip before any encode: "original"). The stats line gets a default summary that
        `show_fields` may replace."""
        self.has_original = original is not None
        # Only the visible page is drawn now; the others when first shown (a shorter GUI stall per result).
        self._signals = (original, decoded, sample_rate, alone)
        self._stale = {self.spectrograms, self.waveforms, self.overlay}
        self._draw_current()
        n = len(decoded)
        parts = [f"{n / sample_rate:.2f} s at {sample_rate:g} Hz"]
        if original is not None:
            parts.append(f"SNR {snr_db(original, decoded):.2f} dB")
        if nbytes is not None:
            parts += [f"{nbytes} bytes", f"{8 * nbytes * sample_rate / n / 1000:.2f} kbit/s"]
        self.stats.setText("   ".join(parts))
        self.fields = {}
