"""Start COMBINER Studio: `python -m combiner_app [FILE]` or the `combiner-studio` gui-script."""
from __future__ import annotations

import argparse
import sys


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="combiner-studio", description="COMBINER Studio desktop app")
    ap.add_argument("file", nargs="?", help="an image, audio or .cmb file to open")
    ap.add_argument("--prior-dir", action="append", default=None, help="extra folder searched for priors")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: all but one)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    a = parse_args(argv)
    import os

    import torch
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 2) - 1))  # leave a core for the GUI
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName("COMBINER")
    app.setApplicationName("Studio")
    app.setApplicationDisplayName("COMBINER Studio")
    from .main_window import MainWindow

    win = MainWindow(prior_dirs=a.prior_dir)
    win.show()
    if a.file:
        win.open_path(a.file)
    rc = app.exec()
    win.shutdown()   # whatever ended the event loop, no worker thread is left running when Python exits
    return rc


if __name__ == "__main__":
    sys.exit(main())
