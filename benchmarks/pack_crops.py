"""Pack the training crops of a folder of photos into one .npz (for a GPU machine that only gets this checkout).

    python benchmarks/pack_crops.py --data ../shared/data/images/photos_train --side 128 -n 1200 -o gpu_crops.npz

The crops are items skip .. skip + n - 1 of the same seeded stream `combiner learn-prior --patch` draws, so a
run on the packed file (`--data gpu_crops.npz`) sees exactly the crops a CPU run on the folder would.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from engine.media import load_training_patches  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="folder of photos (never the evaluation images)")
    ap.add_argument("--side", type=int, default=128, help="crop side (patch side x tile for latent priors)")
    ap.add_argument("-n", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    crops, files = load_training_patches(a.data, a.side, a.n, a.seed, a.skip)
    np.savez_compressed(a.out, images=crops)
    print(f"{a.out}: {len(crops)} crops of {a.side}x{a.side} from {len(files)} photos, "
          f"{Path(a.out).stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
