"""The main window: file handling (open, drop, recent, command line), the settings panel and the views."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QSplitter, QStackedWidget, QTabWidget

from engine import codec, media
from engine.errors import CombinerError, MediaError

from . import dialogs
from .encode_settings import SettingsPanel
from .live_view import LiveView
from .rate_explorer import LADDER, RateExplorer
from .recent_files import RecentFiles
from .result_view import ResultView
from .welcome import Welcome
from .worker import EncodePlan, EncodeResult, EncodeRunner

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}
IMAGE_FILTER = "Images and .cmb files (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm *.cmb);;All files (*)"


def audio_engine_available() -> bool:
    """The audio side is wired in only once the engine grows an audio codec."""
    return hasattr(codec, "encode_audio")


class MainWindow(QMainWindow):
    # GUI-thread signals (tests wait on these)
    file_opened = Signal(str)
    encode_finished = Signal(bool)      # cancelled?
    error_shown = Signal(str)

    def __init__(self, prior_dirs=None, settings: QSettings | None = None, presets=None, ladder=LADDER):
        super().__init__()
        self.setWindowTitle("COMBINER Studio")
        self.resize(1200, 780)
        self.setAcceptDrops(True)
        self.prior_dirs = prior_dirs
        self.recent = RecentFiles(settings)
        self.path: Path | None = None
        self.image: np.ndarray | None = None       # the opened image (None for a .cmb)
        self.result: EncodeResult | None = None
        self.decoded: tuple | None = None          # (image, header, prior, nbytes) of an opened .cmb
        self.error_box = None
        self._encode_t0 = 0.0

        self.runner = EncodeRunner(self)
        self.runner.planned.connect(self._on_planned)
        self.runner.progress.connect(self._on_progress)
        self.runner.encoded.connect(self._on_encoded)
        self.runner.failed.connect(lambda m: self.show_error("Compression failed", m))
        self.runner.done.connect(self._on_encode_done)

        self.welcome = Welcome()
        self.welcome.open_clicked.connect(self.open_dialog)
        self.settings_panel = SettingsPanel(presets, prior_dirs)
        self.settings_panel.compress_clicked.connect(self.compress)
        self.settings_panel.cancel_clicked.connect(self.cancel)
        self.live = LiveView()
        self.result_view = ResultView()
        self.result_view.save_requested.connect(self.save_dialog)
        self.result_view.export_requested.connect(self.export_dialog)
        self.explorer = RateExplorer(self._current_settings, prior_dirs, ladder)
        self.explorer.busy_changed.connect(self._on_explorer_busy)
        self.explorer.failed.connect(lambda m: self.show_error("Explore rates", m))
        self.tabs = QTabWidget()
        self.tabs.setObjectName("viewTabs")
        self.tabs.addTab(self.live, "Live coding")
        self.tabs.addTab(self.result_view, "Result")
        self.tabs.addTab(self.explorer, "Explore rates")
        self.audio_result = None
        if audio_engine_available():   # pragma: no cover - no audio engine yet
            from .audio_views import AudioResultView
            self.audio_result = AudioResultView()
            self.tabs.addTab(self.audio_result, "Audio result")

        self.workspace = QSplitter()
        self.workspace.addWidget(self.settings_panel)
        self.workspace.addWidget(self.tabs)
        self.workspace.setStretchFactor(1, 1)
        self.workspace.setSizes([270, 930])
        self.pages = QStackedWidget()
        self.pages.addWidget(self.welcome)
        self.pages.addWidget(self.workspace)
        self.setCentralWidget(self.pages)
        self.status_label = QLabel("Ready")
        self.statusBar().addWidget(self.status_label, 1)
        self._build_menus()

    # -- menus ----------------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        fm = self.menuBar().addMenu("&File")
        self.open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open,
                                   triggered=self.open_dialog)
        self.recent_menu = fm.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.save_action = QAction("&Save .cmb…", self, shortcut=QKeySequence.StandardKey.Save,
                                   triggered=self.save_dialog, enabled=False)
        self.export_action = QAction("&Export decoded PNG…", self, shortcut="Ctrl+E",
                                     triggered=self.export_dialog, enabled=False)
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close)
        fm.insertAction(self.recent_menu.menuAction(), self.open_action)
        fm.addSeparator()
        fm.addActions([self.save_action, self.export_action])
        fm.addSeparator()
        fm.addAction(quit_action)
        hm = self.menuBar().addMenu("&Help")
        hm.addAction(QAction("&About COMBINER Studio", self, triggered=self.show_about))
        self._fill_recent()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        paths = self.recent.paths()
        for p in paths:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        if paths:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", self.recent.clear)
        else:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def show_about(self):
        return dialogs.about_box(self)

    # -- errors ---------------------------------------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """Every error shown to the user goes through here (one non-blocking message box)."""
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = dialogs.error_box(self, title, message)
        self.status_label.setText(message.splitlines()[0] if message else title)
        self.error_shown.emit(message)

    # -- opening --------------------------------------------------------------------------------------
    def dragEnterEvent(self, e) -> None:
        if e.mimeData().hasUrls() and any(u.isLocalFile() for u in e.mimeData().urls()):
            e.acceptProposedAction()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, e) -> None:
        files = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if files:
            e.acceptProposedAction()
            self.open_path(files[0])

    def open_dialog(self) -> None:
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open an image or a .cmb file", start, IMAGE_FILTER)
        if path:
            self.open_path(path)

    def busy(self) -> bool:
        return self.runner.is_running() or self.explorer.is_running()

    def open_path(self, path: str | os.PathLike) -> bool:
        """Open an image or a .cmb file (menu, drop, recent list and command line all come here)."""
        path = Path(path)
        if self.busy():
            self.show_error("Busy", "An encode is running; cancel it before opening another file.")
            return False
        try:
            if path.suffix.lower() == ".cmb" or self._looks_like_cmb(path):
                self._open_cmb(path)
            elif path.suffix.lower() in AUDIO_SUFFIXES and not audio_engine_available():
                raise MediaError(f"{path.name}: audio compression is not available in this version of the "
                                 "engine (images only for now)")
            else:
                self._open_image(path)
        except CombinerError as e:
            self.show_error("Cannot open file", str(e))
            return False
        except OSError as e:
            self.show_error("Cannot open file", f"{path}: {e.strerror or e}")
            return False
        self.recent.add(str(path))
        self.setWindowTitle(f"{path.name} — COMBINER Studio")
        self.file_opened.emit(str(path))
        return True

    @staticmethod
    def _looks_like_cmb(path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                return f.read(1) == b"\xcb" and path.suffix.lower() not in media.IMAGE_SUFFIXES
        except OSError:
            return False

    def _open_image(self, path: Path) -> None:
        img, warnings = media.read_image(path)
        h, w, _ = img.shape
        too_large = None
        try:
            codec.check_image_shape(img.shape)
        except CombinerError as e:
            too_large = str(e)
        self.path, self.image, self.result, self.decoded = path, img, None, None
        self.settings_panel.setVisible(True)
        self._image_tabs(True)
        self.settings_panel.set_image(path.name, img.shape, "<br>".join(warnings))
        self.settings_panel.compress_button.setEnabled(too_large is None)
        self.explorer.set_image(img if too_large is None else None)
        self.live.start(img)
        self.live.timer.stop()
        self._show_original(img)
        self.tabs.setCurrentWidget(self.result_view)
        self.pages.setCurrentWidget(self.workspace)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(False)
        self.status_label.setText(f"Opened {path.name} ({w}×{h})")
        if too_large is not None:
            self.show_error("Image too large", too_large)

    def _image_tabs(self, enabled: bool) -> None:
        """Live coding and Explore rates belong to an opened image, not to an opened .cmb."""
        for w in (self.live, self.explorer):
            self.tabs.setTabEnabled(self.tabs.indexOf(w), enabled)

    def _show_original(self, img: np.ndarray) -> None:
        """Before any encode, the result tab shows the opened image alone."""
        from .image_panels import show_rgb
        rv = self.result_view
        rv.pages.setCurrentWidget(rv.single)
        show_rgb(rv.dec_item, img)
        rv.dec_label.setText("Original — press Compress")
        rv.dec_box.autoRange(padding=0)
        rv._show_fields({"Size": f"{img.shape[1]}×{img.shape[0]}×{img.shape[2]}"})
        rv.save_button.setVisible(False)
        rv.export_button.setVisible(False)

    def _open_cmb(self, path: Path) -> None:
        data = path.read_bytes()
        img, header, prior = codec.decode_full(data, prior_dirs=self.prior_dirs)
        self.path, self.image, self.result = path, None, None
        self.decoded = (img, header, prior, len(data))
        self.explorer.set_image(None)
        self.settings_panel.setVisible(False)
        self._image_tabs(False)
        self.result_view.show_decoded(img, header, prior, len(data), path.name)
        self.result_view.export_button.setVisible(True)
        self.tabs.setCurrentWidget(self.result_view)
        self.pages.setCurrentWidget(self.workspace)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(True)
        self.status_label.setText(f"Decoded {path.name}: {len(data)} bytes")

    # -- encoding -------------------------------------------------------------------------------------
    def _current_settings(self):
        return self.settings_panel.fit_config(), self.settings_panel.device.currentText()

    def compress(self) -> None:
        if self.image is None or self.busy():
            return
        fit, device = self._current_settings()
        self.result = None
        self.settings_panel.set_running(True)
        self.explorer.explore_button.setEnabled(False)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(False)
        self.live.start(self.image)
        self.tabs.setCurrentWidget(self.live)
        self.status_label.setText("Compressing…")
        self._encode_t0 = time.perf_counter()
        self.runner.start(self.image, [self.settings_panel.bpp.value()], fit, device, self.prior_dirs)

    def cancel(self) -> None:
        self.runner.cancel()
        self.status_label.setText("Cancelling…")

    def _on_planned(self, i: int, plan: EncodePlan) -> None:
        self.live.set_plan(plan)

    def _on_progress(self, i: int, ev) -> None:
        self.live.add_event(ev)

    def _on_encoded(self, i: int, res: EncodeResult) -> None:
        self.result = res
        self.result_view.show_encoded(self.image, res)
        self.result_view.export_button.setVisible(True)
        self.tabs.setCurrentWidget(self.result_view)
        self.save_action.setEnabled(True)
        self.export_action.setEnabled(True)
        enc = res.encoded
        self.status_label.setText(f"Compressed to {len(enc.data)} bytes ({enc.bpp:.3f} bpp), "
                                  f"PSNR {enc.psnr:.2f} dB in {res.seconds:.1f} s — not saved yet")

    def _on_encode_done(self, cancelled: bool) -> None:
        self.live.stop()
        self.settings_panel.set_running(False)
        self.explorer.explore_button.setEnabled(self.explorer.image is not None)
        if cancelled:
            self.live.phase_label.setText("Cancelled — nothing was written")
            self.status_label.setText("Cancelled; nothing was written")
        self.encode_finished.emit(cancelled)

    def _on_explorer_busy(self, busy: bool) -> None:
        self.settings_panel.compress_button.setEnabled(not busy and self.image is not None)

    # -- saving ---------------------------------------------------------------------------------------
    def _protected(self) -> list[str]:
        return [str(self.path)] if self.path else []

    def default_cmb_path(self) -> Path:
        return self.path.with_suffix(".cmb")

    def save_dialog(self) -> None:
        if self.result is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save .cmb", str(self.default_cmb_path()),
                                              "COMBINER files (*.cmb)")
        if path:
            self.save_cmb(path)

    def save_cmb(self, path: str | os.PathLike) -> bool:
        if self.result is None:
            return False
        try:
            media.write_atomic(path, self.result.encoded.data, protect=self._protected())
        except CombinerError as e:
            self.show_error("Cannot save", str(e))
            return False
        self.status_label.setText(f"Saved {path} ({len(self.result.encoded.data)} bytes)")
        self.recent.add(str(path))
        return True

    def decoded_image(self) -> np.ndarray | None:
        if self.result is not None:
            return self.result.encoded.reconstruction
        return self.decoded[0] if self.decoded else None

    def export_dialog(self) -> None:
        if self.decoded_image() is None:
            return
        stem = self.path.stem if self.path else "decoded"
        start = (self.path.parent if self.path else Path.cwd()) / f"{stem}_decoded.png"
        path, _ = QFileDialog.getSaveFileName(self, "Export decoded image", str(start), "PNG images (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str | os.PathLike) -> bool:
        img = self.decoded_image()
        if img is None:
            return False
        try:
            media.write_atomic(path, media.encode_image_file(img, ".png"), protect=self._protected())
        except CombinerError as e:
            self.show_error("Cannot export", str(e))
            return False
        self.status_label.setText(f"Exported {path}")
        return True

    # -- closing --------------------------------------------------------------------------------------
    def closeEvent(self, e) -> None:
        self.runner.shutdown()
        self.explorer.shutdown()
        super().closeEvent(e)
