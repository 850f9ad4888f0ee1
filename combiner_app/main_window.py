"""The main window: file handling (open, drop, recent, command line), the settings panel and the views.

Images and audio share the settings panel, the worker and the live view; each has its own result page and
rate explorer, and the tabs of the other modality are hidden. Images of any size and 1 to 4 channels are
patch-coded (`engine.patch_codec`) when a patch prior is installed; an image of exactly a single-image
prior's size (e.g. 32x32 with the CIFAR-10 priors) is coded as one INR, as the CLI does (`plans.use_patches`)."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QApplication, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QSplitter, QStackedWidget, QSystemTrayIcon, QTabWidget)

from engine import codec, container, journal, media, patch_codec
from engine.audio_codec import EITHER
from engine.audio_io import AUDIO_SUFFIXES, audio_file_bytes, is_audio_path, read_audio
from engine.errors import CombinerError, PriorError
from engine.metrics import fmt

from . import dialogs
from .audio_explorer import AUDIO_LADDER, AudioRateExplorer
from .audio_views import AudioResultView
from .encode_settings import SettingsPanel
from .live_view import LiveView
from .plans import alpha_bytes, use_patches
from .playback import Player
from .rate_explorer import LADDER, PATCH_LADDER, RateExplorer
from .recent_files import RecentFiles
from .result_view import ResultView
from .welcome import Welcome
from .recent_files import default_journal_dir, default_settings
from .worker import AudioClip, DecodeRunner, Decoded, EncodePlan, EncodeResult, EncodeRunner

APP_TITLE = "COMBINER Studio"
JOURNAL_DAYS = 14   # journals of cancelled audio encodes older than this are removed when the app starts
PRIOR_HINT = ("\n\nPriors are looked up in the priors/ folder that ships with COMBINER Studio, in the folders "
              "named by the COMBINER_PRIORS environment variable (separated by ':'), and in folders given with "
              "--prior-dir when starting the app (combiner-studio --prior-dir DIR). A file can only be decoded "
              "with the exact prior it was encoded with: get it from whoever made the file, or train one with "
              "the scripts in benchmarks/.")


def user_message(e: BaseException, path: Path | None = None) -> str:
    """A message for a person: no Python class names, and the file named."""
    import re

    msg = str(e) if not isinstance(e, OSError) or not e.strerror else e.strerror
    msg = re.sub(r"\(?\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b:?\s*", "(", msg)
    msg = re.sub(r"\(\(", "(", msg).replace("()", "").strip()
    msg = re.sub(r"\(\s*\)", "", msg)
    if path is not None and str(path) not in msg and path.name not in msg:
        msg = f"{path}: {msg}"
    if isinstance(e, PriorError) or "prior" in msg.lower() and "not installed" in msg.lower():
        msg += PRIOR_HINT
    return msg

_IMAGE_GLOBS = "*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp *.ppm"
_AUDIO_GLOBS = " ".join(f"*{s}" for s in sorted(AUDIO_SUFFIXES))
OPEN_FILTER = (f"Images, audio and .cmb files ({_IMAGE_GLOBS} {_AUDIO_GLOBS} *.cmb);;Images ({_IMAGE_GLOBS});;"
               f"Audio ({_AUDIO_GLOBS});;COMBINER files (*.cmb);;All files (*)")



def _resumed_note(res: EncodeResult) -> str:
    """The status note of an encode that continued a cancelled one ('' otherwise)."""
    if res.resumed is None:
        return ""
    return f" (continued a cancelled encode: {res.resumed[0]} of {res.resumed[1]} batches were done)"


def _units_text(header) -> str:
    """Audio units and their blocks for the result fields (kind-10 and later files vary the count by content;
    kinds 13 and 14 carry a level per chunk)."""
    ub = header.unit_blocks
    text = f"{header.units} units, {min(ub)}-{max(ub)} blocks each × κ={header.kappa}"
    if header.gain is not None:
        from engine.audio_gain import GAIN_STEP_DB

        text += f", gain {header.gain * GAIN_STEP_DB:+.2f} dB"
    if header.envelope is not None:
        from engine.audio_envelope import level_range

        lv = level_range(header.envelope, ub)
        if lv:
            text += f", chunk levels {lv[0]:+g} to {lv[1]:+g} dB"
    if header.delta_blocks:
        text += f", network delta {header.delta_blocks} blocks"
    if header.bands is not None:
        from engine.audio_bands import SETS

        text += ", band gains" + (" and noise floors" if SETS[header.band_set].floors else "")
    return text

class MainWindow(QMainWindow):
    # GUI-thread signals (tests wait on these)
    file_opened = Signal(str)
    encode_finished = Signal(bool)      # cancelled?
    error_shown = Signal(str)

    decode_finished = Signal(bool)      # cancelled?
    _probed = Signal(str, float)        # device, seconds per fitting step per unit of size (cost probe)
    closing = Signal()                  # a close was asked for while a job runs: the window closes when it ends

    def __init__(self, prior_dirs=None, settings: QSettings | None = None, presets=None, ladder=LADDER,
                 audio_ladder=AUDIO_LADDER, patch_ladder=PATCH_LADDER, confirm_discard: bool = True,
                 probe_costs: bool = True, journal_dir: str | Path | None = None):
        super().__init__()
        from .worker import preload_torch
        preload_torch()       # once per process, before the window is shown (see preload_torch)
        self.setWindowTitle(APP_TITLE)
        self.resize(1200, 780)
        self.setAcceptDrops(True)
        self.prior_dirs = prior_dirs
        self.store = settings if settings is not None else default_settings()
        # long audio encodes keep their journals here, so a cancelled one can continue (engine/journal.py)
        self.journal_dir = Path(journal_dir) if journal_dir is not None else default_journal_dir()
        journal.prune(self.journal_dir, JOURNAL_DAYS)
        self.recent = RecentFiles(self.store)
        self.confirm_discard = confirm_discard     # ask before an unsaved result is thrown away
        self.saved = True                          # the current result is saved (or there is none)
        self._closing = False
        self.path: Path | None = None
        self.image: np.ndarray | None = None       # the opened image (None for a .cmb or audio)
        self.audio: AudioClip | None = None        # the opened audio clip (None for a .cmb or an image)
        self.result: EncodeResult | None = None
        self.decoded: tuple | None = None          # (image, header, prior, nbytes) of an opened image .cmb
        self.decoded_audio: tuple | None = None    # (samples, sample_rate, header, prior, nbytes) of an audio .cmb
        self.error_box = None
        self._encode_t0 = 0.0
        self._marks: dict[str, float] = {}

        self.runner = EncodeRunner(self)
        self.runner.planned.connect(self._on_planned)
        self.runner.progress.connect(self._on_progress)
        self.runner.encoded.connect(self._on_encoded)
        self.runner.failed.connect(lambda m: self.show_error("Compression failed", m))
        self.runner.done.connect(self._on_encode_done)
        self.decoder = DecodeRunner(self)
        self.decoder.decode_progress.connect(self._on_decode_progress)
        self.decoder.decoded.connect(self._on_decoded)
        self.decoder.failed.connect(lambda m: self.show_error("Cannot open file", self._cmb_message(m)))
        self.decoder.done.connect(self._on_decode_done)
        self._decode_path: Path | None = None
        self._pending_encode: dict | None = None   # Compress was pressed; the worker starts after the next paint
        self._tab_soon = None                      # a tab to show on the next turn of the event loop
        self._encode_adapt: bool | str = False      # the running Compress's audio delta choice
        self._done_soon: bool | None = None        # the encode's end, handled once its result is on screen
        self._probe_thread = None
        self.probe_costs = probe_costs             # measure this machine once when it has no cost model yet
        self._probed.connect(self._on_probed)
        self._decode_t0 = 0.0

        self.welcome = Welcome()
        self.welcome.open_clicked.connect(self.open_dialog)
        self.settings_panel = SettingsPanel(presets, prior_dirs)
        self.settings_panel.compress_clicked.connect(self.compress)
        self.settings_panel.roi_toggled.connect(self._paint_roi)
        self.settings_panel.roi_cleared.connect(lambda: self.result_view.roi.clear())
        self.settings_panel.cancel_clicked.connect(self.cancel)
        self.live = LiveView()
        self.result_view = ResultView()
        self.result_view.save_requested.connect(self.save_dialog)
        self.result_view.export_requested.connect(self.export_dialog)
        self.explorer = RateExplorer(self._current_settings, prior_dirs, ladder, patch_ladder=patch_ladder)
        self.explorer.busy_changed.connect(self._on_explorer_busy)
        self.explorer.ladder_done.connect(lambda c: self._job_finished("Rate ladder", c))
        self.explorer.failed.connect(lambda m: self.show_error("Explore rates", m))
        self.tabs = QTabWidget()
        self.tabs.setObjectName("viewTabs")
        self.tabs.addTab(self.live, "Live coding")
        self.tabs.addTab(self.result_view, "Result")
        self.tabs.addTab(self.explorer, "Explore rates")
        self.player = Player(self)
        self.audio_result = AudioResultView()
        self.audio_result.set_playable(self.player.available(), self.player.reason)
        self.audio_result.ab_requested.connect(self.play_ab)
        self.player.state_changed.connect(self.audio_result.set_playing)
        self.audio_result.save_requested.connect(self.save_dialog)
        self.audio_result.export_requested.connect(self.export_dialog)
        self.audio_result.play_requested.connect(self.play)
        self.audio_result.stop_requested.connect(self.player.stop)
        self.audio_explorer = AudioRateExplorer(self._current_settings, prior_dirs, audio_ladder)
        self.audio_explorer.busy_changed.connect(self._on_explorer_busy)
        self.audio_explorer.ladder_done.connect(lambda c: self._job_finished("Rate ladder", c))
        self.audio_explorer.failed.connect(lambda m: self.show_error("Explore rates", m))
        self.tabs.addTab(self.audio_result, "Result")
        self.tabs.addTab(self.audio_explorer, "Explore rates")
        self._tab_shown = self.tabs.currentWidget()
        self.tabs.currentChanged.connect(self._link_views)

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
        self.status_label.setObjectName("statusLabel")
        self.statusBar().addWidget(self.status_label, 1)
        self.job_bar = QProgressBar()
        self.job_bar.setObjectName("jobBar")
        self.job_bar.setMaximumWidth(220)
        self.job_bar.setVisible(False)
        self.statusBar().addPermanentWidget(self.job_bar)
        self._build_menus()
        self._set_modality("image")
        self._load_preferences()
        self.settings_panel.estimate = self._estimate_text
        self.settings_panel.refresh_estimate()
        self.tray: QSystemTrayIcon | None = None

    # -- preferences ----------------------------------------------------------------------------------
    def _load_preferences(self) -> None:
        """Last preset, noise shaping, rates and device (QSettings), so the next session starts where this one
        left off."""
        sp = self.settings_panel
        preset = self.store.value("encode/preset", "", str)
        if preset and sp.preset.findText(preset) >= 0:
            sp.preset.setCurrentText(preset)
        device = self.store.value("encode/device", "", str)
        if device and sp.device.findText(device) >= 0:
            sp.device.setCurrentText(device)
        for key, spin in (("encode/bpp", sp.bpp), ("encode/kbps", sp.kbps)):
            v = self.store.value(key, None)
            try:
                if v is not None:
                    spin.setValue(float(v))
            except (TypeError, ValueError):
                pass
        sp.perceptual.setChecked(str(self.store.value("encode/perceptual", "false")).lower() == "true")
        sp.preset.currentTextChanged.connect(lambda t: self._store("encode/preset", t))
        sp.perceptual.toggled.connect(lambda on: self._store("encode/perceptual", "true" if on else "false"))
        sp.try_delta.setChecked(str(self.store.value("encode/try_delta", "false")).lower() == "true")
        sp.try_delta.toggled.connect(lambda on: self._store("encode/try_delta", "true" if on else "false"))
        sp.device.currentTextChanged.connect(lambda t: self._store("encode/device", t))
        sp.bpp.valueChanged.connect(lambda v: self._store("encode/bpp", v))
        sp.kbps.valueChanged.connect(lambda v: self._store("encode/kbps", v))

    def _store(self, key: str, value) -> None:
        self.store.setValue(key, value)

    def _cost_model(self, device: str) -> tuple[float | None, float | None]:
        """(coding/fitting cost ratio, seconds per fitting step per unit of size) measured on this machine."""
        def get(key):
            try:
                v = self.store.value(f"cost/{device}/{key}", None)
                return float(v) if v is not None else None
            except (TypeError, ValueError):
                return None
        return get("code_ratio"), get("fit_per_size")

    def _overheads(self, device: str) -> tuple[float, float]:
        """(head, tail) seconds per unit of size outside the steps, measured by the last encode (0 without
        one): before the first step (the worker's start, the classical codecs' curves) and after the last (final
        decode, MS-SSIM, the classical codecs at the same size)."""
        out = []
        for key in ("head_per_size", "tail_per_size"):
            try:
                out.append(max(0.0, float(self.store.value(f"cost/{device}/{key}", 0.0))))
            except (TypeError, ValueError):
                out.append(0.0)
        return out[0], out[1]

    def _learn_costs(self) -> None:
        """After a finished encode: keep the measured phase costs as this machine's model (per device)."""
        clock, plan = self.live.clock, self.live.plan
        if clock is None or plan is None or clock.rate["fit"] is None:
            return
        from .progress import size_of
        device = self.settings_panel.device.currentText()
        size = size_of(plan)
        per_size = clock.rate["fit"] * clock.work.batches / size
        self.store.setValue(f"cost/{device}/fit_per_size", per_size)
        self.store.setValue(f"cost/{device}/source", "encode")
        if clock.measured_ratio():
            self.store.setValue(f"cost/{device}/code_ratio", clock.measured_ratio())
        marks = self._marks
        if {"first", "last", "encoded"} <= set(marks):
            self.store.setValue(f"cost/{device}/head_per_size", max(0.0, marks["first"] - self._encode_t0) / size)
            self.store.setValue(f"cost/{device}/tail_per_size", max(0.0, marks["encoded"] - marks["last"]) / size)
        self.settings_panel.refresh_estimate()

    def _probe_costs(self, plan) -> None:
        """No cost model for this device yet: measure a few real fitting steps on a worker thread (once)."""
        device = self.settings_panel.device.currentText()
        if (plan is None or not self.probe_costs or self._cost_model(device)[1] is not None
                or getattr(self, "_probe_thread", None) or self.busy()):
            return
        import threading

        from .progress import probe_fit_cost

        from engine import cancel

        token = self._probe_stop = cancel.Token()   # reaches inside a step: a probe step can take seconds

        def work():
            per_size = float("nan")
            try:
                per_size = probe_fit_cost(plan, device, token=token) or float("nan")
            except Exception:    # no estimate is better than a crash
                pass
            self._probed.emit(device, per_size)
        self._probe_thread = threading.Thread(target=work, name="cost-probe", daemon=True)
        self._probe_thread.start()

    def _stop_probe(self) -> None:
        """An encode is starting: it measures the costs itself, and the probe would only take CPU time (and the
        GIL) from it and from the window's first paint of the Live tab."""
        token = getattr(self, "_probe_stop", None)
        if token is not None:
            token.cancel()

    def _on_probed(self, device: str, per_size: float) -> None:
        self._probe_thread = None
        if not math.isfinite(per_size):    # stopped (an encode began) or failed: no model from the probe
            return
        if self._cost_model(device)[1] is None:    # a finished encode's measurement wins
            self.store.setValue(f"cost/{device}/fit_per_size", per_size)
            self.store.setValue(f"cost/{device}/source", "probe")
        self.settings_panel.refresh_estimate()

    def _estimate_text(self, plan) -> str:
        from .progress import estimate_seconds
        from .live_view import _fmt_time
        fit, device, adapt = self._current_settings()
        ratio, per_size = self._cost_model(device)
        secs = estimate_seconds(plan, fit, per_size, ratio, sum(self._overheads(device)))
        if secs is None:
            self._probe_costs(plan)
            return ("Estimated time: measuring this machine…" if self.probe_costs else
                    "Estimated time: known after the first encode on this machine")
        note = (". Coded batch by batch: cancelling keeps the finished batches, and compressing again at these "
                "settings continues from them" if plan.resumable else "")
        if adapt == EITHER:   # coded twice, without and with the clip delta
            secs *= 2
            note = ". Twice the work: the clip is coded without and with a network delta" + note
        if self.store.value(f"cost/{device}/source", "encode", str) == "probe":
            return (f"Estimated time: roughly {_fmt_time(secs)} with this preset on {device} (from a short probe "
                    f"of this machine; measured properly by the first encode){note}")
        return (f"Estimated time: about {_fmt_time(secs)} with this preset on {device} (measured by the last "
                f"encode){note}")

    def _may_discard(self, doing: str) -> bool:
        """True if there is no unsaved result, or the user agrees to lose it."""
        if self.saved or self.result is None or not self.confirm_discard:
            return True
        box = QMessageBox(QMessageBox.Icon.Question, "Unsaved result",
                          f"The compressed result has not been saved. {doing} anyway and lose it?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("discardBox")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.discard_box = box
        answer = box.exec()
        self.discard_box = None
        if answer == QMessageBox.StandardButton.Save:
            self.save_dialog()
            return self.saved
        return answer == QMessageBox.StandardButton.Discard

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
        if self._closing:
            return
        if self.error_box is not None:
            self.error_box.close()
        self.error_box = dialogs.error_box(self, title, message)
        self.status_label.setText(message.splitlines()[0] if message else title)
        self.error_shown.emit(message)

    # -- opening --------------------------------------------------------------------------------------
    def dragEnterEvent(self, e) -> None:
        """A reader of files: the drop is a copy, whatever the source proposed (never a move)."""
        if e.mimeData().hasUrls() and any(u.isLocalFile() for u in e.mimeData().urls()):
            e.setDropAction(Qt.DropAction.CopyAction)
            e.accept()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, e) -> None:
        files = [u.toLocalFile() for u in e.mimeData().urls() if u.isLocalFile()]
        if files:
            e.setDropAction(Qt.DropAction.CopyAction)
            e.accept()
            QTimer.singleShot(0, lambda: self.open_path(files[0]))   # let the drag source finish first

    def open_dialog(self) -> None:
        start = str(self.path.parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open an image, audio or .cmb file", start, OPEN_FILTER)
        if path:
            self.open_path(path)

    def busy(self) -> bool:
        return (self.runner.is_running() or self._pending_encode is not None or self.explorer.is_running() or self.audio_explorer.is_running()
                or self.decoder.is_running())

    def open_path(self, path: str | os.PathLike) -> bool:
        """Open an image, audio or .cmb file (menu, drop, recent list and command line all come here)."""
        path = Path(path)
        if self.busy():
            self.show_error("Busy", "A job is running; cancel it before opening another file.")
            return False
        if not self._may_discard(f"Open {path.name}"):
            return False
        try:
            if path.suffix.lower() == ".cmb" or self._looks_like_cmb(path):
                self._open_cmb(path)      # decodes in the worker: `file_opened` follows when it is done
                return True
            elif is_audio_path(path):
                self._open_audio(path)
            else:
                self._open_image(path)
        except CombinerError as e:
            self.show_error("Cannot open file", user_message(e, path))
            return False
        except OSError as e:
            self.show_error("Cannot open file", f"{path}: {e.strerror or e}")
            return False
        except MemoryError:
            self.show_error("Cannot open file", f"{path}: not enough memory to open this file")
            return False
        except Exception as e:   # a reader's own exception type: a message, never a traceback
            import traceback
            traceback.print_exc()
            self.show_error("Cannot open file", user_message(e, path))
            return False
        self._opened(path)
        return True

    def _opened(self, path: Path) -> None:
        self.saved = True
        self.recent.add(str(path))
        self.setWindowTitle(f"{path.name} — {APP_TITLE}")
        self.file_opened.emit(str(path))

    @staticmethod
    def _looks_like_cmb(path: Path) -> bool:
        try:
            with open(path, "rb") as f:
                return (f.read(1) == b"\xcb" and path.suffix.lower() not in media.IMAGE_SUFFIXES
                        and not is_audio_path(path))
        except OSError:
            return False

    def _open_image(self, path: Path) -> None:
        img, warnings = media.read_image(path, keep_channels=True)
        h, w, c = img.shape
        patched = use_patches(img.shape, self.prior_dirs)
        if not patched and c != 3:   # a single-image prior codes RGB: widen gray, drop alpha (as the CLI does)
            if c in (2, 4):
                warnings.append(f"{path.name}: alpha channel dropped (this prior codes colour only)")
            img = patch_codec.to_rgb(img)[0]
        too_large = None
        try:
            if patched:
                patch_codec.check_image(img)
            else:
                codec.check_image_shape(img.shape)
        except CombinerError as e:
            too_large = str(e)
            if not patched:
                too_large += "\n\nImages of any size need a patch prior, and none is installed."
        self.player.stop()
        self.path, self.image, self.result, self.decoded = path, img, None, None
        self.audio, self.decoded_audio = None, None
        self.audio_explorer.set_clip(None)
        self._set_modality("image")
        self.settings_panel.setVisible(True)
        self._image_tabs(True)
        self.settings_panel.set_image(path.name, img.shape, "<br>".join(warnings),
                                      alpha=alpha_bytes(img) if patched and too_large is None else b"")
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

    def _link_views(self, _index: int) -> None:
        """Linked zoom between the Result tab and the rate explorer: the tab being opened shows the same centre
        at the same zoom percentage as the tab being left (or the whole image), when both show the same
        image."""
        prev, cur = self._tab_shown, self.tabs.currentWidget()
        self._tab_shown = cur
        views = {self.result_view: (self.result_view.view_state, self.result_view.set_view_state),
                 self.explorer: (self.explorer.split.view_state, self.explorer.split.set_view_state)}
        if prev is cur or prev not in views or cur not in views:
            return
        if self.result_view.split.shape is None or self.result_view.split.shape != self.explorer.split.shape:
            return
        views[cur][1](views[prev][0]())

    def _image_tabs(self, enabled: bool) -> None:
        """Live coding and Explore rates belong to an opened image or clip, not to an opened .cmb."""
        for w in (self.live, self.explorer, self.audio_explorer):
            self.tabs.setTabEnabled(self.tabs.indexOf(w), enabled)

    def _set_modality(self, modality: str) -> None:
        """Show the result and explorer tabs of one modality and hide the other's."""
        audio = modality == "audio"
        for w, show in ((self.result_view, not audio), (self.explorer, not audio),
                        (self.audio_result, audio), (self.audio_explorer, audio)):
            self.tabs.setTabVisible(self.tabs.indexOf(w), show)
        self.export_action.setText("&Export decoded WAV…" if audio else "&Export decoded PNG…")

    def _open_audio(self, path: Path) -> None:
        from .worker import preload_measures
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            preload_measures()    # once per session: STOI's SciPy import holds the GIL for seconds; here, not mid-job
            x, sr, warnings = read_audio(path)
        finally:
            QApplication.restoreOverrideCursor()
        clip = AudioClip(x, sr, warnings)
        self.player.stop()
        self.path, self.image, self.audio, self.result = path, None, clip, None
        self.decoded, self.decoded_audio = None, None
        self.explorer.set_image(None)
        self.audio_explorer.set_clip(clip)
        self._set_modality("audio")
        self.settings_panel.setVisible(True)
        self._image_tabs(True)
        self.settings_panel.set_audio(path.name, clip, "<br>".join(warnings))
        self.settings_panel.compress_button.setEnabled(True)
        self.live.start(clip)
        self.live.timer.stop()
        self.live.phase_label.setText("Waiting for an encode")
        self.audio_result.set_signals(None, x, sr, alone="original")
        self.audio_result.title.setText(f"Original {path.name} — press Compress")
        self.audio_result.show_fields({"Duration": f"{clip.seconds:.2f} s", "Sample rate": f"{sr} Hz",
                                       "Channels": str(clip.channels)})
        self.audio_result.save_button.setVisible(False)
        self.audio_result.export_button.setVisible(False)
        self._playable()
        self.tabs.setCurrentWidget(self.audio_result)
        self.pages.setCurrentWidget(self.workspace)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(False)
        ch = "mono" if clip.channels == 1 else f"{clip.channels} channels"
        self.status_label.setText(f"Opened {path.name} ({clip.seconds:.2f} s, {sr} Hz, {ch})")

    def _show_original(self, img: np.ndarray, keep_roi: bool = False) -> None:
        """Before any encode, the result tab shows the opened image alone."""
        from .image_panels import show_rgb
        rv = self.result_view
        if not keep_roi or rv.roi.mask is None or rv.roi.mask.shape != img.shape[:2]:
            rv.roi.reset(*img.shape[:2])
        rv.pages.setCurrentWidget(rv.single)
        show_rgb(rv.dec_item, img)
        rv.dec_label.setText("Original — press Compress")
        rv.dec_box.autoRange(padding=0)
        rv._show_fields({"Size": f"{img.shape[1]}×{img.shape[0]}×{img.shape[2]}"})
        rv.show_allocation(None)
        rv.save_button.setVisible(False)
        rv.export_button.setVisible(False)

    def _open_cmb(self, path: Path) -> None:
        """Check the container on the spot (cheap), then decode in the worker with progress."""
        data = path.read_bytes()
        try:
            header, _ = container.read(data)   # checks the checksum and the fields before any work starts
        except CombinerError as e:
            raise CombinerError(self._cmb_message(str(e), path)) from None
        self._decode_path, self._decode_t0 = path, time.perf_counter()
        self.status_label.setText(f"Decoding {path.name}…")
        # patch images report patches rendered, audio its sounding units; a one-network image is one step
        self._decode_what = "units" if header.modality == "audio" else "patches"
        total = 0
        if header.modality == "audio" or header.patch:
            total = int(np.count_nonzero(np.asarray(header.unit_blocks))) if header.modality == "audio" else \
                int(header.units)
        self.job_bar.setRange(0, total)
        self.job_bar.setValue(0)
        self.job_bar.setFormat(f"decoding %v/%m {self._decode_what}")
        self.job_bar.setVisible(True)
        self.decoder.start(data, self.prior_dirs)

    def _cmb_message(self, msg: str, path: Path | None = None) -> str:
        path = path or self._decode_path
        out = msg if path is None or str(path) in msg else f"{path}: {msg}"
        if "prior" in msg.lower() and ("not installed" in msg.lower() or "no prior" in msg.lower()
                                       or "not found" in msg.lower()):
            out += PRIOR_HINT
        return out

    def _on_decode_progress(self, done: int, total: int) -> None:
        self.job_bar.setRange(0, total)
        self.job_bar.setValue(done)
        self.job_bar.setFormat(f"decoding %v/%m {getattr(self, '_decode_what', 'patches')}")

    def _on_decode_done(self, cancelled: bool) -> None:
        self.job_bar.setVisible(False)
        if cancelled:
            self.status_label.setText("Decoding cancelled")
        self.decode_finished.emit(cancelled)
        self._maybe_close()

    def _on_decoded(self, d: Decoded) -> None:
        path = self._decode_path
        if d.modality == "audio":
            self._open_audio_cmb(path, d)
        else:
            self._show_image_cmb(path, d)
        self._opened(path)

    def _show_image_cmb(self, path: Path, d: Decoded) -> None:
        img, header, prior = d.signal, d.header, d.prior
        self.player.stop()
        self.path, self.image, self.result = path, None, None
        self.audio, self.decoded_audio = None, None
        self.decoded = (img, header, prior, d.nbytes)
        self.explorer.set_image(None)
        self.audio_explorer.set_clip(None)
        self._set_modality("image")
        self.settings_panel.setVisible(False)
        self._image_tabs(False)
        self.result_view.show_decoded(img, header, prior, d.nbytes, path.name, d.seconds)
        self.result_view.export_button.setVisible(True)
        self.tabs.setCurrentWidget(self.result_view)
        self.pages.setCurrentWidget(self.workspace)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(True)
        self.status_label.setText(f"Decoded {path.name}: {d.nbytes} bytes in {d.seconds:.2f} s")

    def _open_audio_cmb(self, path: Path, d: Decoded) -> None:
        y, sr, header, prior, nbytes = d.signal, d.sample_rate, d.header, d.prior, d.nbytes
        self.player.stop()
        self.path, self.image, self.audio, self.result, self.decoded = path, None, None, None, None
        self.decoded_audio = (y, sr, header, prior, nbytes)
        self.explorer.set_image(None)
        self.audio_explorer.set_clip(None)
        self._set_modality("audio")
        self.settings_panel.setVisible(False)
        self._image_tabs(False)
        n, c, _ = header.shape
        seconds = n / sr
        view = self.audio_result
        view.set_signals(None, y, sr, nbytes, alone="decoded")
        view.title.setText(f"Decoded {path.name}")
        view.show_fields({"Modality": header.modality, "Samples": f"{n} ({seconds:.2f} s)", "Channels": str(c),
                          "Sample rate": f"{sr} Hz", "Prior": prior.name, "Prior id": header.prior_id.hex(),
                          "Units": _units_text(header),
                          "Bytes": str(nbytes), "Rate": f"{8 * nbytes / seconds / 1000:.2f} kbps",
                          "Decode time": f"{d.seconds:.2f} s"})
        view.save_button.setVisible(False)
        view.export_button.setVisible(True)
        self._playable()
        self.tabs.setCurrentWidget(view)
        self.pages.setCurrentWidget(self.workspace)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(True)
        self.status_label.setText(f"Decoded {path.name}: {nbytes} bytes, {seconds:.2f} s of audio, in "
                                  f"{d.seconds:.2f} s")

    # -- encoding -------------------------------------------------------------------------------------
    def _current_settings(self):
        """-> (FitConfig, device, audio's delta choice) as the panel shows them now."""
        sp = self.settings_panel
        return sp.fit_config(), sp.device.currentText(), sp.adapt()

    def compress(self) -> None:
        source = self.audio if self.audio is not None else self.image
        if source is None or self.busy():
            return
        if not self._may_discard("Compress again"):
            return
        fit, device, adapt = self._current_settings()
        self._encode_adapt = adapt                 # False for images (SettingsPanel.adapt)
        self._stop_probe()
        self.result = None
        self.settings_panel.set_running(True)
        self.explorer.explore_button.setEnabled(False)
        self.audio_explorer.explore_button.setEnabled(False)
        self.save_action.setEnabled(False)
        self.export_action.setEnabled(False)
        self.player.stop()
        self.live.start(source)
        self.live.set_fit(fit, device, *self._cost_model(device), tail_per_size=self._overheads(device)[1])
        plan = self.settings_panel._plan   # the worker's plan too (same computation): laid out before the show
        if plan is not None and plan.modality == ("audio" if self.audio is not None else "image"):
            self.live.set_plan(plan)
        self.status_label.setText("Compressing…")
        self.setWindowTitle(f"{self.path.name} — compressing… — {APP_TITLE}")
        self._encode_t0 = time.perf_counter()
        self._marks = {}        # first and last progress event, result: the time outside the steps
        # with the classical codecs at the same size (the split view and the table); made in the worker
        importance = None
        if self.audio is None and self.live_is_patched():
            plan_grid = self._patch_grid()
            importance = self.result_view.roi.weights(plan_grid) if plan_grid else None
        self.settings_panel.roi_check.setChecked(False)
        args = (source, [self.settings_panel.rate()], fit, device, self.prior_dirs)
        self._pending_encode = dict(args=args, importance=importance, adapt=self._encode_adapt)
        self._show_tab_soon(self.live)

    def _show_tab_soon(self, widget) -> None:
        """Switch to a tab on a later turn of the event loop. Its layout (show and resize events of every plot)
        and then its first paint each get a turn of their own instead of adding to the handler that filled it:
        together they were the window's longest stalls (the Live tab after Compress, the Result tab after an
        encode). A Compress's worker starts only after the Live tab's first paint."""
        self._tab_soon = widget
        QTimer.singleShot(1, self._show_tab_now)

    def _show_tab_now(self) -> None:
        widget, self._tab_soon = self._tab_soon, None
        if widget is not None:
            self.tabs.setCurrentWidget(widget)
            if widget is self.live and self._pending_encode is not None:
                self.live.after_paint(self._start_encode)
        if self._done_soon is not None:      # the encode ended while its result waited to be shown
            cancelled, self._done_soon = self._done_soon, None
            QTimer.singleShot(1, lambda: self._on_encode_done(cancelled))

    def _start_encode(self) -> None:
        job, self._pending_encode = self._pending_encode, None
        if job is None:
            return
        if self._closing or job.get("cancelled"):
            self._on_encode_done(True)
            return
        self.runner.start(*job["args"], references=True, importance=job["importance"], journal_dir=self.journal_dir,
                          adapt=job["adapt"])

    def live_is_patched(self) -> bool:
        return self.image is not None and use_patches(self.image.shape, self.prior_dirs)

    def _patch_grid(self) -> int:
        p = self.settings_panel._plan
        return p.patch if p is not None and p.patch else 0

    def _paint_roi(self, on: bool) -> None:
        """Show the original in the Result tab with the paintable region over it."""
        if self.image is None:
            return
        if on:
            self._show_original(self.image, keep_roi=True)
            self.result_view.dec_label.setText("Paint the region that should get more bits (drag; the wheel "
                                               "zooms)")
            self.tabs.setCurrentWidget(self.result_view)
        self.result_view.roi.enable(on)

    def cancel(self) -> None:
        if self._pending_encode is not None:
            self._pending_encode["cancelled"] = True
        self.runner.cancel()
        self.status_label.setText("Cancelling…")

    def _on_planned(self, i: int, plan: EncodePlan) -> None:
        self.live.set_plan(plan)

    def _on_progress(self, i: int, ev) -> None:
        now = time.perf_counter()
        self._marks.setdefault("first", now)
        self._marks["last"] = now
        self.live.add_event(ev)

    def _on_encoded(self, i: int, res: EncodeResult) -> None:
        self._marks["encoded"] = time.perf_counter()
        self.result = res
        self.saved = False
        self.live.finish(res)
        if self.audio is not None:
            self._show_audio_result(res)
            return
        self.result_view.show_encoded(self.image, res)
        self.result_view.export_button.setVisible(True)
        self._show_tab_soon(self.result_view)
        self.save_action.setEnabled(True)
        self.export_action.setEnabled(True)
        enc = res.encoded
        warns = getattr(enc, "warnings", None)
        note = f" ({'; '.join(warns)})" if warns else ""
        note += _resumed_note(res)
        self.status_label.setText(f"Finished: {len(enc.data)} bytes ({enc.bpp:.3f} bpp), PSNR {enc.psnr:.2f} dB, "
                                  f"MS-SSIM {fmt(res.metrics.get('ms_ssim'), 4)} in {res.seconds:.1f} s — not "
                                  f"saved yet{note}")

    def _show_audio_result(self, res: EncodeResult) -> None:
        enc, clip = res.encoded, self.audio
        view = self.audio_result
        view.set_signals(clip.samples, enc.reconstruction, clip.sample_rate, len(enc.data))
        view.title.setText(f"{self.path.name}: original, decoded and difference")
        m = res.metrics
        view.show_fields({"File size": f"{len(enc.data)} bytes", "Rate": f"{enc.kbps:.2f} kbps",
                          "PSNR": f"{enc.psnr:.2f} dB", "SNR": f"{enc.snr:.2f} dB",
                          "STOI": fmt(m.get("stoi"), 3), "PESQ": fmt(m.get("pesq"), 2),
                          "Encode time": f"{res.seconds:.1f} s", "Prior": enc.prior.name,
                          "Units": _units_text(enc.header),
                          "Duration": f"{enc.seconds:.2f} s", "Sample rate": f"{enc.sample_rate} Hz"})
        view.save_button.setVisible(True)
        view.export_button.setVisible(True)
        self._playable()
        self.tabs.setCurrentWidget(view)
        self.save_action.setEnabled(True)
        self.export_action.setEnabled(True)
        note = f" ({'; '.join(enc.warnings)})" if enc.warnings else ""
        note += _resumed_note(res)
        self.status_label.setText(f"Finished: {len(enc.data)} bytes ({enc.kbps:.2f} kbps), PSNR "
                                  f"{enc.psnr:.2f} dB, SNR {enc.snr:.2f} dB, STOI {fmt(m.get('stoi'), 3)}, PESQ "
                                  f"{fmt(m.get('pesq'), 2)} in {res.seconds:.1f} s — not saved yet{note}")

    def _playable(self) -> None:
        """Hand the player every version of the current clip: original, decoded, Opus and MP3."""
        sources, sr = {}, 0
        if self.audio is not None:
            sources["original"], sr = self.audio.samples, self.audio.sample_rate
        dec = self.decoded_audio_signal()
        if dec is not None:
            sources["decoded"], sr = dec
        if self.result is not None and self.audio is not None:
            for ref in self.result.references:
                sources[ref.codec] = ref.decoded
        self.player.set_sources(sources, sr or 1)
        self.audio_result.set_sources(sources)

    def play(self, which: str) -> None:
        """Play one version; while one plays, another continues from the same position (A/B)."""
        if self.player.current:
            self.player.switch(which)
        else:
            self.player.play(which)
        if not self.player.available():
            self.audio_result.set_playable(False, self.player.reason)

    def play_ab(self) -> None:
        self.play("decoded" if self.player.current == "original" else "original")

    def _on_encode_done(self, cancelled: bool) -> None:
        if self._tab_soon is not None:    # the result is shown first (encode_finished: it is on screen)
            self._done_soon = cancelled
            return
        self.live.stop()
        self.settings_panel.set_running(False)
        self.explorer.explore_button.setEnabled(self.explorer.image is not None)
        self.audio_explorer.explore_button.setEnabled(self.audio_explorer.clip is not None)
        if cancelled and self.runner.kept is not None:
            done, total = self.runner.kept
            self.live.phase_label.setText(f"Cancelled — {done} of {total} batches kept to continue later")
            what = "clip" if self.audio is not None else "image"
            self.status_label.setText(f"Cancelled; no file was written. {done} of {total} batches are kept: compress "
                                      f"this {what} again at the same rate and settings to continue from them")
        elif cancelled:
            self.live.phase_label.setText("Cancelled — nothing was written")
            self.status_label.setText("Cancelled; nothing was written")
        if self.path is not None:
            self.setWindowTitle(f"{self.path.name} — {APP_TITLE}")
        if not cancelled and self.result is not None and self._encode_adapt != EITHER:   # one encode's cost
            self._learn_costs()
        if self.result is not None or cancelled:
            self._job_finished("Compression", cancelled)
        self.encode_finished.emit(cancelled)
        self._maybe_close()

    def _job_finished(self, what: str, cancelled: bool) -> None:
        """Say clearly that a long job has ended: window title, taskbar alert, a notification where there is
        a system tray."""
        if self._closing or cancelled:
            return
        name = self.path.name if self.path else ""
        self.setWindowTitle(f"✓ {name} — {what.lower()} finished — {APP_TITLE}")
        QApplication.alert(self)
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self.tray is None:
                self.tray = QSystemTrayIcon(self.windowIcon(), self)
                self.tray.setIcon(self.style().standardIcon(self.style().StandardPixmap.SP_DialogApplyButton))
                self.tray.show()
            self.tray.showMessage(APP_TITLE, f"{what} of {name} finished.")

    def _on_explorer_busy(self, busy: bool) -> None:
        self.settings_panel.compress_button.setEnabled(not busy and (self.image is not None or
                                                                     self.audio is not None))
        if not busy:
            self._maybe_close()

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
        self.saved = True
        if self.path is not None:
            self.setWindowTitle(f"{self.path.name} — {APP_TITLE}")
        self.status_label.setText(f"Saved {path} ({len(self.result.encoded.data)} bytes)")
        self.recent.add(str(path))
        return True

    def decoded_image(self) -> np.ndarray | None:
        if self.result is not None and self.audio is None:
            return self.result.encoded.reconstruction
        return self.decoded[0] if self.decoded else None

    def decoded_audio_signal(self) -> tuple[np.ndarray, int] | None:
        """(samples (N, C), sample rate) of the encode result or the opened audio .cmb."""
        if self.result is not None and self.audio is not None:
            return self.result.encoded.reconstruction, self.audio.sample_rate
        return (self.decoded_audio[0], self.decoded_audio[1]) if self.decoded_audio else None

    def export_dialog(self) -> None:
        if self.decoded_audio_signal() is not None:
            stem = self.path.stem if self.path else "decoded"
            start = (self.path.parent if self.path else Path.cwd()) / f"{stem}_decoded.wav"
            path, _ = QFileDialog.getSaveFileName(self, "Export decoded audio", str(start),
                                                  "WAV audio (*.wav);;FLAC audio (*.flac)")
            if path:
                self.export_audio(path)
            return
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

    def export_audio(self, path: str | os.PathLike) -> bool:
        """Decoded audio as 16-bit WAV (or FLAC by suffix), never over the input file."""
        sig = self.decoded_audio_signal()
        if sig is None:
            return False
        try:
            media.write_atomic(path, audio_file_bytes(sig[0], sig[1], Path(path).suffix), protect=self._protected())
        except CombinerError as e:
            self.show_error("Cannot export", str(e))
            return False
        self.status_label.setText(f"Exported {path}")
        return True

    # -- closing --------------------------------------------------------------------------------------
    def _runners(self) -> list:
        return [self.runner, self.explorer.runner, self.audio_explorer.runner, self.decoder]

    def closeEvent(self, e) -> None:
        """Never destroys a running thread: with a job running, the close cancels it (the engine sees that
        within a fraction of a second) and the window closes when the job's `done` arrives."""
        if not self._closing and not self._may_discard("Close the window"):
            e.ignore()
            return
        if self.busy():
            if not self._closing:
                self._closing = True
                for r in self._runners():
                    r.cancel()
                self.status_label.setText("Closing: stopping the running job…")
                self.setWindowTitle(f"Closing… — {APP_TITLE}")
                self.closing.emit()
            e.ignore()
            return
        self.player.close()
        if self.tray is not None:
            self.tray.hide()
        super().closeEvent(e)

    def _maybe_close(self) -> None:
        if self._closing and not self.busy():
            QTimer.singleShot(0, self.close)

    def shutdown(self, timeout_ms: int = 60_000) -> bool:
        """Cancel every job and wait for its thread (the app's exit path and tests). -> all threads finished."""
        self._stop_probe()
        probe = self._probe_thread
        if probe is not None:
            probe.join(timeout_ms / 1000)
        if self._pending_encode is not None:   # Compress was pressed but the worker never started
            self._pending_encode = None
            self._tab_soon = None
            self._on_encode_done(True)
        if self._done_soon is not None:       # an encode's end waited for its result to be shown
            cancelled, self._done_soon, self._tab_soon = self._done_soon, None, None
            self._on_encode_done(cancelled)
        return all([r.shutdown(timeout_ms) for r in self._runners()])
