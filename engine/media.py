"""Reading and writing media files (Pillow for images), with readable errors."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import MediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}


def read_image(path: str | os.PathLike, keep_channels: bool = False) -> tuple[np.ndarray, list[str]]:
    """-> ((H, W, C) uint8, warnings). By default C = 3: grayscale is widened to RGB and alpha is dropped
    with a warning. With `keep_channels`: gray -> 1, gray + alpha -> 2, colour -> 3, colour + alpha -> 4."""
    from PIL import Image, UnidentifiedImageError

    warnings = []
    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
            if has_alpha and not keep_channels:
                warnings.append(f"{Path(path).name}: alpha channel dropped (this prior codes colour only)")
            if mode.startswith("I;16") or mode in ("I", "F"):
                arr = np.asarray(im, dtype=np.float64)
                hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
                arr = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
                rgb = arr[:, :, None] if keep_channels else np.repeat(arr[:, :, None], 3, axis=2)
                warnings.append(f"{Path(path).name}: {mode} image reduced to 8 bits")
            elif keep_channels:
                gray = mode in ("1", "L", "LA", "La") or (mode == "P" and im.palette and im.palette.mode == "L")
                target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
                rgb = np.asarray(im.convert(target))
                if rgb.ndim == 2:
                    rgb = rgb[:, :, None]
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
    if fmt in ("JPEG", "PPM") and img.shape[2] in (2, 4):
        img = img[:, :, :-1]  # these formats have no alpha
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


def load_training_patches(path: str | os.PathLike, patch: int, n_items: int, seed: int = 0,
                          skip: int = 0) -> tuple[np.ndarray, list[Path]]:
    """Square `patch` x `patch` crops from a folder of photos of any size -> ((N, patch, patch, 3) uint8, files).

    Crops are items skip .. skip + n_items - 1 of one seeded stream (photo drawn uniformly, then a uniform
    position inside it), so a later stage with a larger `skip` sees crops the earlier stages did not."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else []
    if not files:
        raise MediaError(f"{p}: no images in this folder")
    imgs = [read_image(f)[0] for f in files]
    imgs = [(f, i) for f, i in zip(files, imgs) if i.shape[0] >= patch and i.shape[1] >= patch]
    if not imgs:
        raise MediaError(f"{p}: no image is at least {patch}x{patch}")
    rng = np.random.default_rng(seed)
    out = []
    for k in range(skip + n_items):
        _, im = imgs[int(rng.integers(len(imgs)))]
        y = int(rng.integers(im.shape[0] - patch + 1))
        x = int(rng.integers(im.shape[1] - patch + 1))
        if k >= skip:
            out.append(im[y:y + patch, x:x + patch])
    return np.stack(out), [f for f, _ in imgs]
