"""Helper processes for the tests under a real X server (tests/test_app_x11.py).

    python -m tests.x11_helpers app IMAGE MODE     # the real app (xcb), MODE = fit | code | explore
    python -m tests.x11_helpers source FILE        # a drag source offering FILE (copy or move)
    python -m tests.x11_helpers target             # the app alone, waiting for a drop

Each prints lines the test reads: "READY <window id>" once the state to act on is reached, "OPENED <path>",
"DROP <action>" and finally "EXIT <code>"."""
from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def say(*parts) -> None:
    print(*parts, flush=True)


def app_main(image: str, mode: str) -> int:
    import torch
    from PySide6.QtWidgets import QApplication

    from engine.config import FitConfig

    torch.set_num_threads(1)
    app = QApplication([sys.argv[0]])
    from combiner_app.main_window import MainWindow

    # short fitting, long coding: the coding phase (A* per block, refinement) is reached within seconds
    presets = {"probe": FitConfig(steps=30, refine_first=40, refine_last=40, refine_groups=4)}
    settings_file = os.environ["STUDIO_SETTINGS"]
    from PySide6.QtCore import QSettings
    win = MainWindow(settings=QSettings(settings_file, QSettings.Format.IniFormat), presets=presets,
                     confirm_discard=False)
    win.move(0, 0)
    win.resize(1000, 700)
    win.show()
    win.open_path(image)
    win.settings_panel.bpp.setValue(0.3)
    state = {"n": 0, "said": False}

    def on_progress(i, ev):
        state["n"] += 1
        ready = (mode == "fit" and state["n"] >= 3) or (mode == "code" and ev.phase == "code") or \
                (mode == "explore" and state["n"] >= 3)
        if ready and not state["said"]:
            state["said"] = True
            say("READY", int(win.winId()), ev.phase)

    if mode == "explore":
        win.explorer.runner.progress.connect(on_progress)
        win.tabs.setCurrentWidget(win.explorer)
        win.explorer.explore()
    else:
        win.runner.progress.connect(on_progress)
        win.compress()
    import time
    win.closing.connect(lambda: say("CLOSING", f"{time.monotonic():.3f}"))
    win.encode_finished.connect(lambda c: say("FINISHED", f"{time.monotonic():.3f}"))
    rc = app.exec()
    say("LOOP-ENDED", f"{time.monotonic():.3f}")
    ok = win.shutdown(1000)
    say("EXIT", rc, "threads-finished" if ok else "threads-running", f"{time.monotonic():.3f}")
    return rc


def source_main(path: str) -> int:
    from PySide6.QtCore import QMimeData, Qt, QUrl
    from PySide6.QtGui import QDrag
    from PySide6.QtWidgets import QApplication, QLabel

    app = QApplication([sys.argv[0]])

    class Source(QLabel):
        def mousePressEvent(self, e):
            mime = QMimeData()
            mime.setUrls([QUrl.fromLocalFile(path)])
            drag = QDrag(self)
            drag.setMimeData(mime)
            action = drag.exec(Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, Qt.DropAction.MoveAction)
            say("DROP", {Qt.DropAction.CopyAction: "copy", Qt.DropAction.MoveAction: "move"}.get(action,
                                                                                              str(action)))
            # stay alive: the target fetches the file list from this process after the drop

    w = Source("drag me")
    w.setWindowFlag(Qt.WindowType.FramelessWindowHint)
    w.move(0, 0)
    w.resize(200, 200)
    w.show()
    say("READY", int(w.winId()))
    return app.exec()


def target_main() -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    from combiner_app.main_window import MainWindow

    win = MainWindow(settings=QSettings(os.environ["STUDIO_SETTINGS"], QSettings.Format.IniFormat),
                     confirm_discard=False)
    win.move(300, 0)
    win.resize(900, 700)
    win.file_opened.connect(lambda p: say("OPENED", p))
    win.error_shown.connect(lambda m: say("ERROR", m.replace(chr(10), " ")))
    win.show()
    say("READY", int(win.winId()))
    rc = app.exec()
    win.shutdown(1000)
    return rc


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "app":
        sys.exit(app_main(sys.argv[2], sys.argv[3]))
    if kind == "source":
        sys.exit(source_main(sys.argv[2]))
    sys.exit(target_main())
