"""Screenshots of the real COMBINER Studio window, for docs/screenshots/.

    xvfb-run -a python scripts/screenshots.py

Uses resources/samples/astronaut_32.png and the installed (shipped) priors. Saves empty.png, live.png
(mid-encode), result.png (A/B with error map), decoded_cmb.png (a saved .cmb reopened) and
rate_explorer.png. No audio screenshot: there is no audio
codec yet, so there is no honest decoded signal to show.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
SAMPLE = ROOT / "resources" / "samples" / "astronaut_32.png"


def main() -> int:
    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication

    from engine import prior as prior_mod

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("COMBINER")
    app.setApplicationName("Studio")
    from PySide6.QtCore import QSettings

    from combiner_app.main_window import MainWindow

    priors = [p for p in prior_mod.available() if p.modality == "image" and p.inr.out_dim == 3]
    if not priors:
        print("no image prior installed (priors/ is empty); nothing to show", file=sys.stderr)
        return 1
    print("priors:", ", ".join(f"{p.name} ({p.rate:g} bpp)" for p in priors))
    OUT.mkdir(parents=True, exist_ok=True)
    import tempfile

    settings_dir = tempfile.TemporaryDirectory()   # keep the user's recent-files list clean
    settings = QSettings(str(Path(settings_dir.name) / "studio.ini"), QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    win.resize(1280, 800)
    win.show()

    def pump(cond, timeout=600.0):
        t0 = time.time()
        while not cond():
            app.processEvents()
            time.sleep(0.005)
            if time.time() - t0 > timeout:
                raise TimeoutError
        for _ in range(5):
            app.processEvents()
            time.sleep(0.01)

    def shot(name):
        for _ in range(5):
            app.processEvents()
            time.sleep(0.02)
        win.grab().save(str(OUT / name))
        print("saved", OUT / name)

    pump(lambda: win.isVisible())
    shot("empty.png")

    win.open_path(SAMPLE)
    rate = min((p.rate for p in priors), key=lambda r: abs(r - 1.0))
    win.settings_panel.bpp.setValue(rate)
    win.settings_panel.preset.setCurrentText("default")
    state = {"mid": False, "done": False}

    def on_progress(i, ev):
        if not state["mid"] and ev.phase == "code" and ev.blocks_done >= ev.n_blocks // 2:
            state["mid"] = True
            win.live.redraw()
            shot("live.png")

    win.runner.progress.connect(on_progress)
    win.encode_finished.connect(lambda c: state.update(done=True))
    win.compress()
    pump(lambda: state["done"])
    win.runner.progress.disconnect(on_progress)
    shot("result.png")
    with tempfile.TemporaryDirectory() as tmp:   # save, then reopen the .cmb as a user would
        cmb = Path(tmp) / "astronaut_32.cmb"
        win.save_cmb(cmb)
        win.open_path(cmb)
        shot("decoded_cmb.png")
    win.open_path(SAMPLE)

    win.settings_panel.preset.setCurrentText("fast")
    win.tabs.setCurrentWidget(win.explorer)
    ladder = {"done": False}
    win.explorer.ladder_done.connect(lambda c: ladder.update(done=True))
    win.explorer.explore()
    pump(lambda: ladder["done"])
    n = len(win.explorer.results)
    win.explorer.slider.setValue(n // 2)
    shot("rate_explorer.png")
    win.close()
    settings_dir.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
