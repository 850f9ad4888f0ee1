"""COMBINER Studio main window, driven through its own methods and GUI-thread signals (pytest-qt, offscreen).

All encodes use the tiny prior learned in conftest.py; the shipped priors folder is hidden from the engine's
lookup so results don't depend on what is (being) trained in priors/."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

import engine.prior  # noqa: E402
from engine.codec import decode, encode_batch, run  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from engine.container import read  # noqa: E402
from benchmarks.event_loop_stall import GapProbe  # noqa: E402
from tests.conftest import FAST_FIT, assert_gui_kept_turning, photo_patches  # noqa: E402

torch.set_num_threads(1)

SLOW_FIT = FitConfig(steps=200_000, refine_first=6, refine_last=2, refine_groups=6)   # only ever cancelled
STALL_FIT = FitConfig(steps=700, refine_first=10, refine_last=4, refine_groups=12)    # ~2-3 s


@pytest.fixture(autouse=True)
def no_shipped_priors(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(engine.prior, "SHIPPED_DIR", tmp_path_factory.mktemp("no_shipped_priors"))
    monkeypatch.delenv("COMBINER_PRIORS", raising=False)


@pytest.fixture
def png(tmp_path):
    p = tmp_path / "patch.png"
    Image.fromarray(photo_patches(1, seed=7)[0]).save(p)
    return p


def make_window(qtbot, tmp_path, prior_dirs, **kw):
    kw.setdefault("confirm_discard", False)
    kw.setdefault("probe_costs", False)       # each test's fresh settings would otherwise probe the machine   # no modal question when a test drops a result
    from combiner_app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    w = MainWindow(prior_dirs=prior_dirs, settings=settings,
                   presets={"fast": FAST_FIT, "stall": STALL_FIT, "slow": SLOW_FIT}, **kw)
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path, tiny_prior_dir):
    w = make_window(qtbot, tmp_path, [str(tiny_prior_dir)], ladder=(0.5, 1.0, 2.0))
    yield w
    w.runner.shutdown()
    w.explorer.shutdown()


def compress(qtbot, w, preset="fast", timeout=30_000):
    w.settings_panel.preset.setCurrentText(preset)
    with qtbot.waitSignal(w.encode_finished, timeout=timeout) as sig:
        qtbot.mouseClick(w.settings_panel.compress_button, Qt.MouseButton.LeftButton)
    return sig.args[0]


def expect_error(qtbot, w, action, timeout=5000) -> str:
    with qtbot.waitSignal(w.error_shown, timeout=timeout) as sig:
        action()
    box = w.error_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    text = box.text()
    assert "Traceback" not in text
    box.close()
    return sig.args[0]


def test_empty_window_invites_a_drop_and_about_lists_versions(window, qtbot):
    assert window.pages.currentWidget() is window.welcome
    assert "Drop" in window.welcome.findChild(object, "dropInvite").text()
    box = window.show_about()
    text = box.text()
    for name in ("torch", "PySide6", "pyqtgraph", "numpy", "COMBINER Studio"):
        assert name in text
    assert torch.__version__ in text
    box.close()
    # the audio result and audio explorer tabs stay hidden until an audio file is opened
    assert not window.tabs.isTabVisible(window.tabs.indexOf(window.audio_result))
    assert not window.tabs.isTabVisible(window.tabs.indexOf(window.audio_explorer))


def test_drop_encode_save_and_reopen(window, qtbot, png, tmp_path, tiny_prior_dir):
    with qtbot.waitSignal(window.file_opened, timeout=5000):
        assert window.open_path(png)          # what the drop handler calls
    assert window.pages.currentWidget() is window.workspace
    assert "blocks" in window.settings_panel.plan_label.text()
    assert compress(qtbot, window) is False
    res = window.result
    assert res is not None and window.tabs.currentWidget() is window.result_view
    fields = window.result_view.fields
    assert fields["File size"] == f"{len(res.encoded.data)} bytes"
    assert "bpp" in fields["Rate"] and "dB" in fields["PSNR"]
    # original, reconstruction and error map are shown, zoom/pan linked
    rv = window.result_view
    assert np.array_equal(rv.orig_item.image, window.image)
    assert np.array_equal(rv.rec_item.image, res.encoded.reconstruction)
    assert rv.err_item.image.shape == window.image.shape[:2]
    rv.rec_box.setRange(xRange=(4, 12), yRange=(4, 12), padding=0)
    for box in (rv.orig_box, rv.err_box):
        (x0, x1), (y0, y1) = box.viewRange()
        assert abs((x0 + x1) / 2 - 8) < 0.1 and abs((y0 + y1) / 2 - 8) < 0.1 and x1 - x0 < 12   # zoomed in too
    # Live view got the events
    assert window.live.steps and window.live.steps[-1] == window.live.last.total_steps

    out = tmp_path / "out.cmb"
    assert window.save_cmb(out)
    data = out.read_bytes()
    assert data == res.encoded.data
    assert np.array_equal(decode(data, prior_dirs=[str(tiny_prior_dir)]), res.encoded.reconstruction)
    png_out = tmp_path / "decoded.png"
    assert window.export_png(png_out)
    assert np.array_equal(np.asarray(Image.open(png_out).convert("RGB")), res.encoded.reconstruction)
    # never over the input
    before = png.read_bytes()
    msg = expect_error(qtbot, window, lambda: window.export_png(png))
    assert "refusing to overwrite" in msg and png.read_bytes() == before

    with qtbot.waitSignal(window.file_opened, timeout=5000):
        assert window.open_path(out)
    img, header, prior, nbytes = window.decoded
    assert np.array_equal(img, res.encoded.reconstruction)
    assert np.array_equal(rv.dec_item.image, res.encoded.reconstruction)
    assert rv.pages.currentWidget() is rv.single
    f = rv.fields
    assert f["Modality"] == "image" and f["Bytes"] == str(len(data)) and f["Blocks"] == str(header.n_blocks)
    assert f["Prior id"] == header.prior_id.hex() and f["κ"] == str(header.kappa)
    assert str(out) in window.recent.paths()[0]


def test_real_drop_event_opens_the_file(window, qtbot, png):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(20, 20), *args)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.file_opened, timeout=5000) as sig:
        QApplication.sendEvent(window, QDropEvent(QPointF(20, 20), *args))
    assert sig.args[0] == str(png)
    assert window.image is not None and window.image.shape == (32, 32, 3)


def test_cancel_mid_encode_writes_nothing(window, qtbot, png, tmp_path):
    window.open_path(png)
    files_before = sorted(p.name for p in tmp_path.rglob("*"))
    window.settings_panel.preset.setCurrentText("slow")
    with qtbot.waitSignal(window.runner.progress, timeout=10_000):
        window.compress()
    assert not window.settings_panel.compress_button.isEnabled()
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.encode_finished, timeout=5000) as sig:
        qtbot.mouseClick(window.settings_panel.cancel_button, Qt.MouseButton.LeftButton)
    took = time.perf_counter() - t0
    print(f"cancel took {took * 1000:.0f} ms")
    assert sig.args == [True] and took < 2.0
    assert window.result is None and not window.runner.is_running()
    assert sorted(p.name for p in tmp_path.rglob("*")) == files_before
    assert window.settings_panel.compress_button.isEnabled()
    # usable again: a normal encode runs to the end
    assert compress(qtbot, window) is False and window.result is not None


def test_bad_files_show_the_engines_message(window, qtbot, tmp_path, tiny_prior_dir):
    corrupt = tmp_path / "corrupt.cmb"
    good = run(encode_batch(photo_patches(1, seed=3), 1.0, fit=FAST_FIT, prior_dirs=[str(tiny_prior_dir)]))[0]
    bad = bytearray(good.data)
    bad[-3] ^= 0xFF
    corrupt.write_bytes(bytes(bad))
    assert "checksum" in expect_error(qtbot, window, lambda: window.open_path(corrupt))
    (tmp_path / "short.cmb").write_bytes(good.data[:5])
    assert "truncated" in expect_error(qtbot, window, lambda: window.open_path(tmp_path / "short.cmb"))
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    assert "not a readable image" in expect_error(qtbot, window, lambda: window.open_path(text))
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(big)
    msg = expect_error(qtbot, window, lambda: window.open_path(big))
    assert "larger than" in msg and not window.settings_panel.compress_button.isEnabled()
    assert window.pages.currentWidget() is window.workspace   # still alive and showing
    assert window.open_path(tmp_path / "corrupt.cmb") is False


def test_cmb_needing_a_missing_prior(qtbot, tmp_path, tiny_prior_dir):
    data = run(encode_batch(photo_patches(1, seed=3), 1.0, fit=FAST_FIT, prior_dirs=[str(tiny_prior_dir)]))[0].data
    f = tmp_path / "needs_prior.cmb"
    f.write_bytes(data)
    w = make_window(qtbot, tmp_path, prior_dirs=[])
    msg = expect_error(qtbot, w, lambda: w.open_path(f))
    assert read(data)[0].prior_id.hex() in msg and "not installed" in msg


def test_rate_slider_flips_between_ladder_results(window, qtbot, png):
    window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    ex = window.explorer
    with qtbot.waitSignal(ex.ladder_done, timeout=60_000) as sig:
        qtbot.mouseClick(ex.explore_button, Qt.MouseButton.LeftButton)
    assert sig.args == [False]
    assert len(ex.results) == 3
    rates = [r.encoded.bpp for r in ex.results]
    assert rates == sorted(rates) and abs(rates[0] - 0.5) < 0.2 and abs(rates[-1] - 2.0) < 0.3
    assert ex.slider.isEnabled() and ex.slider.maximum() == 2
    seen, flips = [], []
    assert ex.slider.value() == 0       # stayed on the first rung shown while the others arrived
    for pos in (2, 0, 1):
        t0 = time.perf_counter()
        with qtbot.waitSignal(ex.shown, timeout=2000):
            ex.slider.setValue(pos)
        flips.append(time.perf_counter() - t0)
        enc = ex.results[pos].encoded
        seen.append(ex.rate_label.text())
        assert f"{enc.bpp:.2f}" in ex.rate_label.text()
        assert np.array_equal(ex.split.sources["COMBINER"], enc.reconstruction)
        assert ex.split.pair() == ("COMBINER", "JPEG")    # the split view: COMBINER | JPEG at this size
        assert np.array_equal(ex.split.left_item.image, enc.reconstruction)
        html = ex.table.text()
        assert str(len(enc.data)) in html and "JPEG" in html and "WebP" in html
        others = ex.baselines_for(pos)
        assert all(o.decoded.shape == enc.reconstruction.shape for o in others)
    assert len(set(seen)) == 3
    print(f"\nslider flips took {', '.join(f'{t * 1000:.0f}' for t in flips)} ms")
    assert max(flips) < 0.25   # cached: no encoding on a flip
    x, y = ex.rd_ladder.getData()
    assert len(x) == 3 and np.all(np.isfinite(y))
    assert window.settings_panel.compress_button.isEnabled()


def test_gui_event_loop_keeps_turning_during_an_encode(window, qtbot, png):
    window.open_path(png)
    probe = GapProbe(10)
    probe.start()
    t0 = time.perf_counter()
    try:
        assert compress(qtbot, window, preset="stall", timeout=60_000) is False
    finally:
        r = probe.stop()
    took = time.perf_counter() - t0
    print(f"\nencode {took:.2f} s, {r['ticks']} ticks, longest gap between 10 ms ticks: {r['worst_ms']:.0f} ms, "
          f"the GUI thread's CPU in a gap at most {r['worst_busy_ms']:.0f} ms")
    assert r["ticks"] > 20
    assert_gui_kept_turning(r)


def test_recent_files_menu(window, qtbot, png):
    window.open_path(png)
    window._fill_recent()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert str(png) in texts


def test_cmb_view_disables_image_only_tabs(window, qtbot, png, tmp_path):
    window.open_path(png)
    assert compress(qtbot, window) is False
    window.save_cmb(tmp_path / "a.cmb")
    # file_opened comes from the decoded result; the worker's thread ends a moment later (decode_finished).
    # Until then a new open is refused as busy, so wait for both.
    with qtbot.waitSignals([window.file_opened, window.decode_finished], timeout=10_000):
        window.open_path(tmp_path / "a.cmb")
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.live))
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.explorer))
    assert window.export_action.isEnabled() and not window.save_action.isEnabled()
    assert window.open_path(png)
    assert window.tabs.isTabEnabled(window.tabs.indexOf(window.explorer))


def test_main_opens_the_file_named_on_the_command_line(tmp_path, png, tiny_prior_dir):
    """The real entry point in a child process (its app.exec() must not end this test session's loop);
    XDG_CONFIG_HOME points at tmp_path so the recent-files list lands there, not in the user's settings."""
    import os
    import subprocess
    import sys

    code = ("import sys; from PySide6.QtCore import QTimer; from PySide6.QtWidgets import QApplication\n"
            "app = QApplication(sys.argv[:1])\n"
            "from combiner_app.main import main; from combiner_app.main_window import MainWindow\n"
            "def check():\n"
            "    ws = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]\n"
            "    print('SHAPES', [w.image.shape for w in ws if w.image is not None], flush=True)\n"
            "    [w.close() for w in ws]; app.quit()\n"
            "QTimer.singleShot(500, check)\n"
            "sys.exit(main(sys.argv[1:]))\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    r = subprocess.run([sys.executable, "-c", code, str(png), "--prior-dir", str(tiny_prior_dir), "--threads", "1"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=os.path.dirname(__file__) + "/..")
    assert r.returncode == 0, r.stderr
    assert "SHAPES [(32, 32, 3)]" in r.stdout
    conf = tmp_path / "config" / "COMBINER" / "Studio.conf"
    assert conf.exists() and "patch.png" in conf.read_text()


def test_module_entry_point_help():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "combiner_app", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "combiner-studio" in r.stdout


def test_closing_the_window_mid_encode_stops_the_worker(window, qtbot, png, tmp_path):
    window.open_path(png)
    window.settings_panel.preset.setCurrentText("slow")
    with qtbot.waitSignal(window.runner.progress, timeout=10_000):
        window.compress()
    thread = window.runner._thread
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.encode_finished, timeout=5000) as sig:
        window.close()                          # never blocks: the close cancels, the window waits for done
        assert window.isVisible() and time.perf_counter() - t0 < 0.2
    assert sig.args == [True] and window.result is None and thread.isFinished()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2000)   # then it closes by itself
    assert time.perf_counter() - t0 < 2.0
    assert not list(tmp_path.glob("*.cmb"))
