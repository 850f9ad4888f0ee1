"""COMBINER Studio with images of any size (patch coding): open, encode, look at the result, save and reopen the
.cmb, corrupt files, the routing between patch and single-image coding, the live view and the rate explorer
(pytest-qt, offscreen). Encodes use the tiny 16x16 patch prior learned in conftest.py; the shipped priors are
hidden from the engine's lookup."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

import engine.prior  # noqa: E402
from engine import container  # noqa: E402
from engine.codec import run  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from engine.patch_codec import EncodedImage, decode_image_full, encode_image  # noqa: E402
from tests.conftest import PATCH_FIT, photo  # noqa: E402

torch.set_num_threads(1)

SLOW_FIT = FitConfig(steps=200_000, refine_first=6, refine_last=2, refine_groups=6)   # only ever cancelled


@pytest.fixture(autouse=True)
def no_shipped_priors(monkeypatch, tmp_path_factory):
    monkeypatch.setattr(engine.prior, "SHIPPED_DIR", tmp_path_factory.mktemp("no_shipped_priors"))
    monkeypatch.delenv("COMBINER_PRIORS", raising=False)


def make_window(qtbot, tmp_path, prior_dirs, **kw):
    kw.setdefault("confirm_discard", False)
    kw.setdefault("probe_costs", False)       # each test's fresh settings would otherwise probe the machine   # no modal question when a test drops a result
    from combiner_app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    w = MainWindow(prior_dirs=prior_dirs, settings=settings, presets={"patch": PATCH_FIT, "slow": SLOW_FIT}, **kw)
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def window(qtbot, tmp_path, patch_prior_dir):
    w = make_window(qtbot, tmp_path, [str(patch_prior_dir)], patch_ladder=(1.0, 2.0))
    yield w
    w.runner.shutdown()
    w.explorer.shutdown()


def save_png(path, img):
    Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(path)
    return path


def rgba(h, w, seed=0):
    rgb = photo(h, w, seed=seed)
    alpha = (np.arange(w)[None, :] * (255 // max(1, w - 1))).repeat(h, 0).astype(np.uint8)
    return np.concatenate([rgb, alpha[:, :, None]], axis=2)


def compress(qtbot, w, bpp=2.0, preset="patch", timeout=60_000):
    w.settings_panel.preset.setCurrentText(preset)
    w.settings_panel.bpp.setValue(bpp)
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


def test_rgb_any_size_encode_save_and_reopen(window, qtbot, tmp_path, patch_prior_dir):
    src = save_png(tmp_path / "odd.png", photo(40, 50, seed=3))
    with qtbot.waitSignal(window.file_opened, timeout=5000):
        assert window.open_path(src)
    assert window.image.shape == (40, 50, 3)
    assert window.settings_panel.compress_button.isEnabled()
    assert "patches" in window.settings_panel.plan_label.text()
    assert compress(qtbot, window) is False
    res = window.result
    enc = res.encoded
    assert isinstance(enc, EncodedImage) and enc.reconstruction.shape == (40, 50, 3)
    assert res.plan.patch == 16 and res.plan.grid == (3, 4)
    # result view: the three panels, the numbers from the real file, the blocks-per-patch map
    rv = window.result_view
    assert window.tabs.currentWidget() is rv
    assert np.array_equal(rv.rec_item.image, enc.reconstruction)
    assert rv.err_item.image.shape == (40, 50)
    f = rv.fields
    assert f["File size"] == f"{len(enc.data)} bytes" and f["Rate"] == f"{8 * len(enc.data) / 2000:.3f} bpp"
    assert f["PSNR"] == f"{enc.psnr:.2f} dB" and f["Patches"] == "4×3 of 16×16"
    assert not rv.alloc.isHidden() and rv.alloc_item.image.shape == (3, 4)
    assert np.array_equal(rv.alloc_item.image.ravel(), enc.unit_blocks)
    # the live view drew the patch map and per-block bars from the patch events
    live = window.live
    assert live.steps and live.steps[-1] == live.last.total_steps
    assert live.preview_stack.currentWidget() is live.patch_map
    assert live.patch_kl.shape == (12,) and np.all(live.patch_kl > 0)
    assert len(live.bars.opts["height"]) == enc.unit_blocks.max()

    out = tmp_path / "odd.cmb"
    assert window.save_cmb(out)
    assert out.read_bytes() == enc.data
    dec, hdr, _ = decode_image_full(out.read_bytes(), prior_dirs=[str(patch_prior_dir)])
    assert hdr.patch == 16 and np.array_equal(dec, enc.reconstruction)
    png_out = tmp_path / "odd_decoded.png"
    assert window.export_png(png_out)
    assert np.array_equal(np.asarray(Image.open(png_out)), enc.reconstruction)

    with qtbot.waitSignal(window.file_opened, timeout=10_000):
        assert window.open_path(out)
    img, header, _, nbytes = window.decoded
    assert header.patch == 16 and nbytes == len(enc.data)
    assert np.array_equal(img, enc.reconstruction)
    assert np.array_equal(rv.dec_item.image, enc.reconstruction)
    assert rv.pages.currentWidget() is rv.single
    assert rv.fields["Shape"] == "50×40×3" and rv.fields["Patches"] == "4×3 of 16×16"
    assert not rv.alloc.isHidden()
    assert window.export_action.isEnabled() and not window.save_action.isEnabled()


def test_rgba_keeps_its_alpha(window, qtbot, tmp_path, patch_prior_dir):
    src_img = rgba(30, 40, seed=5)
    src = save_png(tmp_path / "alpha.png", src_img)
    assert window.open_path(src)
    assert window.image.shape == (30, 40, 4) and "alpha" in window.settings_panel.file_label.text()
    assert window.settings_panel.compress_button.isEnabled()
    # the original is shown over a checkerboard, as RGB
    assert window.result_view.dec_item.image.shape == (30, 40, 3)
    assert compress(qtbot, window, bpp=3.0) is False
    enc = window.result.encoded
    assert enc.reconstruction.shape == (30, 40, 4)
    assert np.array_equal(enc.reconstruction[:, :, 3], src_img[:, :, 3])   # lossless alpha
    rv = window.result_view
    assert rv.rec_item.image.shape == (30, 40, 3) and rv.orig_item.image.shape == (30, 40, 3)
    assert rv.err_item.image.shape == (30, 40) and "Alpha" in rv.fields
    out = tmp_path / "alpha.cmb"
    assert window.save_cmb(out)
    png_out = tmp_path / "alpha_decoded.png"
    assert window.export_png(png_out)
    back = np.asarray(Image.open(png_out))
    assert back.shape == (30, 40, 4) and np.array_equal(back, enc.reconstruction)
    with qtbot.waitSignal(window.file_opened, timeout=10_000):
        assert window.open_path(out)
    img, header, _, _ = window.decoded
    assert header.shape == (30, 40, 4) and header.alpha
    assert np.array_equal(img, enc.reconstruction)
    assert window.result_view.dec_item.image.shape == (30, 40, 3)


def test_gray_image_opens_as_gray(window, qtbot, tmp_path):
    src = save_png(tmp_path / "gray.png", photo(20, 24, seed=2)[:, :, :1])
    assert window.open_path(src)
    assert window.image.shape == (20, 24, 1) and "gray" in window.settings_panel.file_label.text()
    assert window.result_view.dec_item.image.shape == (20, 24)    # shown as gray
    assert "patches" in window.settings_panel.plan_label.text()


def test_large_images_are_no_longer_refused(window, qtbot, tmp_path):
    src = save_png(tmp_path / "big.png", np.tile(photo(64, 64, seed=1), (8, 12, 1)))   # 768x512
    errors = []
    window.error_shown.connect(errors.append)
    assert window.open_path(src)
    assert not errors and window.image.shape == (512, 768, 3)
    assert window.settings_panel.compress_button.isEnabled()
    assert "48×32 patches" in window.settings_panel.plan_label.text()
    assert window.explorer.explore_button.isEnabled()
    # an encode starts; its probe events (one KL per patch) draw, then Cancel stops it
    window.settings_panel.preset.setCurrentText("slow")
    with qtbot.waitSignal(window.runner.progress, timeout=30_000) as sig:
        window.compress()
    ev = sig.args[1]
    assert ev.kl_bits.shape[1] == 1
    assert ev.preview.shape == (384, 16, 16, 3)   # posterior-mean patches of the first batch (of 4)
    window.live.redraw()
    assert window.live.preview_stack.currentWidget() is window.live.patch_map
    assert window.live.patch_kl.shape == (48 * 32,)
    shown = window.live.patch_preview_item.image          # the image building up beside the map
    assert shown.shape == (512, 768, 3)
    assert np.array_equal(shown[:16, :16], ev.preview[0]) and np.array_equal(shown[16:32, :16], ev.preview[48])
    assert window.live.progress()[1] == window.live.work.total   # a fixed total over the 4 batches
    assert window.live.work.batches == 4
    with qtbot.waitSignal(window.encode_finished, timeout=10_000) as sig:
        window.cancel()
    assert sig.args == [True] and window.result is None
    assert not list(tmp_path.glob("*.cmb"))


def test_routing_like_the_cli(qtbot, tmp_path, tiny_prior_dir, patch_prior_dir):
    """With a 32x32 single-image prior and a patch prior installed: 32x32 RGB is coded as one INR, any other
    size (or alpha) by patches."""
    from combiner_app.plans import plan_image, use_patches

    dirs = [str(tiny_prior_dir), str(patch_prior_dir)]
    assert not use_patches((32, 32, 3), dirs) and not use_patches((32, 32, 1), dirs)
    assert use_patches((32, 32, 4), dirs) and use_patches((40, 50, 3), dirs)
    assert not use_patches((40, 50, 3), [str(tiny_prior_dir)])    # no patch prior: single-image only
    assert plan_image((32, 32, 3), 1.0, dirs).patch == 0
    p = plan_image((40, 50, 3), 1.0, dirs)
    assert p.patch == 16 and p.units == 12 and p.total_blocks >= 12
    w = make_window(qtbot, tmp_path, dirs)
    src = save_png(tmp_path / "small.png", photo(32, 32, seed=4))
    assert w.open_path(src)
    assert w.image.shape == (32, 32, 3) and "patches" not in w.settings_panel.plan_label.text()
    src = save_png(tmp_path / "small_alpha.png", rgba(32, 32, seed=4))
    assert w.open_path(src)
    assert w.image.shape == (32, 32, 4) and "patches" in w.settings_panel.plan_label.text()


def test_corrupt_patch_cmb_and_missing_prior(window, qtbot, tmp_path, patch_prior, patch_prior_dir):
    data = run(encode_image(rgba(20, 30, seed=6), 2.0, prior=patch_prior, fit=PATCH_FIT)).data
    assert container.read(data)[0].patch == 16
    bad = bytearray(data)
    bad[-3] ^= 0xFF
    (tmp_path / "corrupt.cmb").write_bytes(bytes(bad))
    assert "checksum" in expect_error(qtbot, window, lambda: window.open_path(tmp_path / "corrupt.cmb"))
    (tmp_path / "short.cmb").write_bytes(data[: len(data) // 2])
    msg = expect_error(qtbot, window, lambda: window.open_path(tmp_path / "short.cmb"))
    assert "truncated" in msg or "checksum" in msg
    assert window.decoded is None
    good = tmp_path / "good.cmb"
    good.write_bytes(data)
    w = make_window(qtbot, tmp_path, prior_dirs=[])
    msg = expect_error(qtbot, w, lambda: w.open_path(good))
    assert container.read(data)[0].prior_id.hex() in msg and "not installed" in msg
    with qtbot.waitSignal(window.file_opened, timeout=10_000):
        assert window.open_path(good)
    assert window.decoded[0].shape == (20, 30, 4)


def test_rate_explorer_codes_patches(window, qtbot, tmp_path):
    src = save_png(tmp_path / "ex.png", photo(24, 40, seed=8))
    assert window.open_path(src)
    window.settings_panel.preset.setCurrentText("patch")
    ex = window.explorer
    assert ex.ladder_for(window.image.shape) == (1.0, 2.0)
    with qtbot.waitSignal(ex.ladder_done, timeout=90_000) as sig:
        qtbot.mouseClick(ex.explore_button, Qt.MouseButton.LeftButton)
    assert sig.args == [False] and len(ex.results) == 2
    assert all(isinstance(r.encoded, EncodedImage) for r in ex.results)
    rates = [r.encoded.bpp for r in ex.results]
    assert rates == sorted(rates) and abs(rates[-1] - 2.0) < 0.4
    for pos in (0, 1):
        with qtbot.waitSignal(ex.shown, timeout=2000):
            ex.slider.setValue(pos) if ex.slider.value() != pos else ex.show_position(pos)
        enc = ex.results[pos].encoded
        assert np.array_equal(ex.split.sources["COMBINER"], enc.reconstruction)
        assert "JPEG" in ex.table.text()
        assert all(o.decoded.shape == enc.reconstruction.shape for o in ex.baselines_for(pos))
    x, _ = ex.rd_curves["JPEG"].getData()
    assert x is not None and len(x) > 3    # the curves came from the worker
