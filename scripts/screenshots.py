"""Screenshots of the real COMBINER Studio window, for docs/screenshots/.

    xvfb-run -a python scripts/screenshots.py [--prior-dir DIR] [--only image|audio] [--audio-clip FILE]

Images: a 384x256 crop of scikit-image's astronaut photo with the installed (patch) priors -> empty.png,
live.png (mid-encode: the image building up beside the KL map), result.png (split view original | COMBINER),
result_vs_jpeg.png (COMBINER | JPEG at the same size), decoded_cmb.png (a saved .cmb reopened),
rate_explorer.png (large split view, RD plot, equal-size table).
Audio: a 3 s crop of a speech clip (written to a temporary WAV) with the installed audio priors (e.g.
`--prior-dir /tmp/sp` or COMBINER_PRIORS) -> audio_live.png, audio_result.png (spectrograms),
audio_waveforms.png, audio_decoded_cmb.png and audio_rate_explorer.png (COMBINER beside MP3 and Opus).
A part whose priors are not installed is skipped with a note.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "screenshots"
SAMPLE = ROOT / "resources" / "samples" / "astronaut_32.png"
SPEECH = Path("/work/shared/data/audio/speech_test/librispeech_test-clean_1089-134686-0000.flac")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior-dir", action="append", default=None, help="extra folder searched for priors")
    ap.add_argument("--only", choices=("image", "audio"), help="take only these screenshots")
    ap.add_argument("--audio-clip", type=Path, default=SPEECH, help="speech clip to crop 3 s from")
    ap.add_argument("--audio-start", type=float, default=1.0, help="start of the crop (s)")
    ap.add_argument("--audio-preset", default="fast", help="encoder preset for the audio shots")
    ap.add_argument("--skip-explorer", action="store_true", help="image part: leave rate_explorer.png as it is")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    from PySide6.QtWidgets import QApplication

    from engine import prior as prior_mod

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("COMBINER")
    app.setApplicationName("Studio")
    from PySide6.QtCore import QSettings

    from combiner_app.main_window import MainWindow

    installed = prior_mod.available(a.prior_dir)
    priors = [p for p in installed if p.modality == "image" and p.inr.out_dim == 3]
    audio_priors = [p for p in installed if p.modality == "audio"]
    print("priors:", ", ".join(f"{p.name} ({p.rate:g} {'kbps' if p.modality == 'audio' else 'bpp'})"
                               for p in priors + audio_priors))
    OUT.mkdir(parents=True, exist_ok=True)

    settings_dir = tempfile.TemporaryDirectory()   # keep the user's recent-files list clean
    settings = QSettings(str(Path(settings_dir.name) / "studio.ini"), QSettings.Format.IniFormat)
    win = MainWindow(prior_dirs=a.prior_dir, settings=settings)
    win.resize(1280, 800)
    win.show()

    def pump(cond, timeout=1200.0):
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
    status = 0
    if a.only != "audio":
        if priors:
            image_shots(win, pump, shot, priors, a.skip_explorer)
        else:
            print("no image prior installed; image screenshots skipped", file=sys.stderr)
            status = 1
    if a.only != "image":
        if audio_priors:
            audio_shots(win, pump, shot, audio_priors, a)
        else:
            print("no audio prior installed (try --prior-dir); audio screenshots skipped", file=sys.stderr)
            status = 1
    win.close()
    settings_dir.cleanup()
    return status


def photo_sample(tmp: Path) -> Path:
    """A 384x256 crop of scikit-image's astronaut photo (a real photo, 6x4 patches of 64x64)."""
    import numpy as np
    from PIL import Image
    from skimage import data

    p = tmp / "astronaut_384x256.png"
    Image.fromarray(np.ascontiguousarray(data.astronaut()[20:276, 64:448])).save(p)
    return p


def image_shots(win, pump, shot, priors, skip_explorer: bool = False) -> None:
    import dataclasses

    from engine.config import PRESETS

    shot("empty.png")
    tmpdir = tempfile.TemporaryDirectory()
    sample = photo_sample(Path(tmpdir.name))
    patch = [p for p in priors if p.patch]
    rate = min((p.rate for p in (patch or priors)), key=lambda r: abs(r - 0.3))
    # the same presets as the app, plus a shorter one for the ladder (six encodes)
    win.settings_panel.presets["ladder"] = dataclasses.replace(PRESETS["fast"], steps=200, refine_groups=8)
    win.explorer.patch_ladder = (0.1, 0.3, 0.6)     # three rungs keep the script to minutes on a CPU
    win.settings_panel.preset.addItem("ladder")
    win.open_path(sample)
    win.settings_panel.bpp.setValue(rate)
    win.settings_panel.preset.setCurrentText("fast")
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
    rv = win.result_view
    rv.split.set_pair("Original", "COMBINER")
    rv.split.set_zoom(2.0)                      # the face, at 200 %
    shot("result.png")
    rv.split.set_pair("COMBINER", "JPEG")
    shot("result_vs_jpeg.png")
    rv.split.fit()
    with tempfile.TemporaryDirectory() as tmp:   # save, then reopen the .cmb as a user would
        cmb = Path(tmp) / "astronaut_384x256.cmb"
        win.save_cmb(cmb)
        opened = {"done": False}
        win.file_opened.connect(lambda p: opened.update(done=True))
        win.open_path(cmb)
        pump(lambda: opened["done"])
        shot("decoded_cmb.png")
    win.open_path(sample)
    if skip_explorer:
        tmpdir.cleanup()
        return

    win.settings_panel.preset.setCurrentText("ladder")
    win.tabs.setCurrentWidget(win.explorer)
    ladder = {"done": False}
    win.explorer.ladder_done.connect(lambda c: ladder.update(done=True))
    win.explorer.explore()
    pump(lambda: ladder["done"])
    n = len(win.explorer.results)
    win.explorer.slider.setValue(n // 2)
    win.explorer.split.set_zoom(2.0)
    shot("rate_explorer.png")
    tmpdir.cleanup()


def audio_shots(win, pump, shot, audio_priors, a) -> None:
    import numpy as np

    from engine.audio_io import audio_file_bytes, read_audio

    x, sr, _ = read_audio(a.audio_clip)
    start = int(a.audio_start * sr)
    crop = x[start:start + 3 * sr]
    rates = sorted(p.rate for p in audio_priors)
    rate = min(rates, key=lambda r: abs(np.log(r / 10.0)))
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / f"{a.audio_clip.stem.split('_')[-1]}_3s.wav"
        wav.write_bytes(audio_file_bytes(crop, sr, ".wav"))
        win.open_path(wav)
        win.settings_panel.kbps.setValue(rate)
        win.settings_panel.preset.setCurrentText(a.audio_preset)
        state = {"mid": False, "done": False}

        def on_progress(i, ev):
            if not state["mid"] and ev.phase == "code" and ev.blocks_done >= ev.n_blocks // 2:
                state["mid"] = True
                win.live.redraw()
                shot("audio_live.png")

        win.runner.progress.connect(on_progress)
        def done(cancelled):
            state["done"] = True

        win.encode_finished.connect(done)
        win.compress()
        pump(lambda: state["done"])
        win.runner.progress.disconnect(on_progress)
        win.encode_finished.disconnect(done)
        view = win.audio_result
        view.views.setCurrentWidget(view.spectrograms)
        shot("audio_result.png")
        view.views.setCurrentWidget(view.waveforms)
        shot("audio_waveforms.png")
        view.views.setCurrentWidget(view.spectrograms)
        cmb = Path(tmp) / wav.with_suffix(".cmb").name
        win.save_cmb(cmb)
        opened = {"done": False}
        win.file_opened.connect(lambda p: opened.update(done=True))
        win.open_path(cmb)         # decodes in the worker
        pump(lambda: opened["done"])
        shot("audio_decoded_cmb.png")
        win.open_path(wav)
        ex = win.audio_explorer
        ex.ladder = tuple(rates)   # one rung per installed prior keeps this quick
        win.tabs.setCurrentWidget(ex)
        ladder = {"done": False}
        ex.ladder_done.connect(lambda c: ladder.update(done=True))
        ex.explore()
        pump(lambda: ladder["done"])
        ex.slider.setValue(len(ex.results) - 1)
        shot("audio_rate_explorer.png")


if __name__ == "__main__":
    sys.exit(main())
