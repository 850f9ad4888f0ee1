"""The settings panel shown next to an opened image or audio clip: target rate (bpp for images, kbps for audio),
encoder preset, noise shaping and the clip delta's trial (audio), device, Compress/Cancel."""
from __future__ import annotations

import torch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPushButton, QVBoxLayout)

from engine.audio_codec import adapt_mode, delta_triable
from engine.config import PRESETS, FitConfig, perceptual
from engine.errors import CombinerError

from .plans import AudioClip, plan_audio, plan_image

__all__ = ["PRESETS", "SettingsPanel", "devices"]  # PRESETS: the same as `combiner encode --preset`

TRY_DELTA_TIP = ("Codes the clip twice, without and with a delta on the prior's shared network, and keeps the "
                 "file that decodes closer to the input (about twice the time; it helps clips the prior fits "
                 "badly). The file decodes as any other")


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class SettingsPanel(QGroupBox):
    compress_clicked = Signal()
    cancel_clicked = Signal()
    roi_toggled = Signal(bool)
    roi_cleared = Signal()

    def __init__(self, presets: dict[str, FitConfig] | None = None, prior_dirs=None, parent=None):
        super().__init__("Compress", parent)
        self.presets = dict(presets or PRESETS)
        self.prior_dirs = prior_dirs
        self.shape: tuple[int, int, int] | None = None
        self.alpha = b""                         # the image's alpha plane as the patch codec stores it
        self.clip: AudioClip | None = None      # set instead of `shape` for audio

        self.file_label = QLabel("")
        self.file_label.setWordWrap(True)
        self.bpp = QDoubleSpinBox()
        self.bpp.setObjectName("bppSpin")
        self.bpp.setRange(0.05, 12.0)
        self.bpp.setSingleStep(0.1)
        self.bpp.setDecimals(2)
        self.bpp.setValue(1.0)
        self.bpp.setSuffix(" bpp")
        self.bpp.setAcceptDrops(False)            # a dropped file goes to the window, not into the text
        self.bpp.lineEdit().setAcceptDrops(False)
        self.kbps = QDoubleSpinBox()
        self.kbps.setObjectName("kbpsSpin")
        self.kbps.setRange(0.5, 512.0)
        self.kbps.setSingleStep(1.0)
        self.kbps.setDecimals(1)
        self.kbps.setValue(10.0)
        self.kbps.setSuffix(" kbps")
        self.kbps.setAcceptDrops(False)
        self.kbps.lineEdit().setAcceptDrops(False)
        self.preset = QComboBox()
        self.preset.setObjectName("presetCombo")
        self.preset.addItems(list(self.presets))
        if "default" in self.presets:
            self.preset.setCurrentText("default")
        self.perceptual = QCheckBox("Shape the noise for listening")
        self.perceptual.setObjectName("perceptualCheck")
        self.perceptual.setToolTip("Speech-codec noise shaping: the coding noise follows the formants of the speech. "
                                   "Higher PESQ and STOI, lower SNR; the file decodes as any other")
        self.try_delta = QCheckBox("Also try a network delta for the clip")
        self.try_delta.setObjectName("tryDeltaCheck")
        self.try_delta.setToolTip(TRY_DELTA_TIP)
        self._delta_possible = False            # the encoder would code this clip a second time, with a delta
        self.device = QComboBox()
        self.device.setObjectName("deviceCombo")
        self.device.addItems(devices())
        self.plan_label = QLabel("")
        self.plan_label.setWordWrap(True)
        self.plan_label.setObjectName("planLabel")

        self.compress_button = QPushButton("Compress")
        self.compress_button.setObjectName("compressButton")
        self.compress_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.compress_button.clicked.connect(self.compress_clicked)
        self.cancel_button.clicked.connect(self.cancel_clicked)

        form = QFormLayout()
        self.form = form
        form.addRow("Target rate", self.bpp)
        form.addRow("Target rate", self.kbps)
        form.setRowVisible(self.kbps, False)
        form.addRow("Encoder effort", self.preset)
        form.addRow("", self.perceptual)
        form.setRowVisible(self.perceptual, False)
        form.addRow("", self.try_delta)
        form.setRowVisible(self.try_delta, False)
        form.addRow("Device", self.device)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compress_button)
        buttons.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.file_label)
        lay.addLayout(form)
        lay.addWidget(self.plan_label)
        lay.addLayout(buttons)
        lay.addStretch(1)
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("estimateLabel")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setStyleSheet("color: #556")
        lay.insertWidget(lay.indexOf(self.plan_label) + 1, self.estimate_label)
        self.roi_check = QCheckBox("Paint a region of interest (more bits there)")
        self.roi_check.setObjectName("roiCheck")
        self.roi_check.setToolTip("Drag over the image in the Result tab; the painted patches get more blocks")
        self.roi_clear = QPushButton("Clear region")
        self.roi_clear.setObjectName("roiClear")
        self.roi_check.toggled.connect(self.roi_toggled)
        self.roi_clear.clicked.connect(self.roi_cleared)
        roi_row = QHBoxLayout()
        roi_row.addWidget(self.roi_check)
        roi_row.addWidget(self.roi_clear)
        lay.insertLayout(lay.indexOf(self.estimate_label) + 1, roi_row)
        self._show_roi(False)
        self.estimate = None        # (EncodePlan) -> text, set by the main window (its cost model)
        self._plan = None
        self.bpp.valueChanged.connect(self._update_plan)
        self.kbps.valueChanged.connect(self._update_plan)
        self.preset.currentTextChanged.connect(lambda _: self.refresh_estimate())
        self.try_delta.toggled.connect(lambda _: self.refresh_estimate())   # twice the work when ticked
        self.device.currentTextChanged.connect(lambda _: self.refresh_estimate())

    def _audio_mode(self, audio: bool) -> None:
        self.form.setRowVisible(self.bpp, not audio)
        self.form.setRowVisible(self.kbps, audio)
        self.form.setRowVisible(self.perceptual, audio)
        self.form.setRowVisible(self.try_delta, audio)

    def rate(self) -> float:
        """The target rate in the opened file's unit (kbps for audio, bpp for images)."""
        return self.kbps.value() if self.clip is not None else self.bpp.value()

    def set_image(self, name: str, shape: tuple[int, int, int], note: str = "", alpha: bytes = b"") -> None:
        """`alpha`: `plans.alpha_bytes(image)` for 2/4-channel images (it counts in a patch-coded file)."""
        self.shape, self.clip, self.alpha = tuple(shape), None, alpha
        self._audio_mode(False)
        h, w, c = shape
        kind = {1: "gray", 2: "gray + alpha", 3: "RGB", 4: "RGB + alpha"}.get(c, f"{c} channels")
        self.file_label.setText(f"<b>{name}</b><br>{w}×{h}, {kind}" + (f"<br>{note}" if note else ""))
        self._update_plan()

    def set_audio(self, name: str, clip: AudioClip, note: str = "") -> None:
        self.shape, self.clip = None, clip
        self._audio_mode(True)
        ch = "mono" if clip.channels == 1 else f"{clip.channels} channels"
        self.file_label.setText(f"<b>{name}</b><br>{clip.seconds:.2f} s, {clip.sample_rate} Hz, {ch}"
                                + (f"<br>{note}" if note else ""))
        self._update_plan()

    def fit_config(self) -> FitConfig:
        """The chosen preset, with the noise-shaping filter for audio when it is ticked."""
        fit = self.presets[self.preset.currentText()]
        if self.clip is not None and self.perceptual.isChecked():
            fit = perceptual(fit)
        return fit

    def adapt(self) -> bool | str:
        """`encode_audio`'s `adapt` for the ticked choice: audio.EITHER to try the clip delta, else False."""
        return adapt_mode(None, self.clip is not None and self._delta_possible and self.try_delta.isChecked())

    def _show_delta(self, possible: bool) -> None:
        self._delta_possible = possible
        self.try_delta.setEnabled(possible and self.compress_button.isEnabled())
        self.try_delta.setToolTip(TRY_DELTA_TIP + ("" if possible else "\n(not here: the rate's prior has no shared "
                                                   "network, or the clip is longer than one encoder batch)"))

    def _update_plan(self) -> None:
        if self.shape is None and self.clip is None:
            return
        try:
            if self.clip is not None:
                p = plan_audio(self.clip, self.kbps.value(), self.prior_dirs)
            else:
                p = plan_image(self.shape, self.bpp.value(), self.prior_dirs, alpha=self.alpha)
        except CombinerError as e:
            self.plan_label.setText(f"<span style='color:#b00'>{e}</span>")
            self._plan = None
            self.refresh_estimate()
            return
        self._plan = p
        self._show_roi(bool(p.patch))
        self._show_delta(p.modality == "audio" and delta_triable(p.units, p.prior))
        self.refresh_estimate()
        if p.modality == "audio":
            kbps = p.file_bits / 1000.0 / self.clip.seconds
            warn = "".join(f"<br><span style='color:#a60'>{w}</span>" for w in p.warnings)
            self.plan_label.setText(f"Prior <b>{p.prior.name}</b> (trained at {p.prior.rate:g} kbps)<br>"
                                    f"{p.units} units × {p.n_blocks} blocks × κ={p.kappa} bits<br>"
                                    f"→ {p.file_bits // 8} bytes ({kbps:.2f} kbps)" + warn)
            return
        if p.patch:
            rows, cols = p.grid
            warn = "".join(f"<br><span style='color:#a60'>{w}</span>" for w in p.warnings)
            self.plan_label.setText(f"Prior <b>{p.prior.name}</b> (patches, trained at {p.prior.rate:g} bpp)<br>"
                                    f"{cols}×{rows} patches of {p.patch}×{p.patch}, {p.total_blocks} blocks "
                                    f"× κ={p.kappa} bits shared out by content<br>"
                                    f"→ about {p.file_bits // 8} bytes" + warn)
            return
        self.plan_label.setText(f"Prior <b>{p.prior.name}</b> (trained at {p.prior.rate:g} bpp)<br>"
                                f"{p.n_blocks} blocks × κ={p.kappa} bits → {p.file_bits // 8} bytes")

    def _show_roi(self, show: bool) -> None:
        self.roi_check.setVisible(show)
        self.roi_clear.setVisible(show)
        if not show and self.roi_check.isChecked():
            self.roi_check.setChecked(False)

    def refresh_estimate(self) -> None:
        if self.estimate is None or self._plan is None:
            self.estimate_label.setText("")
            return
        self.estimate_label.setText(self.estimate(self._plan))

    def set_running(self, running: bool) -> None:
        for w in (self.bpp, self.kbps, self.preset, self.perceptual, self.device, self.compress_button,
                  self.roi_check, self.roi_clear):
            w.setEnabled(not running)
        self.try_delta.setEnabled(not running and self._delta_possible)
        self.cancel_button.setEnabled(running)
