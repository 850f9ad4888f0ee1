"""Is a photo better coded whole or as independent tiles (each with its own network delta) at the same rate?

A cheap test of group-level deltas (issue 11, item 2): each tile of a full Kodak image is encoded as its own image
(its own header, delta and block budget) and the decoded tiles are put back together. The PSNR of the whole
reassembled image, and the total bytes, can then be set beside the one-file encode of the same image
(`kodak_rd.py`).

    OMP_NUM_THREADS=1 python benchmarks/tiles_vs_whole.py --data ../shared/data/images/kodak --image kodim01
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.codec import run  # noqa: E402
from engine.config import PRESETS  # noqa: E402
from engine.patch_codec import encode_image_batch  # noqa: E402
from engine.signals import psnr_uint8  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of Kodak PNGs")
    ap.add_argument("--image", default="kodim01")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--bpp", type=float, default=0.3)
    ap.add_argument("--preset", choices=list(PRESETS), default="fast")
    a = ap.parse_args()
    img = np.asarray(Image.open(Path(a.data) / f"{a.image}.png").convert("RGB"))
    h, w, t = img.shape[0], img.shape[1], a.tile
    cells = [(r, c) for r in range(0, h, t) for c in range(0, w, t)]
    start = time.process_time()
    res = run(encode_image_batch([img[r:r + t, c:c + t] for r, c in cells], a.bpp, fit=PRESETS[a.preset]))
    cpu = time.process_time() - start
    out = np.zeros_like(img)
    for (r, c), e in zip(cells, res):
        out[r:r + t, c:c + t] = e.reconstruction
    nbytes = sum(len(e.data) for e in res)
    print(json.dumps(dict(image=a.image, tile=t, tiles=len(cells), bytes=nbytes, bpp=8 * nbytes / (h * w),
                          psnr=psnr_uint8(img, out), tile_psnr=[round(e.psnr, 2) for e in res], encode_cpu_s=cpu)))


if __name__ == "__main__":
    main()
