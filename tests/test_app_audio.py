"""COMBINER Studio with audio: open/drop a WAV, encode, look at the result, save and reopen the .cmb, errors,
cancel and the audio rate explorer (pytest-qt, offscreen). Encodes use the tiny audio prior learned in
conftest.py on a synthetic voiced signal; the shipped priors are hidden from the engine's lookup."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
sf = pytest.importorskip("soundfile")

from PySide6.QtCore import QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDragEnterEvent, QDropEvent  # noqa: E402
from PySide6.QtWidgets import QApplication, QMessageBox  # noqa: E402

import engine.prior  # noqa: E402
from combiner_app.worker import preload_measures  # noqa: E402

preload_measures()   # the app does this on a background thread at start; here before any stall is measured
from engine import reference_codecs  # noqa: E402
from engine.audio_codec import decode_audio_full  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from benchmarks.event_loop_stall import GapProbe  # noqa: E402
from tests.conftest import FAST_FIT, assert_gui_kept_turning, voiced_audio  # noqa: E402

torch.set_num_threads(1)

SR = 16000
SLOW_FIT = FitConfig(steps=200_000, refine_first=6, refine_last=2, refine_groups=6)   # only ever cancelled


@pytest.fixture(autouse=True)
def no_shipped_priors(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(engine.prior, "SHIPPED_DIR", tmp_path_factory.mktemp("no_shipped_priors"))
    monkeypatch.delenv("COMBINER_PRIORS", raising=False)


@pytest.fixture
def wav(tmp_path):
    p = tmp_path / "clip.wav"
    sf.write(p, voiced_audio(0.5, SR, seed=5), SR, subtype="PCM_16")
    return p


def make_window(qtbot, tmp_path, prior_dirs, **kw):
    kw.setdefault("confirm_discard", False)
    kw.setdefault("probe_costs", False)       # each test's fresh settings would otherwise probe the machine   # no modal question when a test drops a result
    kw.setdefault("journal_dir", tmp_path / "journals")
    from combiner_app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    w = MainWindow(prior_dirs=prior_dirs, settings=settings, presets={"fast": FAST_FIT, "slow": SLOW_FIT}, **kw)
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path, tiny_audio_prior_dir):
    w = make_window(qtbot, tmp_path, [str(tiny_audio_prior_dir)], audio_ladder=(8.0, 16.0))
    yield w
    w.runner.shutdown()
    w.audio_explorer.shutdown()


def visible(w, tab) -> bool:
    return w.tabs.isTabVisible(w.tabs.indexOf(tab))


def compress(qtbot, w, kbps=16.0, preset="fast", timeout=60_000):
    w.settings_panel.preset.setCurrentText(preset)
    w.settings_panel.kbps.setValue(kbps)
    with qtbot.waitSignal(w.encode_finished, timeout=timeout) as sig:
        qtbot.mouseClick(w.settings_panel.compress_button, Qt.MouseButton.LeftButton)
    return sig.args[0]


def expect_error(qtbot, w, action, timeout=5000) -> str:
    with qtbot.waitSignal(w.error_shown, timeout=timeout) as sig:
        action()
    box = w.error_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "Traceback" not in box.text()
    box.close()
    return sig.args[0]


def drop(qtbot, w, path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    enter = QDragEnterEvent(QPoint(20, 20), *args)
    QApplication.sendEvent(w, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(w.file_opened, timeout=5000):
        QApplication.sendEvent(w, QDropEvent(QPointF(20, 20), *args))


def test_drop_wav_encode_save_export_and_reopen(window, qtbot, wav, tmp_path, tiny_audio_prior_dir):
    drop(qtbot, window, wav)
    clip = window.audio
    assert clip is not None and clip.samples.shape == (SR // 2, 1) and clip.sample_rate == SR
    sp = window.settings_panel
    assert sp.kbps.isVisibleTo(sp) and not sp.bpp.isVisibleTo(sp)
    assert "units" in sp.plan_label.text() and "kbps" in sp.plan_label.text()
    assert not sp._plan.resumable                          # 40 chunks: one batch, no journal
    assert visible(window, window.audio_result) and not visible(window, window.result_view)
    assert visible(window, window.audio_explorer) and not visible(window, window.explorer)
    assert window.live.preview_stack.currentWidget() is window.live.wave_plot   # not a blank image

    probe = GapProbe(10)
    probe.start()
    try:
        assert compress(qtbot, window) is False
    finally:
        r = probe.stop()
    print(f"\naudio encode: {r['ticks']} ticks, longest gap between 10 ms ticks {r['worst_ms']:.0f} ms, the GUI "
          f"thread's CPU in a gap at most {r['worst_busy_ms']:.0f} ms")
    assert_gui_kept_turning(r)

    res = window.result
    enc = res.encoded
    view = window.audio_result
    assert window.tabs.currentWidget() is view
    assert view.fields["File size"] == f"{len(enc.data)} bytes"
    assert view.fields["Rate"] == f"{enc.kbps:.2f} kbps" and abs(enc.kbps - 16.0) < 1.0
    assert "dB" in view.fields["PSNR"] and "dB" in view.fields["SNR"]
    assert set(view.spectrograms.images) == {"original", "decoded", "difference"}
    view.views.setCurrentWidget(view.waveforms)
    view.views.setCurrentWidget(view.overlay)
    assert len(view.waveforms.plots) == 3 and set(view.overlay.curves) == {"original", "decoded"}
    view.views.setCurrentWidget(view.spectrograms)
    assert view.save_button.isVisible() and view.export_button.isVisible()
    # the live view followed the encode: bits in kbit, mean KL over units, PSNR curve
    live = window.live
    assert live.steps and live.steps[-1] == live.last.total_steps
    assert "kbit" in live.bits_bar.format() and "units" in live.kl_plot.plotItem.titleLabel.text
    assert len(live.bars.opts["height"]) == enc.header.n_blocks

    out = tmp_path / "clip.cmb"
    assert window.save_cmb(out)
    assert out.read_bytes() == enc.data
    y, sr, hdr, _ = decode_audio_full(out.read_bytes(), prior_dirs=[str(tiny_audio_prior_dir)])
    assert sr == SR and np.array_equal(y, enc.reconstruction) and hdr.modality == "audio"
    exported = tmp_path / "clip_decoded.wav"
    assert window.export_audio(exported)
    z, zsr = sf.read(exported, dtype="float32", always_2d=True)
    assert zsr == SR and z.shape == y.shape and np.abs(z - y).max() < 1e-4   # 16-bit PCM
    before = wav.read_bytes()
    assert "refusing to overwrite" in expect_error(qtbot, window, lambda: window.export_audio(wav))
    assert wav.read_bytes() == before

    with qtbot.waitSignal(window.file_opened, timeout=10_000):
        assert window.open_path(out)
    f = view.fields
    assert f["Modality"] == "audio" and f["Bytes"] == str(len(enc.data)) and f["Channels"] == "1"
    assert f["Sample rate"] == f"{SR} Hz" and f["Samples"].startswith(f"{SR // 2} (0.50 s)")
    ub = hdr.unit_blocks
    assert f["Units"].startswith(f"{hdr.units} units, {min(ub)}-{max(ub)} blocks each") and "gain" in f["Units"]
    assert "chunk levels" in f["Units"]
    assert f["Prior id"] == hdr.prior_id.hex() and "kbps" in f["Rate"]
    assert set(view.spectrograms.images) == {"decoded"}
    assert np.array_equal(window.decoded_audio[0], enc.reconstruction)
    assert window.tabs.currentWidget() is view and not window.settings_panel.isVisible()
    assert not window.tabs.isTabEnabled(window.tabs.indexOf(window.live))
    assert window.export_action.isEnabled() and "WAV" in window.export_action.text()


def test_play_buttons_say_why_without_a_device(window, wav):
    window.open_path(wav)
    view = window.audio_result
    assert view.play_original.isVisibleTo(view) and view.play_decoded.isVisibleTo(view)
    assert view.play_original.isEnabled() == window.player.available()
    assert not view.play_decoded.isEnabled()          # nothing decoded yet
    window.player.backend = None   # no device: the buttons stay in view, disabled, with the reason beside them
    view.set_playable(False, "no audio output device found on this machine")
    assert view.play_original.isVisibleTo(view) and not view.play_original.isEnabled()
    assert "no audio output device" in view.play_note.text() and view.play_note.isVisibleTo(view)
    window.play("original")   # a no-op, never an exception


class _FakeStream:
    def __init__(self, **kw):
        self.kw, self.active = kw, True

    def start(self):
        pass

    def stop(self):
        self.active = False

    def close(self):
        pass


class _FakeSd:
    class CallbackStop(Exception):
        pass

    OutputStream = _FakeStream


def test_player_ab_switch_keeps_the_position(qtbot):
    """The A/B switch continues the other version at the same sample (PortAudio's callback driven by hand)."""
    from combiner_app.playback import Player

    p = Player(backend_name=None)
    p._sd, p.backend = _FakeSd, "sounddevice"
    a = np.linspace(-0.5, 0.5, 1000, dtype=np.float32)
    b = -a
    p.set_sources({"original": a, "decoded": b}, 1000)
    assert p.play("original")
    out = np.zeros((300, 1), np.float32)
    p._callback(out, 300, None, None)
    assert np.array_equal(out[:, 0], a[:300]) and abs(p.position() - 0.3) < 1e-9
    p.switch("decoded")
    p._callback(out, 300, None, None)
    assert np.array_equal(out[:, 0], b[300:600]) and p.current == "decoded"
    with pytest.raises(_FakeSd.CallbackStop):   # the end of the clip stops the stream
        p._callback(np.zeros((500, 1), np.float32), 500, None, None)
    p.stop()
    assert p.current == ""


def test_bad_audio_files_show_a_dialog(window, qtbot, wav, tmp_path, tiny_audio_prior, tiny_audio_prior_dir):
    from engine.audio_codec import encode_audio
    from engine.codec import run

    good = run(encode_audio(voiced_audio(0.25, SR, seed=2), SR, 16.0, prior=tiny_audio_prior, fit=FAST_FIT)).data
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x5A
    (tmp_path / "corrupt.cmb").write_bytes(bytes(bad))
    assert "checksum" in expect_error(qtbot, window, lambda: window.open_path(tmp_path / "corrupt.cmb"))
    (tmp_path / "noise.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    assert "not a readable audio file" in expect_error(qtbot, window, lambda: window.open_path(tmp_path / "noise.wav"))
    (tmp_path / "needs_prior.cmb").write_bytes(good)
    other = make_window(qtbot, tmp_path, prior_dirs=[])
    msg = expect_error(qtbot, other, lambda: other.open_path(tmp_path / "needs_prior.cmb"))
    assert "not installed" in msg
    # still usable afterwards
    assert window.open_path(wav) and window.audio is not None


def test_cancel_audio_encode_writes_nothing(window, qtbot, wav, tmp_path):
    window.open_path(wav)
    files_before = sorted(p.name for p in tmp_path.rglob("*"))
    window.settings_panel.preset.setCurrentText("slow")
    with qtbot.waitSignal(window.runner.progress, timeout=10_000):
        window.compress()
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.encode_finished, timeout=5000) as sig:
        qtbot.mouseClick(window.settings_panel.cancel_button, Qt.MouseButton.LeftButton)
    took = time.perf_counter() - t0
    print(f"\naudio cancel took {took * 1000:.0f} ms")
    assert sig.args == [True] and took < 2.0
    assert window.result is None and not window.runner.is_running()
    assert sorted(p.name for p in tmp_path.rglob("*")) == files_before
    assert window.settings_panel.compress_button.isEnabled()


def test_audio_rate_slider_flips_between_ladder_results(window, qtbot, wav):
    window.open_path(wav)
    window.settings_panel.preset.setCurrentText("fast")
    ex = window.audio_explorer
    window.tabs.setCurrentWidget(ex)
    with qtbot.waitSignal(ex.ladder_done, timeout=90_000) as sig:
        qtbot.mouseClick(ex.explore_button, Qt.MouseButton.LeftButton)
    assert sig.args == [False] and len(ex.results) == 2
    kbps = [r.encoded.kbps for r in ex.results]
    assert kbps == sorted(kbps) and abs(kbps[0] - 8) < 1 and abs(kbps[1] - 16) < 1.5
    refs = [c for c in ("mp3", "opus") if reference_codecs.available(c)]
    seen, flips = [], []
    for pos in (1, 0, 1):
        t0 = time.perf_counter()
        with qtbot.waitSignal(ex.shown, timeout=2000):
            if ex.slider.value() != pos:
                ex.slider.setValue(pos)
            else:
                ex.show_position(pos)
        flips.append(time.perf_counter() - t0)
        enc = ex.results[pos].encoded
        seen.append(ex.rate_label.text())
        assert f"{enc.kbps:.2f} kbps" == ex.rate_label.text()
        html = ex.table.text()
        assert str(len(enc.data)) in html and "PSNR" in html and "SNR" in html
        assert ex.images["COMBINER"].image is not None
        assert len(ex.points[pos]) == 1 + len(refs)
        for p in ex.points[pos][1:]:   # at the same size, or its smallest file (Ogg/Opus: about 1.4 kB)
            assert p.codec in html and (abs(p.nbytes - len(enc.data)) < 0.25 * len(enc.data)
                                        or "smallest file" in p.note)
    assert len(set(seen)) == 2
    print(f"\naudio slider flips took {', '.join(f'{t * 1000:.0f}' for t in flips)} ms")
    assert max(flips) < 0.25
    x, y = ex.rd_curves["COMBINER"].getData()
    assert len(x) == 2 and np.all(np.isfinite(y))
    assert window.settings_panel.compress_button.isEnabled()


def test_main_py_opens_an_audio_file(tmp_path, wav, tiny_audio_prior_dir):
    """`python main.py clip.wav` in a child process (its app.exec() must not end this session's loop)."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import runpy, sys; from PySide6.QtCore import QTimer; from PySide6.QtWidgets import QApplication\n"
            "app = QApplication(sys.argv[:1])\n"
            "from combiner_app.main_window import MainWindow\n"
            "def check():\n"
            "    ws = [w for w in app.topLevelWidgets() if isinstance(w, MainWindow)]\n"
            "    print('AUDIO', [(w.audio.samples.shape, w.audio.sample_rate) for w in ws if w.audio is not None],\n"
            "          [w.tabs.tabText(w.tabs.currentIndex()) for w in ws], flush=True)\n"
            "    [w.close() for w in ws]; app.quit()\n"
            "QTimer.singleShot(500, check)\n"
            "sys.argv = ['main.py'] + sys.argv[1:]\n"
            "runpy.run_path('main.py', run_name='__main__')\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_CONFIG_HOME=str(tmp_path / "config"))
    r = subprocess.run([sys.executable, "-c", code, str(wav), "--prior-dir", str(tiny_audio_prior_dir),
                        "--threads", "1"], capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert "AUDIO [((8000, 1), 16000)] ['Result']" in r.stdout, r.stdout + r.stderr


def test_stereo_44k_clip_plans_one_unit_per_chunk_and_channel(window, tmp_path, tiny_audio_prior):
    from engine.audio_codec import layout

    x = voiced_audio(0.3, 44100, seed=1)
    p = tmp_path / "stereo.flac"
    sf.write(p, np.stack([x, 0.5 * x], 1), 44100)
    assert window.open_path(p)
    clip = window.audio
    assert clip.channels == 2 and clip.sample_rate == 44100
    _, k = layout(clip.n_samples, 2, 44100, tiny_audio_prior)
    assert f"{2 * k} units" in window.settings_panel.plan_label.text()
    assert "2 channels" in window.settings_panel.file_label.text()
    # switching to an image and back flips the rate unit and the tabs
    from PIL import Image
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    window.open_path(img)
    sp = window.settings_panel
    assert sp.bpp.isVisibleTo(sp) and not sp.kbps.isVisibleTo(sp) and visible(window, window.result_view)
    assert not visible(window, window.audio_result) and window.audio is None


def test_opening_an_audio_cmb_shows_decode_progress(window, qtbot, tmp_path, tiny_audio_prior_dir):
    from engine.audio_codec import encode_audio
    from engine.codec import run
    from combiner_app.worker import decode_cmb

    dirs = [str(tiny_audio_prior_dir)]
    enc = run(encode_audio(voiced_audio(0.5, SR, seed=6), SR, 16.0, fit=FAST_FIT, prior_dirs=dirs))
    sounding = int(np.count_nonzero(np.asarray(enc.header.unit_blocks)))
    calls = []
    d = decode_cmb(enc.data, dirs, lambda done, total: calls.append((done, total)))
    assert d.modality == "audio" and np.array_equal(d.signal, enc.reconstruction)
    assert calls and calls[-1] == (sounding, sounding)                     # the units rendered, in the worker
    assert all(b[0] > a[0] for a, b in zip(calls, calls[1:]))
    out = tmp_path / "progress.cmb"
    out.write_bytes(enc.data)
    seen, bars = [], []
    window.decoder.decode_progress.connect(lambda done, total: seen.append((done, total)))
    with qtbot.waitSignal(window.file_opened, timeout=20_000):
        assert window.open_path(out)
        bar = window.job_bar                                              # determinate from the start
        bars.append((bar.isVisible(), bar.maximum(), bar.value(), bar.format()))
    assert bars[0][:3] == (True, sounding, 0) and bars[0][3].endswith("units")
    assert seen and seen[-1] == (sounding, sounding)
    qtbot.waitUntil(lambda: not window.job_bar.isVisible(), timeout=5000)   # gone once the worker is done
    assert window.decoded_audio is not None and "Decode time" in window.audio_result.fields


def test_explorer_ladder_keeps_only_rates_that_give_distinct_files(tiny_audio_prior_dir):
    """The audio ladder drops rungs below the smallest file (unless nothing is above it) and rungs that would
    write the same file as an earlier one; unknown rates (no prior) are skipped, not raised."""
    from combiner_app.audio_explorer import feasible_kbps
    from combiner_app.plans import AudioClip, plan_audio
    x = voiced_audio(1.0, SR, seed=3)
    clip = AudioClip(x.reshape(-1, 1) if x.ndim == 1 else x, SR)
    dirs = [str(tiny_audio_prior_dir)]
    smallest = plan_audio(clip, 0.01, dirs)
    assert smallest.raised and smallest.warnings
    big = plan_audio(clip, 1e4, dirs)                     # past the prior's capacity: all weights coded
    assert not big.raised
    got = feasible_kbps(clip, (0.01, 0.02, 8.0, 8.0001, 16.0, 1e4, 2e4), dirs)
    assert got[:3] == [8.0, 16.0, 1e4]                       # 0.01/0.02 raised, 8.0001 = 8, 2e4 = 1e4
    assert len(got) == 3
    assert feasible_kbps(clip, (0.01, 0.02), dirs) == [0.01]  # only the floor is left: it stays, once
    assert feasible_kbps(clip, (8.0,), []) == []              # no audio prior installed


def test_noise_shaping_box_is_for_audio_is_remembered_and_shapes_the_encode(qtbot, tmp_path, wav,
                                                                            tiny_audio_prior_dir):
    from engine.config import PERCEPTUAL

    w = make_window(qtbot, tmp_path, [str(tiny_audio_prior_dir)], audio_ladder=(8.0, 16.0))
    sp = w.settings_panel
    assert not sp.perceptual.isVisibleTo(sp)                        # nothing opened: image mode
    drop(qtbot, w, wav)
    assert sp.perceptual.isVisibleTo(sp) and not sp.perceptual.isChecked()
    plain = compress(qtbot, w) is False and w.result.encoded
    sp.perceptual.setChecked(True)
    fit = sp.fit_config()
    assert (fit.shape_g1, fit.shape_g2) == PERCEPTUAL and fit.steps == FAST_FIT.steps
    shaped = compress(qtbot, w) is False and w.result.encoded
    assert shaped.data != plain.data and shaped.data[1] == plain.data[1]       # another fit, the same kind
    y, _, _, _ = decode_audio_full(shaped.data, prior_dirs=[str(tiny_audio_prior_dir)])
    assert np.array_equal(y, shaped.reconstruction)
    w.store.sync()
    w.runner.shutdown()
    w.audio_explorer.shutdown()
    w.close()
    again = make_window(qtbot, tmp_path, [str(tiny_audio_prior_dir)], audio_ladder=(8.0, 16.0))
    assert again.settings_panel.perceptual.isChecked()                # the choice is remembered
    again.runner.shutdown()
    again.audio_explorer.shutdown()


def test_a_cancelled_long_encode_continues_where_it_stopped(qtbot, tmp_path, tiny_audio_prior_dir, wav, monkeypatch):
    """Batches of 7 chunks stand in for a long recording: cancel after two batches, compress again, and the
    encode continues from the journal the cancel left (engine/journal.py); the journal is gone afterwards."""
    from engine import audio_codec, journal as journal_mod

    monkeypatch.setattr(audio_codec, "MAX_UNITS", 7)
    w = make_window(qtbot, tmp_path, [str(tiny_audio_prior_dir)])
    journals = tmp_path / "journals"
    try:
        drop(qtbot, w, wav)
        real_add = journal_mod.Journal.add

        def add_then_cancel(self, record):
            real_add(self, record)
            if len(self.records) == 2:
                w.runner.cancel()

        monkeypatch.setattr(journal_mod.Journal, "add", add_then_cancel)
        assert compress(qtbot, w) is True
        text = w.status_label.text()
        assert "2 of 6 batches are kept" in text and "no file was written" in text, text
        assert len(list(journals.glob("*.journal"))) == 1
        monkeypatch.setattr(journal_mod.Journal, "add", real_add)
        assert compress(qtbot, w) is False
        assert w.result.resumed == (2, 6)
        assert "continued a cancelled encode: 2 of 6 batches" in w.status_label.text()
        assert w.settings_panel._plan.resumable
        w.settings_panel.refresh_estimate()               # the finished encode measured this machine's costs
        assert "cancelling keeps the finished batches" in w.settings_panel.estimate_label.text()
        assert not list(journals.glob("*.journal"))
        y, _, _, _ = decode_audio_full(w.result.encoded.data, [str(tiny_audio_prior_dir)])
        assert np.array_equal(y, w.result.encoded.reconstruction)
    finally:
        w.runner.shutdown()
        w.audio_explorer.shutdown()


def test_try_delta_box_codes_the_clip_both_ways_and_keeps_the_better(qtbot, tmp_path, wav, monkeypatch,
                                                                       audio_latent_prior_dir, tiny_audio_prior_dir):
    """'Also try a network delta' (audio, shared-network priors only): Compress then writes byte for byte the
    engine's adapt=EITHER encode of the clip (the better of the plain and the delta file), the explorer's
    encodes take the same choice, and a prior with no shared network leaves the box off."""
    from combiner_app import worker
    from engine import audio_codec
    from engine.audio_io import read_audio
    from engine.codec import run
    from engine.prior import Prior

    asked = []
    real = worker.audio_codec.encode_audio

    def spy(*a, **kw):
        asked.append(kw.get("adapt"))
        return real(*a, **kw)

    monkeypatch.setattr(worker.audio_codec, "encode_audio", spy)
    w = make_window(qtbot, tmp_path, [str(audio_latent_prior_dir)], audio_ladder=(32.0,))
    sp = w.settings_panel
    try:
        assert not sp.try_delta.isVisibleTo(sp)                          # nothing opened: image mode
        drop(qtbot, w, wav)
        sp.kbps.setValue(32.0)
        assert sp.try_delta.isVisibleTo(sp) and sp.try_delta.isEnabled() and not sp.try_delta.isChecked()
        assert sp.adapt() is False
        sp.try_delta.setChecked(True)
        assert sp.adapt() == audio_codec.EITHER
        assert compress(qtbot, w, kbps=32.0) is False and asked == [audio_codec.EITHER]
        x, sr, _ = read_audio(wav)
        prior = Prior.load(audio_latent_prior_dir / "tiny_audio_latent.safetensors")
        want = run(real(x, sr, 32.0, prior=prior, fit=FAST_FIT, adapt=audio_codec.EITHER))   # not spied on
        assert w.result.encoded.data == want.data
        units = w.audio_result.fields["Units"]      # the result says whether the delta was kept
        assert ("network delta" in units) == (want.header.delta_blocks > 0)
        ex = w.audio_explorer
        w.tabs.setCurrentWidget(ex)
        with qtbot.waitSignal(ex.ladder_done, timeout=90_000) as sig:
            qtbot.mouseClick(ex.explore_button, Qt.MouseButton.LeftButton)
        assert sig.args == [False] and asked == [audio_codec.EITHER] * 2
        assert ex.results[0].encoded.data == want.data
    finally:
        w.runner.shutdown()
        w.audio_explorer.shutdown()
    plain = make_window(qtbot, tmp_path, [str(tiny_audio_prior_dir)], audio_ladder=(8.0,))
    try:
        drop(qtbot, plain, wav)
        box = plain.settings_panel.try_delta
        assert box.isVisibleTo(plain.settings_panel) and not box.isEnabled()
        assert box.isChecked()                                      # the choice is remembered
        assert plain.settings_panel.adapt() is False
        assert compress(qtbot, plain) is False and asked[-1] is False
    finally:
        plain.runner.shutdown()
        plain.audio_explorer.shutdown()
