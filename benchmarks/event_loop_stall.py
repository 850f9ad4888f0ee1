"""Event-loop stall probe: how long the COMBINER Studio window goes without processing events while it encodes
a real photo and while it opens the resulting .cmb (decoded in the worker).

    python benchmarks/event_loop_stall.py [--size 512] [--preset fast] [--rate 0.3] [--steps N]

A 5 ms QTimer runs throughout; every gap between its ticks beyond 5 ms is time the GUI thread was busy
(drawing, handling signals) or starved of the GIL. Prints the worst gap and the 99th percentile for the encode
(open, compress, result shown) and for the .cmb open (decode with progress, result shown). Target: worst gap
<= 100 ms. Uses the shipped priors and a crop of scikit-image's astronaut photo. Runs offscreen unless
QT_QPA_PLATFORM says otherwise (e.g. under xvfb-run with QT_QPA_PLATFORM=xcb)."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class GapProbe:
    """A timer on the GUI thread: `gaps` are the wall seconds between its ticks, `busy` the GUI thread's own CPU
    seconds in each gap (time.thread_time). A gap with little CPU in it is the thread waiting: for the GIL, or
    for a core on a loaded machine; a gap full of CPU is work done on the GUI thread."""

    def __init__(self, interval_ms: int = 5):
        from PySide6.QtCore import QTimer

        self.gaps: list[float] = []
        self.busy: list[float] = []
        self.at: list[float] = []
        self._last = None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)

    def _tick(self):
        now, cpu = time.perf_counter(), time.thread_time()
        if self._last is not None:
            self.gaps.append(now - self._last[0])
            self.busy.append(cpu - self._last[1])
            self.at.append(self._last[0])
        self._last = (now, cpu)

    def start(self):
        self.gaps, self.busy, self.at, self._last = [], [], [], None
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        g = sorted(self.gaps) or [0.0]
        worst_at = self.at[self.gaps.index(g[-1])] if self.gaps else 0.0
        self.top = sorted(zip(self.gaps, self.at), reverse=True)[:6]
        return {"ticks": len(self.gaps), "worst_ms": 1000 * g[-1], "p99_ms": 1000 * g[int(0.99 * (len(g) - 1))],
                "worst_at": worst_at, "worst_busy_ms": 1000 * max(self.busy, default=0.0)}


def photo(size: int):
    import numpy as np
    from skimage import data

    img = data.astronaut()
    s = min(size, 512)
    return np.ascontiguousarray(img[:s, (512 - s) // 2:(512 - s) // 2 + s])


def measure(image_path: Path, fit, rate: float = 0.3, prior_dirs=None, timeout: float = 3600.0,
            settings_path: Path | None = None) -> dict:
    """-> {"encode": {...}, "open": {...}, "encode_seconds", "decode_seconds", "bytes"} for one window."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from combiner_app.main_window import MainWindow

    app = QApplication.instance()
    tmp = tempfile.TemporaryDirectory()
    settings = QSettings(str(settings_path or Path(tmp.name) / "studio.ini"), QSettings.Format.IniFormat)
    win = MainWindow(prior_dirs=prior_dirs, settings=settings, presets={"bench": fit}, confirm_discard=False)
    win.resize(1280, 800)
    win.show()
    probe = GapProbe()

    def pump(cond):
        t0 = time.perf_counter()
        while not cond():
            app.processEvents()
            time.sleep(0.001)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError
    out = {}
    try:
        done = {"enc": False, "dec": False}
        win.encode_finished.connect(lambda c: done.update(enc=True))
        win.file_opened.connect(lambda p: done.update(dec=p.endswith(".cmb")))
        probe.start()
        t0 = time.perf_counter()
        marks = out["marks"] = {}
        win.open_path(image_path)
        marks["opened"] = time.perf_counter()
        win.settings_panel.bpp.setValue(rate)
        win.compress()
        marks["compress"] = time.perf_counter()
        win.runner.encoded.connect(lambda *a: marks.setdefault("encoded", time.perf_counter()))
        win.live.timer.timeout.connect(lambda: marks.setdefault("redraws", []).append(time.perf_counter()))
        pump(lambda: done["enc"])
        marks["finished"] = time.perf_counter()
        out["encode_seconds"] = time.perf_counter() - t0
        for _ in range(20):                       # the result being drawn counts too
            app.processEvents()
            time.sleep(0.005)
        out["encode"] = probe.stop()
        out["top"] = [(round(1000 * g), round(t - marks["compress"], 2)) for g, t in probe.top]
        if win.result is None:
            raise RuntimeError("the encode failed")
        cmb = Path(tmp.name) / "bench.cmb"
        win.save_cmb(cmb)
        out["bytes"] = cmb.stat().st_size
        probe.start()
        t0 = time.perf_counter()
        win.open_path(cmb)
        pump(lambda: done["dec"])
        out["decode_seconds"] = time.perf_counter() - t0
        for _ in range(20):
            app.processEvents()
            time.sleep(0.005)
        out["open"] = probe.stop()
    finally:
        win.shutdown()
        win.close()
        tmp.cleanup()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="side of the square astronaut crop (<= 512)")
    ap.add_argument("--preset", default="fast", help="encoder preset (engine.config.PRESETS)")
    ap.add_argument("--steps", type=int, default=None, help="override the preset's fitting steps")
    ap.add_argument("--rate", type=float, default=0.3, help="target bpp")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--prior-dir", action="append", default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import dataclasses

    import torch
    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from engine.config import PRESETS

    torch.set_num_threads(a.threads)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    fit = PRESETS[a.preset]
    if a.steps is not None:
        fit = dataclasses.replace(fit, steps=a.steps)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "astronaut.png"
        img = photo(a.size)
        Image.fromarray(img).save(p)
        print(f"{img.shape[1]}x{img.shape[0]} astronaut crop, preset {a.preset} ({fit.steps} fitting steps), "
              f"{a.rate} bpp, platform {app.platformName()}, torch threads {a.threads}")
        r = measure(p, fit, a.rate, a.prior_dir)
    for k in ("encode", "open"):
        v = r[k]
        print(f"{k:6s}: worst gap {v['worst_ms']:.0f} ms, p99 {v['p99_ms']:.0f} ms over {v['ticks']} ticks "
              f"({r[k + '_seconds' if k == 'encode' else 'decode_seconds']:.1f} s)")
    print(f"file: {r['bytes']} bytes")
    if os.environ.get("STALL_DEBUG"):
        m = r["marks"]
        wa = r["encode"]["worst_at"]
        print("largest gaps (ms, s after Compress):", r["top"])
        print({k: round(v - wa, 3) for k, v in m.items() if k != "redraws"},
              "nearest redraw", min((abs(x - wa), x - wa) for x in m.get("redraws", [wa]))[1])
    worst = max(r["encode"]["worst_ms"], r["open"]["worst_ms"])
    print(f"target <= 100 ms: {'met' if worst <= 100 else 'NOT met'} (worst {worst:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
