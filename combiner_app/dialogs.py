"""Message boxes. Errors go through `error_box`, which opens a window-modal box without blocking the
event loop (tests find and close it; the main window keeps a reference to the last one)."""
from __future__ import annotations

import platform

from PySide6.QtWidgets import QMessageBox, QWidget


def error_box(parent: QWidget, title: str, message: str) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("errorBox")
    box.open()
    return box


def versions() -> dict[str, str]:
    import numpy
    import pyqtgraph
    import PySide6
    import torch

    from . import __version__
    return {"COMBINER Studio": __version__, "torch": torch.__version__, "PySide6": PySide6.__version__,
            "pyqtgraph": pyqtgraph.__version__, "numpy": numpy.__version__,
            "Python": platform.python_version()}


def about_text() -> str:
    rows = "".join(f"<tr><td>{k}</td><td>&nbsp;{v}</td></tr>" for k, v in versions().items())
    return ("<h3>COMBINER Studio</h3><p>Image compression with Bayesian implicit neural representations "
            "(COMBINER, Guo et al., NeurIPS 2023).</p><table>" + rows + "</table>")


def about_box(parent: QWidget) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.Information, "About COMBINER Studio", about_text(),
                      QMessageBox.StandardButton.Ok, parent)
    box.setObjectName("aboutBox")
    box.open()
    return box
