"""Write the fuzzing seed corpus: one small, valid `.cmb` file of every kind, coded with the shipped priors.

    PYTHONPATH=. python fuzz/make_corpus.py        # rewrites fuzz/corpus/{container,image,patch,alpha,audio}/

The fits are deliberately short: the seeds need to be valid files that reach every decoder, not good pictures.
The committed `mono_0.1s.cmb` and `stereo_44k.cmb` were written before audio kind 10 existed and are kind-8 files
(kept: old files must keep decoding); rerunning this script rewrites them as kind 10. `--only SUBSTRING` writes
only the seeds whose name holds it (`--only gain_`: the kind-10 seed; `--only delta_gap`: the kind-12 seed;
`--only env`: the kind-13 and kind-14 seeds; `--only groups3`: the three-level kind-15 seed; `--only floors`:
the spectral-floor seeds, image and audio; `--only wiener`: the kind-15 seed with Wiener filters).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from engine.audio_codec import encode_audio  # noqa: E402
from engine.codec import encode_batch, run  # noqa: E402
from engine.config import FitConfig  # noqa: E402
from engine.patch_codec import encode_image  # noqa: E402
from engine.prior import Prior  # noqa: E402
from engine import restoration  # noqa: E402
from engine.restoration import NONE  # noqa: E402

FIT = FitConfig(steps=20, refine_first=2, refine_last=1, refine_groups=2)
PRIORS = HERE.parent / "priors"


def main() -> None:
    torch.set_num_threads(1)
    rs = np.random.default_rng(0)
    grad = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3).astype(np.uint8)
    out = {}
    cifar = Prior.load(PRIORS / "cifar10-0.3bpp.safetensors")
    out["image/cifar_32x32.cmb"] = run(encode_batch([grad], 0.3, prior=cifar, fit=FIT))[0].data
    photo = Prior.load(PRIORS / "photo64-0.1bpp.safetensors")
    img = rs.integers(0, 256, (40, 70, 3)).astype(np.uint8)
    out["patch/rgb_70x40.cmb"] = run(encode_image(img, 0.3, prior=photo, fit=FIT)).data
    shared = Prior.load(PRIORS / "photo64-shared-0.3bpp-s4.safetensors")   # kind 11: the image's network delta
    out["patch/delta_70x40.cmb"] = run(encode_image(img, 0.5, prior=shared, fit=FIT)).data
    # kind 15: group deltas (asked for one per patch; the budget gives groups of 2x2 patches: 1x2 groups, one cut)
    wide = np.concatenate([img, img[:, ::-1]], 1)[:, :130]
    wide = np.concatenate([wide, wide[::-1]], 0)[:70]
    out["patch/groups_130x70.cmb"] = run(encode_image(wide, 2.0, prior=shared, fit=FIT, delta_group=1,
                                                      delta_top=False, restore=NONE)).data
    # kind 15 with flag bit 0: the same groups under an image-level delta (three levels)
    out["patch/groups3_130x70.cmb"] = run(encode_image(wide, 2.0, prior=shared, fit=FIT, delta_group=1,
                                                       restore=NONE)).data
    # kind 15 with flag bits 0 and 1: and spectral floors (engine/image_floors.py)
    out["patch/floors_130x70.cmb"] = run(encode_image(wide, 2.0, prior=shared, fit=FIT, delta_group=1)).data
    # kind 15 with flag bits 0, 1 and 2: and Wiener filters (engine/image_wiener.py; an image this small gets none
    # by default: the filters' budget raised to 0.05 bpp, 56 bytes)
    restoration.WIENER_BPP, bpp = 0.05, restoration.WIENER_BPP
    out["patch/wiener_130x70.cmb"] = run(encode_image(wide, 2.0, prior=shared, fit=FIT, delta_group=1)).data
    restoration.WIENER_BPP = bpp
    gray = rs.integers(0, 256, (20, 30, 1)).astype(np.uint8)
    out["patch/gray_30x20.cmb"] = run(encode_image(gray, 0.5, prior=photo, fit=FIT)).data
    rgba = np.concatenate([img[:24, :24], np.tile(np.arange(24, dtype=np.uint8)[None, :, None] * 10, (24, 1, 1))], 2)
    out["alpha/rgba_24x24.cmb"] = run(encode_image(rgba, 1.0, prior=photo, fit=FIT)).data
    la = np.concatenate([gray, gray], 2)
    out["alpha/la_30x20.cmb"] = run(encode_image(la, 1.0, prior=photo, fit=FIT)).data
    speech = Prior.load(PRIORS / "speech16k-5kbps.safetensors")
    t = np.arange(1600) / 16000
    # (the seeds made before band gains existed are remade without them: bands=False)
    out["audio/mono_0.1s.cmb"] = run(encode_audio((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000, 5,
                                                  prior=speech, fit=FIT, bands=False)).data
    st = np.stack([np.sin(2 * np.pi * 300 * t[:441]), np.cos(2 * np.pi * 500 * t[:441])], 1).astype(np.float32) * 0.3
    out["audio/stereo_44k.cmb"] = run(encode_audio(st, 44100, 8, prior=speech, fit=FIT, bands=False)).data
    # kind 10: a quiet clip with a digitally silent gap (silent units, several block-count classes)
    gap = (0.001 * np.sin(2 * np.pi * 180 * np.arange(4000) / 16000)).astype(np.float32)
    gap[1600:3200] = 0.0
    out["audio/gain_gap_0.25s.cmb"] = run(encode_audio(gap, 16000, 6, prior=speech, fit=FIT, envelope=False)).data
    latent_speech = Prior.load(PRIORS / "speech16k-latent-24kbps-s3.safetensors")   # kind 12: the clip's delta
    out["audio/delta_gap_0.25s.cmb"] = run(encode_audio(gap * 100, 16000, 24, prior=latent_speech, fit=FIT,
                                                                   adapt=True, envelope=False)).data
    # kinds 13 and 14: the same gap clip with a chunk envelope, alone and with the clip's delta
    env_gap = gap * 100
    env_gap[:800] *= 0.05   # chunks at different levels
    out["audio/env_gap_0.25s.cmb"] = run(encode_audio(env_gap, 16000, 12, prior=latent_speech, fit=FIT,
                                                      bands=False)).data
    out["audio/envdelta_gap_0.25s.cmb"] = run(encode_audio(env_gap, 16000, 24, prior=latent_speech, fit=FIT,
                                                           adapt=True, bands=False)).data
    # kind 5: the same clip with band gains (flags: envelope and bands; then the delta too), and a stereo clip's
    out["audio/bands_gap_0.25s.cmb"] = run(encode_audio(env_gap, 16000, 12, prior=latent_speech, fit=FIT)).data
    out["audio/bandsdelta_gap_0.25s.cmb"] = run(encode_audio(env_gap, 16000, 24, prior=latent_speech, fit=FIT,
                                                             adapt=True)).data
    out["audio/bands_stereo_44k.cmb"] = run(encode_audio(st * 0.5, 44100, 24, prior=latent_speech, fit=FIT)).data
    # (the three seeds above were made with band-gain sets 0 and 1; the encoder now writes sets 2 and 3, with noise
    # floors: these two seeds, and the above when remade)
    out["audio/floors_gap_0.25s.cmb"] = run(encode_audio(env_gap, 16000, 12, prior=latent_speech, fit=FIT)).data
    out["audio/floors_stereo_44k.cmb"] = run(encode_audio(st * 0.5, 44100, 24, prior=latent_speech, fit=FIT)).data
    if "--only" in sys.argv:   # --only SUBSTRING: write only the seeds whose name holds it
        out = {k: v for k, v in out.items() if sys.argv[sys.argv.index("--only") + 1] in k}
    for name, data in out.items():
        for d in (name.split("/")[0], "container"):
            p = HERE / "corpus" / d / Path(name).name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            print(p.relative_to(HERE.parent), len(data), "bytes")


if __name__ == "__main__":
    main()
