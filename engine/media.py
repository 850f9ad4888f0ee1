"""Reading and writing media files (Pillow for images), with readable errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import MediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, list[str]]:
    """-> ((H, W, 3) uint8 RGB, warnings). Grayscale is widened to RGB; alpha is dropped with a warning."""
    from PIL import Image, UnidentifiedImageError

    warnings = []
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
                warnings.append(f"{Path(path).name}: alpha channel dropped (not supported yet)")
            if mode.startswith("I;16") or mode in ("I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
                arr = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
                rgb = np.repeat(arr[:, :, None], 3, axis=2)
                warnings.append(f"{Path(path).name}: {mode} image reduced to 8 bits")
            else:
                rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MediaError(f"{path}: is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise MediaError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    except Image.DecompressionBombError as e:
        raise MediaError(f"{path}: image too large ({e})") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise MediaError(f"{path}: empty image")
    return np.ascontiguousarray(rgb), warnings


def encode_image_file(img: np.ndarray, suffix: str) -> bytes:
    """(H, W, C) uint8 -> file bytes in the format named by suffix (png by default)."""
    import io

    from PIL import Image

    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
           ".webp": "WEBP", ".ppm": "PPM"}.get(suffix.lower(), "PNG")
    arr = img[:, :, 0] if img.shape[2] == 1 else img
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def write_atomic(path: str | os.PathLike, data: bytes, protect: list[str | os.PathLike] = ()) -> None:
    """Write via a temporary file in the same folder and rename; refuse to overwrite any path in `protect`."""
    path = Path(path)
    for p in protect:
        try:
            if path.exists() and os.path.samefile(path, p):
                raise MediaError(f"refusing to overwrite the input file {p}")
        except FileNotFoundError:
            pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise MediaError(f"cannot write {path}: {e.strerror or e}") from None


def load_training_images(path: str | os.PathLike) -> np.ndarray:
    """A training set: an .npz with an `images` array (N, H, W, C) uint8, or a folder of same-size images."""
    p = Path(path)
    if p.is_file() and p.suffix == ".npz":
        with np.load(p) as z:
            if "images" not in z:
                raise MediaError(f"{p}: no 'images' array in this .npz")
            x = z["images"]
        if x.ndim != 4 or x.dtype != np.uint8:
            raise MediaError(f"{p}: 'images' must be (N, H, W, C) uint8, got {x.shape} {x.dtype}")
        return x
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MediaError(f"{p}: no images in this folder")
        imgs = [read_image(f)[0] for f in files]
        if len({i.shape for i in imgs}) != 1:
            raise MediaError(f"{p}: images differ in size; crop them to one size first")
        return np.stack(imgs)
    raise MediaError(f"{p}: expected an .npz file or a folder of images")
