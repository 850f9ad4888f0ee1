"""Issue 14 (the app on real photos and recordings), offscreen: drops answer CopyAction, messages without Python
class names and with the prior hint, the welcome note, the spectrogram title of an opened clip, .cmb decode in
the worker with its time, the split view, MS-SSIM in the result, remembered settings, the unsaved-result
question, engine-level cancel, the rate slider staying on the rung being viewed, and the region-of-interest
weighting of the patch allocation."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

import engine.prior  # noqa: E402
from engine import cancel, metrics, patch_codec  # noqa: E402
from engine.codec import run  # noqa: E402
from engine.errors import CombinerError  # noqa: E402
from tests.conftest import FAST_FIT, PATCH_FIT, photo, photo_patches, voiced_audio  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_shipped_priors(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(engine.prior, "SHIPPED_DIR", tmp_path_factory.mktemp("no_shipped_priors"))
    monkeypatch.delenv("COMBINER_PRIORS", raising=False)


def make_window(qtbot, tmp_path, prior_dirs, **kw):
    from combiner_app.main_window import MainWindow

    kw.setdefault("confirm_discard", False)
    kw.setdefault("probe_costs", False)       # each test's fresh settings would otherwise probe the machine
    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    w = MainWindow(prior_dirs=prior_dirs, settings=settings, presets={"fast": FAST_FIT, "patch": PATCH_FIT}, **kw)
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path, tiny_prior_dir):
    w = make_window(qtbot, tmp_path, [str(tiny_prior_dir)])
    yield w
    w.shutdown()


@pytest.fixture
def png(tmp_path):
    p = tmp_path / "patch.png"
    Image.fromarray(photo_patches(1, seed=7)[0]).save(p)
    return p


def error_of(qtbot, w, action) -> str:
    with qtbot.waitSignal(w.error_shown, timeout=10_000) as sig:
        action()
    w.error_box.close()
    return sig.args[0]


def test_drop_is_accepted_as_a_copy_even_when_a_move_is_proposed(window, qtbot, png):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    args = (Qt.DropAction.CopyAction | Qt.DropAction.MoveAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(20, 20), *args)
    enter.setDropAction(Qt.DropAction.MoveAction)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted() and enter.dropAction() == Qt.DropAction.CopyAction
    drop = QDropEvent(QPointF(20, 20), *args)
    drop.setDropAction(Qt.DropAction.MoveAction)
    with qtbot.waitSignal(window.file_opened, timeout=5000):
        QApplication.sendEvent(window, drop)
    assert drop.isAccepted() and drop.dropAction() == Qt.DropAction.CopyAction
    assert window.image is not None


def test_messages_name_the_file_and_no_python_class(window, qtbot, tmp_path, tiny_prior_dir):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    msg = error_of(qtbot, window, lambda: window.open_path(text))
    assert "notes.png" in msg and "not a readable image" in msg
    assert "UnidentifiedImageError" not in msg and "Error:" not in msg
    bad = tmp_path / "broken.cmb"
    bad.write_bytes(b"\xcb\x01garbage")
    msg = error_of(qtbot, window, lambda: window.open_path(bad))
    assert "broken.cmb" in msg
    # the prior a file needs is missing: the message says where priors are looked up
    from engine.codec import encode_batch
    data = run(encode_batch(photo_patches(1, seed=3), 1.0, fit=FAST_FIT, prior_dirs=[str(tiny_prior_dir)]))[0].data
    f = tmp_path / "needs_prior.cmb"
    f.write_bytes(data)
    w = make_window(qtbot, tmp_path, prior_dirs=[])
    msg = error_of(qtbot, w, lambda: w.open_path(f))
    assert "needs_prior.cmb" in msg and "not installed" in msg
    assert "--prior-dir" in msg and "COMBINER_PRIORS" in msg
    w.shutdown()


def test_welcome_note_and_the_title_of_an_opened_clip(window, qtbot, tmp_path):
    notes = " ".join(lbl.text() for lbl in window.welcome.findChildren(type(window.status_label)))
    assert "65,536" not in notes and "any size" in notes
    wav = tmp_path / "clip.wav"
    sf.write(wav, voiced_audio(0.5), 16000)
    assert window.open_path(wav)
    spec = window.audio_result.spectrograms
    assert list(spec.images) == ["original"]      # not "decoded": nothing is decoded yet
    assert spec.getItem(0, 0).titleLabel.text == "original"


def test_cmb_open_decodes_in_the_worker_and_shows_the_decode_time(window, qtbot, png, tmp_path):
    assert window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    with qtbot.waitSignal(window.encode_finished, timeout=60_000):
        window.compress()
    res = window.result
    assert "MS-SSIM" in window.result_view.fields        # 32x32: too small for five scales -> "n/a"
    assert window.result_view.fields["MS-SSIM"] == metrics.fmt(metrics.ms_ssim(window.image,
                                                                               res.encoded.reconstruction), 4)
    split = window.result_view.split
    assert split.pair() == ("Original", "COMBINER")
    assert np.array_equal(split.right_item.image, res.encoded.reconstruction)
    assert "JPEG" in split.sources and split.sources["JPEG"].shape == res.encoded.reconstruction.shape
    assert "JPEG" in window.result_view.table.text()
    assert window.windowTitle().startswith("✓")            # the finished job says so in the title
    out = tmp_path / "a.cmb"
    assert window.save_cmb(out)
    main = threading.get_ident()
    seen = []
    import combiner_app.worker as wk
    orig = wk.decode_cmb

    def spy(*a, **k):
        seen.append(threading.get_ident())
        return orig(*a, **k)
    wk.decode_cmb = spy
    try:
        with qtbot.waitSignal(window.file_opened, timeout=20_000):
            assert window.open_path(out)
    finally:
        wk.decode_cmb = orig
    assert seen and seen[0] != main                          # decoded off the GUI thread
    assert np.array_equal(window.decoded[0], res.encoded.reconstruction)
    assert window.result_view.fields["Decode time"].endswith(" s")


def test_settings_are_remembered(qtbot, tmp_path, tiny_prior_dir):
    w = make_window(qtbot, tmp_path, [str(tiny_prior_dir)])
    w.settings_panel.preset.setCurrentText("patch")
    w.settings_panel.bpp.setValue(0.65)
    w.settings_panel.kbps.setValue(17.0)
    w.store.sync()
    w2 = make_window(qtbot, tmp_path, [str(tiny_prior_dir)])
    assert w2.settings_panel.preset.currentText() == "patch"
    assert w2.settings_panel.bpp.value() == pytest.approx(0.65)
    assert w2.settings_panel.kbps.value() == pytest.approx(17.0)
    assert w2.settings_panel.device.currentText() == w.settings_panel.device.currentText()


def test_unsaved_result_is_not_dropped_without_asking(qtbot, tmp_path, tiny_prior_dir, png, monkeypatch):
    w = make_window(qtbot, tmp_path, [str(tiny_prior_dir)], confirm_discard=True)
    w.settings_panel.preset.setCurrentText("fast")
    assert w.open_path(png)
    with qtbot.waitSignal(w.encode_finished, timeout=60_000):
        w.compress()
    assert w.result is not None and not w.saved
    answers = []
    monkeypatch.setattr(QMessageBox, "exec", lambda self: answers.append(self.text()) or
                        QMessageBox.StandardButton.Cancel)
    assert w.open_path(png) is False and w.result is not None      # cancelled: the result stays
    assert "not been saved" in answers[0]
    monkeypatch.setattr(QMessageBox, "exec", lambda self: QMessageBox.StandardButton.Discard)
    assert w.open_path(png) and w.result is None
    w.shutdown()


def test_cancel_reaches_inside_a_fitting_step(patch_prior):
    """A cancel from another thread stops a patch encode mid-step (checks between network layers, in the
    backward pass and between A* blocks), in well under a second; without a token nothing changes."""
    img = np.tile(photo(48, 48, seed=2), (4, 4, 1))       # 192x192: 144 patches of 16x16
    tok = cancel.Token()
    result = {}

    def work():
        with cancel.scope(tok):
            try:
                for ev in patch_codec.encode_image(img, 2.0, prior=patch_prior, fit=PATCH_FIT):
                    result["events"] = result.get("events", 0) + 1
            except cancel.Cancelled:
                result["cancelled"] = time.perf_counter()
        cancel.cleanup()

    th = threading.Thread(target=work)
    th.start()
    while result.get("events", 0) < 3:
        time.sleep(0.005)
    t0 = time.perf_counter()
    tok.cancel()
    th.join(10)
    assert "cancelled" in result and result["cancelled"] - t0 < 0.5
    cancel.check()            # no token in scope on this thread: a no-op


def test_region_of_interest_moves_blocks_and_files_stay_normal(patch_prior, patch_prior_dir):
    img = photo(48, 64, seed=4)                              # 3x4 patches
    plain = run(patch_codec.encode_image(img, 2.0, prior=patch_prior, fit=PATCH_FIT))
    roi = np.ones((3, 4))
    roi[1, 1] = 8.0                                          # "paint" one patch
    weighted = run(patch_codec.encode_image(img, 2.0, prior=patch_prior, fit=PATCH_FIT, importance=[roi]))
    assert np.array_equal(plain.probe_kl_bits, weighted.probe_kl_bits)   # same content probe
    assert weighted.unit_blocks[5] > plain.unit_blocks[5]                # more blocks where painted
    assert abs(int(weighted.unit_blocks.sum()) - int(plain.unit_blocks.sum())) <= 2
    dec, hdr, _ = patch_codec.decode_image_full(weighted.data, prior_dirs=[str(patch_prior_dir)])
    assert np.array_equal(dec, weighted.reconstruction)     # an ordinary file: the decoder needs nothing new
    same = run(patch_codec.encode_image(img, 2.0, prior=patch_prior, fit=PATCH_FIT, importance=[np.ones((3, 4))]))
    assert same.data == plain.data                           # a flat weight changes nothing


@pytest.mark.parametrize("maps, msg", [([np.ones((4, 3))], "importance map is"),
                                       ([np.full((3, 4), np.nan)], "NaN"),
                                       ([None, None], "2 importance maps for 1 images")])
def test_a_bad_importance_map_is_a_clear_error(patch_prior, maps, msg):
    with pytest.raises(CombinerError, match=msg):
        run(patch_codec.encode_image(photo(48, 64, seed=4), 2.0, prior=patch_prior, fit=PATCH_FIT, importance=maps))


def test_painted_region_gets_more_blocks_and_both_maps_show(qtbot, tmp_path, patch_prior_dir):
    w = make_window(qtbot, tmp_path, [str(patch_prior_dir)])
    src = tmp_path / "roi.png"
    Image.fromarray(photo(48, 64, seed=4)).save(src)          # 3x4 patches of 16x16
    assert w.open_path(src)
    sp, rv = w.settings_panel, w.result_view
    sp.bpp.setValue(2.0)
    sp.preset.setCurrentText("patch")
    assert sp.roi_check.isVisibleTo(sp)
    sp.roi_check.setChecked(True)
    assert w.tabs.currentWidget() is rv and rv.roi.enabled and not rv.dec_box.state["mouseEnabled"][0]
    rv.roi.paint_rect(16, 32, 16, 32)                          # exactly patch (1, 1)
    assert rv.roi.weights(16)[1, 1] == pytest.approx(4.0) and rv.roi.weights(16)[0, 0] == 1.0
    with qtbot.waitSignal(w.encode_finished, timeout=60_000):
        w.compress()
    res = w.result
    assert res.importance_used and not sp.roi_check.isChecked()
    before = rv.alloc_before_item.image
    after = rv.alloc_item.image
    assert rv.alloc_before.isVisibleTo(rv) and before.shape == after.shape == (3, 4)
    assert after[1, 1] > before[1, 1]                            # more blocks where painted
    assert np.array_equal(after.reshape(-1), np.asarray(res.encoded.header.unit_blocks))
    w.shutdown()


def test_time_estimate_before_compress_from_a_probe_then_from_the_encode(qtbot, tmp_path, patch_prior_dir):
    w = make_window(qtbot, tmp_path, [str(patch_prior_dir)], probe_costs=True)
    src = tmp_path / "est.png"
    Image.fromarray(photo(48, 64, seed=4)).save(src)
    assert w.open_path(src)
    w.settings_panel.preset.setCurrentText("patch")
    label = w.settings_panel.estimate_label
    qtbot.waitUntil(lambda: "roughly" in label.text(), timeout=30_000)   # the probe ran on a thread
    with qtbot.waitSignal(w.encode_finished, timeout=60_000):
        w.compress()
    assert "measured by the last encode" in label.text()
    ratio, per_size = w._cost_model(w.settings_panel.device.currentText())
    assert per_size > 0 and (ratio is None or ratio > 0)
    clock = w.live.clock
    assert clock.fit_done == clock.work.batches * clock.work.fit_steps      # every fitting step accounted for
    assert w.live.progress()[0] == w.live.work.total or w.live.finished_text
    assert "Finished" in w.live.phase_label.text() and "decoded file PSNR" in w.live.phase_label.text()
    w.shutdown()


def test_rate_slider_stays_on_the_rung_in_view_when_a_result_arrives_before_it(qtbot, tmp_path, tiny_prior_dir,
                                                                                 png):
    # a descending ladder: every new result sorts in front of the ones already there
    w = make_window(qtbot, tmp_path, [str(tiny_prior_dir)], ladder=(2.0, 1.0, 0.5))
    assert w.open_path(png)
    w.settings_panel.preset.setCurrentText("fast")
    ex = w.explorer
    viewed = {}

    def user_moves(n):
        if n == 2 and not viewed:        # two rungs there: the user looks at the lower one
            ex.slider.setValue(0)
            viewed["res"] = ex.results[0]
    ex.result_added.connect(user_moves)
    with qtbot.waitSignal(ex.ladder_done, timeout=120_000):
        ex.explore()
    assert len(ex.results) == 3 and viewed
    pos = next(i for i, r in enumerate(ex.results) if r is viewed["res"])
    assert pos == 1                                        # the third result went in front of it
    assert ex.slider.value() == pos and ex._shown_result is viewed["res"]
    assert np.array_equal(ex.split.sources["COMBINER"], viewed["res"].encoded.reconstruction)
    assert f"{viewed['res'].encoded.bpp:.2f}" in ex.rate_label.text()
    w.shutdown()


def test_result_and_rate_explorer_split_views_share_their_zoom(window, qtbot, png):
    from PySide6.QtCore import QRectF

    assert window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    with qtbot.waitSignal(window.encode_finished, timeout=60_000):
        window.compress()
    ex = window.explorer
    with qtbot.waitSignal(ex.ladder_done, timeout=120_000):
        ex.explore()
    rv = window.result_view
    assert window.tabs.currentWidget() is rv and rv.split.shape == ex.split.shape == (32, 32)

    def centre(split):
        r = split.box.viewRect()
        return r.center().x(), r.center().y()
    rv.split.box.setRange(rect=QRectF(4, 6, 8, 8), padding=0)        # zoomed into the top left
    qtbot.wait(50)
    z = rv.split.zoom()
    window.tabs.setCurrentWidget(ex)                                # never shown before: applied once laid out
    qtbot.waitUntil(lambda: abs(ex.split.zoom() / z - 1) < 0.01, timeout=3000)
    assert centre(ex.split) == pytest.approx((8, 10), abs=0.05)
    assert ex.split.zoom_label.text() == rv.split.zoom_label.text()  # the same percentage on both tabs
    ex.split.box.setRange(rect=QRectF(20, 20, 10, 10), padding=0)   # zoom and pan there
    qtbot.wait(50)
    z = ex.split.zoom()
    for _ in range(3):                                              # round trips neither drift nor widen
        window.tabs.setCurrentWidget(rv)
        qtbot.wait(30)
        assert centre(rv.split) == pytest.approx((25, 25), abs=0.05) and rv.split.zoom() == pytest.approx(z, 0.01)
        window.tabs.setCurrentWidget(ex)
        qtbot.wait(30)
        assert centre(ex.split) == pytest.approx((25, 25), abs=0.05) and ex.split.zoom() == pytest.approx(z, 0.01)
    ex.split.fit()                                                  # the whole image carries as "fit"
    window.tabs.setCurrentWidget(rv)
    r = rv.split.box.viewRect()
    assert r.left() <= 0 and r.top() <= 0 and r.right() >= 32 and r.bottom() >= 32


def test_phase_clock_charges_the_coding_time_between_refinement_steps():
    from combiner_app.progress import PhaseClock, Work

    clock = PhaseClock(Work(1, 10, 4))
    t = 0.0
    for s in range(1, 11):                       # fitting: 1 s a step
        t += 1.0
        clock.update("fit", s, 0, now=t)
    # coding: each group first spends 3 s in the A* selection (progress events, no refinement step yet),
    # then 1 refinement step of 1 s; the first coding event comes after the first selection
    code = 0
    for g in range(4):
        for _ in range(3):
            t += 1.0
            clock.update("code", 10, code, now=t)
        t += 1.0
        code += 1
        clock.update("code", 10, code, now=t)
    assert clock.rate["fit"] == pytest.approx(1.0)
    assert clock.rate["code"] == pytest.approx(4.0)        # 16 s over 4 steps, the selections included
    assert clock.measured_ratio() == pytest.approx(4.0)
    assert clock.remaining() == pytest.approx(0.0)
    clock.tail = 2.5
    assert clock.remaining() == pytest.approx(2.5)          # the work after the last step is still to come


def test_estimate_after_an_encode_matches_that_encode(qtbot, tmp_path, patch_prior_dir):
    from combiner_app.progress import estimate_seconds

    w = make_window(qtbot, tmp_path, [str(patch_prior_dir)])
    src = tmp_path / "est.png"
    Image.fromarray(photo(48, 64, seed=5)).save(src)
    assert w.open_path(src)
    w.settings_panel.preset.setCurrentText("patch")
    with qtbot.waitSignal(w.encode_finished, timeout=60_000):
        w.compress()
    actual = w._marks["encoded"] - w._encode_t0            # Compress pressed -> result there
    fit, device, _ = w._current_settings()
    ratio, per_size = w._cost_model(device)
    est = estimate_seconds(w.settings_panel._plan, fit, per_size, ratio, sum(w._overheads(device)))
    head, tail = w._overheads(device)
    print(f"\nestimate {est:.2f} s for an encode that took {actual:.2f} s (ratio {ratio:.2f}, "
          f"outside the steps {head * 3072:.2f} + {tail * 3072:.2f} s)")
    assert est == pytest.approx(actual, rel=0.15)
    assert "about" in w.settings_panel.estimate_label.text()
    w.shutdown()


def test_the_encode_starts_after_the_live_tab_is_painted(window, qtbot, png):
    from PySide6.QtCore import QEvent, QObject

    assert window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    qtbot.wait(50)
    painted, started = [], []

    class PaintSpy(QObject):
        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.Paint:
                painted.append(time.perf_counter())
            return False
    spy = PaintSpy()
    window.live.installEventFilter(spy)
    start = window.runner.start

    def spy_start(*a, **k):
        started.append((time.perf_counter(), len(painted)))
        return start(*a, **k)
    window.runner.start = spy_start
    with qtbot.waitSignal(window.encode_finished, timeout=60_000) as sig:
        window.compress()
        assert window.busy() and not started          # Compress returns at once; the worker waits for a paint
    assert sig.args == [False] and window.result is not None
    assert len(started) == 1 and started[0][1] >= 1      # the Live tab was painted before the worker started
    assert window.tabs.currentWidget() is window.result_view
    window.live.removeEventFilter(spy)


def test_cancel_or_close_before_the_worker_started(window, qtbot, png):
    assert window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    with qtbot.waitSignal(window.encode_finished, timeout=5000) as sig:
        window.compress()
        window.cancel()                                # before the Live tab's first paint
    assert sig.args == [True] and window.result is None and not window.runner.is_running()
    assert window.settings_panel.compress_button.isEnabled() and not window.busy()
    window.compress()
    assert window.busy()
    assert window.shutdown(5000) and not window.busy() and window.result is None


def test_live_redraws_do_not_lay_the_plots_out_again(qtbot, patch_prior_dir):
    from combiner_app.live_view import LiveView
    from combiner_app.plans import plan_patches
    from engine.codec import EncodeEvent

    view = LiveView()
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    img = photo(48, 64, seed=2)
    plan = plan_patches(img.shape, 2.0, [str(patch_prior_dir)])
    view.start(img)
    view.set_fit(PATCH_FIT)
    view.set_plan(plan)
    titles = []
    orig = view.kl_plot.setTitle
    view.kl_plot.setTitle = lambda t, **k: (titles.append(t), orig(t, **k))
    rng = np.random.default_rng(0)
    n = plan.n_blocks
    for step in range(1, 41):
        probing = step <= 20
        kl = rng.random((plan.units, 1 if probing else n)) * 10
        ev = EncodeEvent("fit", step, 200, 0, 1 if probing else n, 20.0 + step / 10, kl)
        view.add_event(ev)
        view.redraw()
        qtbot.wait(1)
    assert len(titles) == 2        # once into the content probe, once out of it: not on every redraw
    assert "Probing" in titles[0] and "mean over" in titles[1]
    view.stop()


def test_the_cost_probe_fits_the_encodes_batch_and_stops_inside_a_step(patch_prior_dir):
    from combiner_app.plans import plan_patches
    from combiner_app.progress import probe_batch, probe_fit_cost

    dirs = [str(patch_prior_dir)]
    big = plan_patches((1024, 1536, 3), 2.0, dirs)
    assert big.units > patch_codec.MAX_UNITS and probe_batch(big) == patch_codec.MAX_UNITS
    small = plan_patches((48, 64, 3), 2.0, dirs)
    assert probe_batch(small) == small.units == 12
    assert probe_fit_cost(small, steps=3) > 0
    token = cancel.Token()
    threading.Timer(0.3, token.cancel).start()
    t0 = time.perf_counter()
    assert probe_fit_cost(big, token=token, steps=100_000, budget_s=1e9) is None   # an encode began
    assert time.perf_counter() - t0 < 1.5


def test_an_encode_imports_nothing_on_its_worker_thread(window, qtbot, png):
    """Imports hold the GIL (and PySide's import hook reads each new module's source): done by the window at
    start, never mid-job, where they stalled the first paint of the Live tab."""
    import sys

    assert window.open_path(png)
    window.settings_panel.preset.setCurrentText("fast")
    before = set(sys.modules)
    with qtbot.waitSignal(window.encode_finished, timeout=60_000):
        window.compress()
    assert window.result is not None and window.result.references      # JPEG/WebP/AVIF ran too
    assert sorted(set(sys.modules) - before) == []


def test_eta_of_the_coding_phase_counts_group_selections_apart_from_steps():
    """fast preset's shape: 16 groups, refinement steps shrinking 30 -> 5, a fixed A* selection per group."""
    from combiner_app.progress import PhaseClock, Work

    refine = [round(30 - 25 * g / 15) for g in range(16)]
    refine[-1] = 0
    step_s, select_s = 0.1, 2.0
    truth = sum(refine) * step_s + 16 * select_s

    def replay(with_groups: bool) -> tuple[float, float]:
        clock = PhaseClock(Work(1, 10, sum(refine), 16))
        t = 0.0
        for s in range(1, 11):
            t += step_s
            clock.update("fit", s, 0, now=t)
        t0, done = t, 0
        for g in range(5):                          # five groups coded: selection, then its refinement steps
            t += select_s
            clock.update("code", 10, done, now=t, groups_done=(g + 1) if with_groups else None)
            for _ in range(refine[g]):
                t += step_s
                done += 1
                clock.update("code", 10, done, now=t, groups_done=(g + 1) if with_groups else None)
        return clock.remaining(), truth - (t - t0)
    left, true_left = replay(True)
    assert left == pytest.approx(true_left, rel=0.03)
    left, true_left = replay(False)                 # a cost per step alone: the later, shorter groups cost more
    assert left < 0.85 * true_left
