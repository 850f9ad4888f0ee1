"""Result of an encode (a split view with a draggable divider — original | decoded, or decoded | JPEG / WebP /
AVIF at the same file size — and a side-by-side page of original | reconstruction | error map, all with one
zoom/pan; the numbers, PSNR and MS-SSIM beside the classical codecs; Save/Export) or of an opened .cmb file
(decoded image, header fields and decode time). Images may have 1 to 4 channels (gray is shown as gray, alpha
over a checkerboard); a patch-coded image also gets a small map of the blocks each patch got."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedWidget, QTabWidget, QVBoxLayout, QWidget

from engine.metrics import fmt

from .compare import SplitCompare, box_state, set_box_state
from .image_panels import image_box, link, show_rgb
from .roi import RoiLayer


def error_map(original: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Absolute difference per pixel, averaged over the colour channels (alpha is lossless), in 8-bit levels."""
    c = original.shape[2]
    n = 1 if c <= 2 else 3
    return np.abs(original[:, :, :n].astype(np.float32) - recon[:, :, :n].astype(np.float32)).mean(axis=2)


def block_grid(header) -> np.ndarray | None:
    """Blocks of every patch of a patch-coded image's header as its (rows, cols) patch grid, or None."""
    if not header.patch:
        return None
    h, w, _ = header.shape
    rows, cols = -(-h // header.patch), -(-w // header.patch)
    return np.asarray(header.unit_blocks, dtype=np.float32).reshape(rows, cols)


def patch_fields(header) -> dict[str, str]:
    """Header fields of a patch-coded image: patches and the blocks they got."""
    ub = header.unit_blocks
    h, w, _ = header.shape
    rows, cols = -(-h // header.patch), -(-w // header.patch)
    out = {"Patches": f"{cols}×{rows} of {header.patch}×{header.patch}",
           "Blocks": f"{sum(ub)} × κ={header.kappa} ({min(ub)}–{max(ub)} per patch)"}
    if getattr(header, "floors", None) is not None:
        from engine.image_floors import summary

        out["Spectral floors"] = summary(header.floors)
    if getattr(header, "wiener", None) is not None:
        from engine.image_wiener import summary as wiener_summary

        out["Wiener filters"] = wiener_summary(header.wiener)
    if header.alpha:
        out["Alpha"] = f"{len(header.alpha)} bytes, lossless"
    return out


def allocation_without_region(result) -> np.ndarray | None:
    """For an encode with a painted region: the blocks per patch the same content probe gives without it
    (engine.patch_codec.allocate, as the encoder calls it for one batch), as the (rows, cols) grid."""
    enc = result.encoded
    probe = getattr(enc, "probe_kl_bits", None)
    if not getattr(result, "importance_used", False) or probe is None or not enc.header.patch:
        return None
    from engine import patch_codec
    from engine.patch_codec import MAX_UNITS
    if len(probe) > MAX_UNITS:     # coded in several batches, each with its own share: not reproduced here
        return None
    n = patch_codec.allocate(probe, int(np.sum(enc.unit_blocks)), enc.prior.n_params)
    grid = block_grid(enc.header)
    return n.reshape(grid.shape)


def equal_size_table(rows) -> str:
    """[(codec, bytes, bpp, PSNR dB, MS-SSIM or None, note)] -> an HTML table."""
    cell = "<td style='padding:0 8px'>{}</td>"
    html = "<table><tr>" + "".join(f"<th style='padding:0 8px'>{h}</th>" for h in
                                   ("codec", "bytes", "bpp", "PSNR (dB)", "MS-SSIM", "")) + "</tr>"
    for name, nb, bpp, ps, ms, note in rows:
        html += "<tr>" + "".join(cell.format(v) for v in (f"<b>{name}</b>", nb, f"{bpp:.3f}", f"{ps:.2f}",
                                                            fmt(ms, 4), note)) + "</tr>"
    return html + "</table>"


class ResultView(QWidget):
    save_requested = Signal()
    export_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setObjectName("resultGraphics")
        self.orig_box, self.orig_item, self.orig_label = image_box(self.graphics, 0, 0, "Original")
        self.rec_box, self.rec_item, self.rec_label = image_box(self.graphics, 0, 1, "Reconstruction")
        self.err_box, self.err_item, self.err_label = image_box(self.graphics, 0, 2, "|error| (8-bit levels)")
        self.cmap = pg.colormap.get("inferno")
        self.err_item.setColorMap(self.cmap)
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=self.cmap, interactive=False, width=14)
        self.colorbar.setImageItem(self.err_item)
        self.graphics.addItem(self.colorbar, row=0, col=3)
        link([self.rec_box, self.orig_box, self.err_box])
        for col in range(3):   # equal panels, so linked views show the same region at the same scale
            self.graphics.ci.layout.setColumnStretchFactor(col, 1)
            self.graphics.ci.layout.setColumnPreferredWidth(col, 10)
        self.split = SplitCompare()
        self.split.setObjectName("resultSplit")
        self.compare = QTabWidget()
        self.compare.setObjectName("compareTabs")
        self.compare.addTab(self.split, "Split view")
        self.compare.addTab(self.graphics, "Side by side, with the error")
        # one zoom for both pages: the region in view carries over when switching (a live link to views on a
        # hidden page would fight their aspect locks)
        self.compare.currentChanged.connect(self._carry_zoom)
        self.single = pg.GraphicsLayoutWidget()
        self.single.setObjectName("decodedGraphics")
        self.dec_box, self.dec_item, self.dec_label = image_box(self.single, 0, 0, "Decoded")
        self.roi = RoiLayer(self.dec_box)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.compare)
        self.pages.addWidget(self.single)
        # blocks per patch of a patch-coded image (content-adaptive allocation); hidden otherwise
        self.alloc = pg.GraphicsLayoutWidget()
        self.alloc.setObjectName("allocMap")
        self.alloc.setFixedSize(260, 170)
        self.alloc_label = self.alloc.addLabel("Blocks per patch", row=0, col=0)
        self.alloc_box = self.alloc.addViewBox(row=1, col=0, invertY=True, lockAspect=True, enableMenu=False)
        self.alloc_box.setMouseEnabled(False, False)
        self.alloc_item = pg.ImageItem()
        self.alloc_item.setColorMap(pg.colormap.get("viridis"))
        self.alloc_box.addItem(self.alloc_item)
        self.alloc.setVisible(False)
        # with a region of interest: what the allocation would have been without it (same content probe)
        self.alloc_before = pg.GraphicsLayoutWidget()
        self.alloc_before.setObjectName("allocBefore")
        self.alloc_before.setFixedSize(260, 170)
        self.alloc_before_label = self.alloc_before.addLabel("Without the region", row=0, col=0)
        self.alloc_before_box = self.alloc_before.addViewBox(row=1, col=0, invertY=True, lockAspect=True,
                                                             enableMenu=False)
        self.alloc_before_box.setMouseEnabled(False, False)
        self.alloc_before_item = pg.ImageItem()
        self.alloc_before_item.setColorMap(pg.colormap.get("viridis"))
        self.alloc_before_box.addItem(self.alloc_before_item)
        self.alloc_before.setVisible(False)

        self.stats = QLabel("")
        self.stats.setObjectName("resultStats")
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.stats.setWordWrap(True)
        self.save_button = QPushButton("Save .cmb…")
        self.save_button.setObjectName("saveButton")
        self.export_button = QPushButton("Export decoded PNG…")
        self.export_button.setObjectName("exportButton")
        self.save_button.clicked.connect(self.save_requested)
        self.export_button.clicked.connect(self.export_requested)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.export_button)
        buttons.addStretch(1)
        self.table = QLabel("")
        self.table.setObjectName("resultTable")
        self.table.setTextFormat(Qt.TextFormat.RichText)
        self.table.setVisible(False)
        bottom = QHBoxLayout()
        text = QVBoxLayout()
        text.addWidget(self.stats)
        text.addWidget(self.table)
        bottom.addLayout(text, 1)
        bottom.addWidget(self.alloc_before)
        bottom.addWidget(self.alloc)
        lay = QVBoxLayout(self)
        lay.addWidget(self.pages, 1)
        lay.addLayout(bottom)
        lay.addLayout(buttons)
        self.fields: dict[str, str] = {}

    def _carry_zoom(self, index: int) -> None:
        if self.split.shape is None:
            return
        src, dst = (self.split.box, self.orig_box) if self.compare.widget(index) is self.graphics else \
            (self.orig_box, self.split.box)
        dst.setRange(rect=src.viewRect(), padding=0)

    def view_state(self):
        """The split view's zoom and centre (`SplitCompare.view_state`) on the comparison page shown; the side
        by side page carries its region into the split view first. None on the single decoded view."""
        if self.pages.currentWidget() is not self.compare or self.split.shape is None:
            return None
        if self.compare.currentWidget() is self.graphics:
            return box_state(self.orig_box, self.split.shape)
        return self.split.view_state()

    def set_view_state(self, state) -> None:
        """Linked zoom with the rate explorer's split view (the main window carries it across tabs)."""
        if state is None or self.pages.currentWidget() is not self.compare or self.split.shape is None:
            return
        if self.compare.currentWidget() is self.graphics:
            set_box_state(self.orig_box, state, self.split.shape)   # its two neighbours are linked to it
        else:
            self.split.set_view_state(state)

    def _show_fields(self, fields: dict[str, str]) -> None:
        self.fields = fields
        self.stats.setText("&nbsp;&nbsp;&nbsp;".join(f"{k}: <b>{v}</b>" for k, v in fields.items()))

    def show_allocation(self, header, before: np.ndarray | None = None) -> None:
        """Map of the blocks every patch got (patch-coded images); hidden for other files. `before`: the (rows,
        cols) allocation without the painted region, shown beside it on the same colour scale."""
        grid = block_grid(header) if header is not None else None
        self.alloc.setVisible(grid is not None)
        self.alloc_before.setVisible(grid is not None and before is not None)
        if grid is None:
            self.alloc_item.clear()
            return
        lo, hi = float(grid.min()), float(grid.max())
        if before is not None:
            lo, hi = min(lo, float(before.min())), max(hi, float(before.max()))
            self.alloc_before_item.setImage(before.astype(np.float32), autoLevels=False,
                                            levels=(lo, hi if hi > lo else lo + 1))
            self.alloc_before_label.setText(f"Without the region ({int(before.min())}–{int(before.max())})")
            self.alloc_before_box.autoRange(padding=0)
        self.alloc_item.setImage(grid, autoLevels=False, levels=(lo, hi if hi > lo else lo + 1))
        self.alloc_label.setText(("With the region: " if before is not None else "Blocks per patch ")
                                 + f"({int(grid.min())}–{int(grid.max())})")
        self.alloc_box.autoRange(padding=0)

    def show_encoded(self, original: np.ndarray, result) -> None:
        """`result` is a worker.EncodeResult."""
        enc = result.encoded
        self.pages.setCurrentWidget(self.compare)
        show_rgb(self.orig_item, original)
        show_rgb(self.rec_item, enc.reconstruction)
        err = error_map(original, enc.reconstruction)
        vmax = max(1.0, float(np.ceil(err.max())))
        self.err_item.setImage(err, autoLevels=False, levels=(0, vmax))
        self.colorbar.setLevels((0, vmax))
        self.rec_label.setText(f"Reconstruction ({enc.bpp:.3g} bpp)")
        self.rec_box.autoRange(padding=0)
        h, w, c = enc.header.shape
        ms = result.metrics.get("ms_ssim")
        fields = {"File size": f"{len(enc.data)} bytes", "Rate": f"{enc.bpp:.3f} bpp",
                  "PSNR": f"{enc.psnr:.2f} dB", "MS-SSIM": fmt(ms, 4), "Encode time": f"{result.seconds:.1f} s",
                  "Prior": enc.prior.name, "Blocks": f"{enc.header.n_blocks} × κ={enc.header.kappa}",
                  "Size": f"{w}×{h}×{c}"}
        if enc.header.patch:
            fields.update(patch_fields(enc.header))
        self._show_fields(fields)
        self.show_allocation(enc.header, allocation_without_region(result))
        self.save_button.setVisible(True)
        px = h * w
        sources = {"Original": original, "COMBINER": enc.reconstruction}
        notes = {"COMBINER": f"{len(enc.data)} bytes, {enc.psnr:.2f} dB"}
        rows = [("COMBINER", len(enc.data), enc.bpp, enc.psnr, ms, "")]
        for ref in result.references:
            sources[ref.codec] = ref.decoded
            notes[ref.codec] = f"{ref.nbytes} bytes, {ref.psnr:.2f} dB"
            rows.append((ref.codec, ref.nbytes, ref.bpp(px), ref.psnr,
                         result.ref_metrics.get(ref.codec, {}).get("ms_ssim"), f"quality {ref.quality}"))
        self.split.set_sources(sources, notes)
        self.split.set_pair("Original", "COMBINER")
        self.table.setText(equal_size_table(rows) if len(rows) > 1 else "")
        self.table.setVisible(len(rows) > 1)

    def show_decoded(self, image: np.ndarray, header, prior, nbytes: int, name: str,
                     seconds: float | None = None) -> None:
        self.pages.setCurrentWidget(self.single)
        self.table.setVisible(False)
        self.roi.enable(False)
        self.roi.item.hide()
        show_rgb(self.dec_item, image)
        self.dec_label.setText(f"Decoded {name}")
        self.dec_box.autoRange(padding=0)
        h, w, c = header.shape
        fields = {"Modality": header.modality, "Shape": f"{w}×{h}×{c}", "Bytes": str(nbytes),
                  "Rate": f"{8 * nbytes / (h * w):.3f} bpp", "Prior": prior.name,
                  "Prior id": header.prior_id.hex(), "κ": str(header.kappa),
                  "Blocks": str(header.n_blocks)}
        if seconds is not None:
            fields["Decode time"] = f"{seconds:.2f} s"
        if header.patch:
            fields.update(patch_fields(header))
        self._show_fields(fields)
        self.show_allocation(header)
        self.save_button.setVisible(False)
