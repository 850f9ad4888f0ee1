"""Reading and writing media files (Pillow for images), with readable errors."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

import numpy as np

from .errors import MediaError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm"}


def _reason(e: BaseException) -> str:
    """A library's message without its class name, on one line."""
    msg = " ".join(str(e).split()) or type(e).__name__
    return msg.replace("UnidentifiedImageError", "").strip(": ") or "unknown format"


def _to_8bit(arr: np.ndarray, mode: str, name: str, warnings: list[str]) -> np.ndarray:
    """A 16-bit, 32-bit integer or float image plane -> uint8, scaled by its value range:
    floats in [0, 1] are scaled by 255; integers by the smallest of 8, 16 or 32 bits that holds them."""
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        warnings.append(f"{name}: NaN or infinite pixels set to 0")
        arr = np.where(np.isfinite(arr), arr, 0.0)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scale, what = 1.0, "floats in [0, 1]"
    elif mode.startswith("I;16") or (hi <= 65535 and hi > 255):
        scale, what = 65535.0, "16-bit values"
    elif hi <= 255:
        scale, what = 255.0, "8-bit values"
    else:
        scale, what = float(2 ** 31 - 1), "32-bit values"   # Pillow's "I" is signed 32-bit
    if lo < 0:
        warnings.append(f"{name}: negative pixel values clipped to 0")
    warnings.append(f"{name}: {mode} image ({what}) reduced to 8 bits")
    return np.clip(np.round(arr / scale * 255.0), 0, 255).astype(np.uint8)


def read_image(path: str | os.PathLike, keep_channels: bool = False,
               max_pixels: int | None = None) -> tuple[np.ndarray, list[str]]:
    """-> ((H, W, C) uint8, warnings). By default C = 3: grayscale is widened to RGB and alpha is dropped
    with a warning. With `keep_channels`: gray -> 1, gray + alpha -> 2, colour -> 3, colour + alpha -> 4.
    EXIF orientation is applied (the picture is coded as it is shown); an animation keeps its first frame,
    with a warning; 16-bit, 32-bit integer and float images are scaled to 8 bits by their value range.
    Images above `max_pixels` (default: the decode limit, engine.limits) are refused from their header."""
    import warnings as pywarnings

    from PIL import Image, ImageOps

    from . import limits

    p = Path(path)
    name = p.name
    warnings = []
    if max_pixels is None:
        max_pixels = limits.current().max_pixels
    if p.is_dir():
        raise MediaError(f"{path}: is a folder, not an image")
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        with pywarnings.catch_warnings():
            pywarnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None   # our own limit below, with our own message
            with Image.open(path) as im0:
                w, h = im0.size
                if max_pixels and w * h > max_pixels:
                    raise MediaError(f"{path}: a {w}x{h} image ({w * h:,} pixels) is above the limit of "
                                     f"{max_pixels:,} pixels; pass --max-pixels {w * h} (or set "
                                     f"{limits.ENV_PIXELS}) to accept it")
                frames = getattr(im0, "n_frames", 1)
                if frames > 1:
                    warnings.append(f"{name}: an animation of {frames} frames; only the first frame is coded")
                im0.load()
                im = ImageOps.exif_transpose(im0)   # coded as it is shown (EXIF orientation applied)
                mode = im.mode
                has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
                if has_alpha and not keep_channels:
                    warnings.append(f"{name}: alpha channel dropped (this prior codes colour only)")
                if mode.startswith("I;16") or mode in ("I", "F"):
                    arr = _to_8bit(np.asarray(im), mode, name, warnings)
                    rgb = arr[:, :, None] if keep_channels else np.repeat(arr[:, :, None], 3, axis=2)
                elif keep_channels:
                    gray = mode in ("1", "L", "LA", "La") or (mode == "P" and im.palette and im.palette.mode == "L")
                    target = ("LA" if has_alpha else "L") if gray else ("RGBA" if has_alpha else "RGB")
                    rgb = np.asarray(im.convert(target))
                    if rgb.ndim == 2:
                        rgb = rgb[:, :, None]
                else:
                    rgb = np.asarray(im.convert("RGB"))
    except MediaError:
        raise
    except FileNotFoundError:
        raise MediaError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MediaError(f"{path}: is a folder, not an image") from None
    except PermissionError:
        raise MediaError(f"{path}: cannot read it (permission denied)") from None
    except Image.DecompressionBombError as e:
        raise MediaError(f"{path}: image too large ({_reason(e)})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError,
            struct_error()) as e:
        if p.exists() and p.stat().st_size == 0:
            raise MediaError(f"{path}: the file is empty") from None
        raise MediaError(f"{path}: not a readable image ({_reason(e)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise MediaError(f"{path}: empty image")
    return np.ascontiguousarray(rgb), warnings


def struct_error():
    import struct

    return struct.error


# Largest sides the image libraries write (Pillow's JPEG and WebP encoders refuse more).
MAX_OUTPUT_SIDE = {"JPEG": 65_500, "WEBP": 16_383}
IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP", ".ppm": "PPM"}


def check_image_output(shape: tuple[int, ...], suffix: str) -> None:
    """Raise MediaError if an (H, W, C) image cannot be written in the format named by `suffix` (checked
    before decoding)."""
    fmt = IMAGE_FORMATS.get(suffix.lower(), "PNG")
    side = MAX_OUTPUT_SIDE.get(fmt)
    h, w = shape[0], shape[1]
    if side and max(h, w) > side:
        raise MediaError(f"a {w}x{h} image cannot be written as {fmt} (sides up to {side} pixels); "
                         f"decode to .png or .tif instead")
    if fmt == "BMP" and max(h, w) > (1 << 31) - 1:
        raise MediaError(f"a {w}x{h} image is too large for BMP")


def encode_image_file(img: np.ndarray, suffix: str) -> bytes:
    """(H, W, C) uint8 -> file bytes in the format named by suffix (png by default)."""
    import io

    from PIL import Image

    check_image_output(img.shape, suffix)
    fmt = IMAGE_FORMATS.get(suffix.lower(), "PNG")
    if fmt in ("JPEG", "PPM") and img.shape[2] in (2, 4):
        img = img[:, :, :-1]  # these formats have no alpha
    arr = img[:, :, 0] if img.shape[2] == 1 else img
    buf = io.BytesIO()
    try:
        Image.fromarray(arr).save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    except (OSError, ValueError) as e:
        raise MediaError(f"cannot write a {img.shape[1]}x{img.shape[0]} image as {fmt} ({_reason(e)})") from None
    return buf.getvalue()


TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT and SIGTERM until the block ends, then act on them as usual (main thread only; elsewhere
    a no-op). Python-level handlers run in the main thread whichever thread the kernel picks, so swapping
    them for recorders holds the signal even while other threads (torch's) run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    old = {}
    for sig in sigs:
        old[sig] = signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for sig in sigs:
            signal.signal(sig, old[sig])
        for sig in dict.fromkeys(got):
            h = old[sig]
            if callable(h):
                h(sig, None)
            elif h == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


def temp_path(path: Path) -> Path:
    """The temporary file write_atomic writes `path` through: hidden, in the same folder, with our pid."""
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Remove temporary files of write_atomic left in `folder` by processes that no longer run (killed with
    SIGKILL, power loss) -> the paths removed. With `name`, only those of that output file."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for f in entries:
        n = f.name
        if not (n.startswith(".") and n.endswith(TMP_SUFFIX)):
            continue
        stem, _, pid = n[1:-len(TMP_SUFFIX)].rpartition(".")
        if not pid.isdigit() or not stem or (name is not None and stem != name):
            continue
        if int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            f.unlink()
            removed.append(f)
        except OSError:
            pass
    return removed


def check_writable(path: str | os.PathLike, protect: list[str | os.PathLike] = ()) -> None:
    """Fail early (before any encoding or decoding) if `path` cannot be written by write_atomic: its folder
    is missing or read-only, it is a folder, or it is one of the inputs."""
    path = Path(path)
    if path.is_dir():
        raise MediaError(f"cannot write {path}: it is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise MediaError(f"cannot write {path}: the folder {folder} does not exist")
    _refuse_inputs(path, protect)
    probe = temp_path(path)
    try:
        with open(probe, "xb"):
            pass
    except FileExistsError:
        return
    except OSError as e:
        raise MediaError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        probe.unlink()
    except OSError:
        pass


def _refuse_inputs(path: Path, protect) -> None:
    """MediaError if `path` is (the same file as) one of the inputs in `protect`."""
    for p in protect:
        try:
            if path.exists() and os.path.samefile(path, p):
                raise MediaError(f"refusing to overwrite the input file {p}")
        except FileNotFoundError:
            pass


def write_atomic(path: str | os.PathLike, data: bytes, protect: list[str | os.PathLike] = ()) -> None:
    """Write via a temporary file in the same folder and rename; refuse to overwrite any path in `protect`.
    The temporary file is removed on any error or interruption (KeyboardInterrupt, SIGTERM turned into an
    exception by the CLI); one left by a killed process is removed by the next write to the same folder."""
    path = Path(path)
    _refuse_inputs(path, protect)
    clean_stale_temps(path.parent if str(path.parent) else ".", path.name)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError):
            raise MediaError(f"cannot write {path}: {e.strerror or e}") from None
        raise


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
    if p.is_file() and p.suffix.lower() == ".npz":  # crops packed in advance (benchmarks/pack_crops.py)
        with np.load(p) as z:
            crops = z["images"]
        if crops.ndim != 4 or crops.shape[1] != patch or crops.shape[2] != patch or crops.dtype != np.uint8:
            raise MediaError(f"{p}: 'images' holds {crops.shape} {crops.dtype}, not {patch}x{patch} uint8 crops")
        if skip + n_items > len(crops):
            raise MediaError(f"{p}: {len(crops)} crops, fewer than the {skip + n_items} asked for")
        return np.ascontiguousarray(crops[skip:skip + n_items]), [p]
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
