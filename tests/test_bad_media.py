"""The bad-media corpus: real broken, odd or extreme inputs through `combiner encode` / `decode`.

Every case is generated here (Pillow, soundfile, NumPy) into a temporary folder. Each one must give a clear
one-line error, or the documented correct result, leave no partial output or temporary file, and never change
its input. The CLI runs in this process (engine.cli.main) with the tiny test priors and a very short fit.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from engine import cli, container

from .clitools import TINY_FIT, assert_one_line_error, digest, run_cli
from .conftest import photo, voiced_audio


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(path: Path, side: int = 100_000):
    """A 1 KB PNG whose header declares side x side pixels."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + _png_chunk(b"IEND", b""))


def save_png(path, arr, **kw):
    Image.fromarray(arr, **kw).save(path)
    return path


def wav(path, x, sr, subtype="PCM_16"):
    sf.write(path, x, sr, subtype=subtype)
    return path


def truncated(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# Each case: make(tmp) -> (arguments after "encode"/"decode", inputs); expect: fragments of the one-line error,
# or a function(tmp, result) that checks the documented result.
IMG = ["--bpp", "2"]
AUD = ["--kbps", "16"]


def ok_image(shape=None, warn=None, channels=None):
    def check(tmp, r):
        assert r.returncode == 0, r.stderr
        (out,) = [p for p in tmp.iterdir() if p.suffix == ".cmb"]
        h = container.read_header(out.read_bytes())
        if shape:
            assert h.shape[:2] == shape, h.shape
        if channels:
            assert h.shape[2] == channels
        if warn:
            assert warn in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    return check


def ok_audio(n=None, c=None, sr=None, warn=None):
    def check(tmp, r):
        assert r.returncode == 0, r.stderr
        (out,) = [p for p in tmp.iterdir() if p.suffix == ".cmb"]
        h = container.read_header(out.read_bytes())
        assert h.modality == "audio"
        for want, got in ((n, h.shape[0]), (c, h.shape[1]), (sr, h.shape[2])):
            assert want is None or want == got, h.shape
        if warn:
            assert warn in r.stderr, r.stderr
    return check


def _exif_jpeg(tmp):
    ex = Image.Exif()
    ex[0x0112] = 8  # rotate 90 degrees counter-clockwise to display
    f = tmp / "exif.jpg"
    Image.fromarray(photo(24, 40)).save(f, exif=ex)   # stored 40 wide, 24 high
    return [f, *IMG], [f]


def _anim(tmp):
    f = tmp / "anim.gif"
    frames = [Image.fromarray(photo(16, 16, seed=s)) for s in range(4)]
    frames[0].save(f, save_all=True, append_images=frames[1:], duration=40)
    return [f, *IMG], [f]


def _dir_and_file(tmp):
    d = tmp / "folder"
    d.mkdir()
    f = save_png(tmp / "a.png", photo(8, 8))
    return [d, f, *IMG, "-o", tmp], [f]


def _unwritable(tmp):
    f = save_png(tmp / "a.png", photo(8, 8))
    blocker = tmp / "plain-file"
    blocker.write_text("not a folder")
    return [f, *IMG, "-o", blocker / "out.cmb"], [f, blocker]


def _cmb_to_missing_folder(tmp):
    h = container.CmbHeader("image", (32, 32, 3), b"abc", 0, 16, 4)
    f = tmp / "x.cmb"
    f.write_bytes(container.write(h, np.arange(4)))
    return ["decode", f, "-o", tmp / "missing" / "x.png"], [f]


def _ro_folder(tmp):
    d = tmp / "ro"
    d.mkdir()
    f = save_png(tmp / "a.png", photo(8, 8))
    os.chmod(d, 0o555)
    return [f, *IMG, "-o", d / "a.cmb"], [f]


CASES = {
    "zero-byte png": (lambda t: ([(t / "e.png").touch() or t / "e.png", *IMG], [t / "e.png"]), ["e.png", "empty"]),
    "zero-byte wav": (lambda t: ([(t / "e.wav").touch() or t / "e.wav", *AUD], [t / "e.wav"]), ["e.wav", "empty"]),
    "truncated png": (lambda t: ([truncated(save_png(t / "t.png", photo(32, 32)), 0.4), *IMG], [t / "t.png"]),
                      ["not a readable image"]),
    "truncated jpeg": (lambda t: ([truncated(save_png(t / "t.jpg", photo(32, 32)), 0.4), *IMG], [t / "t.jpg"]),
                       ["not a readable image"]),
    "header-only png": (lambda t: ([truncated(save_png(t / "h.png", photo(32, 32)), 0.1), *IMG], [t / "h.png"]),
                        ["not a readable image"]),
    "truncated wav": (lambda t: ([truncated(wav(t / "t.wav", voiced_audio(0.2), 16000)), *AUD], [t / "t.wav"]),
                      ok_audio(warn="truncated")),
    "truncated flac": (lambda t: ([truncated(wav(t / "t.flac", voiced_audio(0.5), 16000)), *AUD], [t / "t.flac"]),
                       ["t.flac", "truncated or corrupt"]),
    "text named png": (lambda t: ([(t / "n.png").write_text("hello") and t / "n.png", *IMG], [t / "n.png"]),
                       ["not a readable image"]),
    "garbage mp3": (lambda t: ([(t / "g.mp3").write_bytes(os.urandom(3000)) and t / "g.mp3", *AUD], [t / "g.mp3"]),
                    ["unknown format or corrupt"]),
    "png bomb": (lambda t: ([png_bomb(t / "b.png") or t / "b.png", *IMG], [t / "b.png"]),
                 ["100000x100000", "--max-pixels"]),
    "16-bit png": (lambda t: ([save_png(t / "g16.png", (np.arange(400).reshape(20, 20) * 150).astype(np.uint16)),
                               *IMG], [t / "g16.png"]), ok_image((20, 20), "reduced to 8 bits", 1)),
    "palette png": (lambda t: ([Image.fromarray(photo(20, 20)).convert("P").save(t / "p.png") or t / "p.png", *IMG],
                               [t / "p.png"]), ok_image((20, 20), None, 3)),
    "cmyk jpeg": (lambda t: ([Image.fromarray(photo(20, 24)).convert("CMYK").save(t / "c.jpg") or t / "c.jpg", *IMG],
                             [t / "c.jpg"]), ok_image((20, 24), None, 3)),
    "exif-rotated jpeg": (_exif_jpeg, ok_image((40, 24))),   # coded as shown: portrait
    "animated gif": (_anim, ok_image((16, 16), "only the first frame")),
    "gray+alpha png": (lambda t: ([save_png(t / "la.png", np.dstack([photo(12, 12)[:, :, 0]] * 2), mode="LA"), *IMG],
                                  [t / "la.png"]), ok_image((12, 12), None, 2)),
    "float tiff": (lambda t: ([Image.fromarray(np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16), mode="F")
                               .save(t / "f.tif") or t / "f.tif", *IMG], [t / "f.tif"]), ok_image((16, 16), "floats")),
    "int32 tiff": (lambda t: ([Image.fromarray((np.arange(256).reshape(16, 16) << 23).astype(np.int32), mode="I")
                               .save(t / "i.tif") or t / "i.tif", *IMG], [t / "i.tif"]), ok_image((16, 16), "32-bit")),
    "1x1 png": (lambda t: ([save_png(t / "one.png", photo(1, 1)), *IMG], [t / "one.png"]), ok_image((1, 1))),
    "1x10000 png": (lambda t: ([save_png(t / "line.png", np.tile(photo(1, 100), (1, 100, 1))), *IMG],
                               [t / "line.png"]), ok_image((1, 10000))),
    "nan float wav": (lambda t: ([wav(t / "nan.wav", np.array([0.1, np.nan, 0.2] * 100, np.float32), 16000, "FLOAT"),
                                  *AUD], [t / "nan.wav"]), ["NaN"]),
    "inf float wav": (lambda t: ([wav(t / "inf.wav", np.array([0.1, np.inf] * 100, np.float32), 16000, "FLOAT"), *AUD],
                                 [t / "inf.wav"]), ["infinite"]),
    "loud float wav": (lambda t: ([wav(t / "loud.wav", 3 * voiced_audio(0.05), 16000, "FLOAT"), *AUD],
                                  [t / "loud.wav"]), ok_audio(n=800, warn="clipped")),
    "0-sample wav": (lambda t: ([wav(t / "z.wav", np.zeros((0, 1), np.float32), 16000), *AUD], [t / "z.wav"]),
                     ["no samples"]),
    "8-channel wav": (lambda t: ([wav(t / "c8.wav", np.stack([voiced_audio(0.02, seed=s) for s in range(8)], 1), 16000),
                                  *AUD], [t / "c8.wav"]), ok_audio(n=320, c=8)),
    "192 kHz wav": (lambda t: ([wav(t / "hi.wav", voiced_audio(0.02, 192000), 192000), *AUD], [t / "hi.wav"]),
                    ok_audio(n=3840, sr=192000)),
    "1 Hz wav": (lambda t: ([wav(t / "slow.wav", np.full(1, 0.25, np.float32), 1), *AUD], [t / "slow.wav"]),
                 ok_audio(n=1, sr=1)),
    "folder among inputs": (_dir_and_file, ["is a folder"]),
    "empty folder": (lambda t: ([(t / "d").mkdir() or t / "d", *IMG, "-o", t / "out"], []),
                     ["no images or audio files"]),
    "missing file": (lambda t: ([t / "missing.png", *IMG], []), ["missing.png", "no such file"]),
    "output is the input": (lambda t: ([save_png(t / "s.png", photo(8, 8)), *IMG, "-o", t / "s.png"], [t / "s.png"]),
                            ["overwrite"]),
    "output folder is a file": (_unwritable, ["does not exist"]),
    "decode into a missing folder": (_cmb_to_missing_folder, ["does not exist"]),
    "unicode and spaces": (lambda t: ([save_png(t / "été à la mer ü.png", photo(10, 14)), *IMG,
                                       "-o", t / "sortie été.cmb"], [t / "été à la mer ü.png"]), ok_image((10, 14))),
    "--bpp 0": (lambda t: ([save_png(t / "r.png", photo(8, 8)), "--bpp", "0"], [t / "r.png"]), ["--bpp", "positive"]),
    "--bpp negative": (lambda t: ([save_png(t / "r.png", photo(8, 8)), "--bpp", "-2"], [t / "r.png"]), ["--bpp"]),
    "--bpp nan": (lambda t: ([save_png(t / "r.png", photo(8, 8)), "--bpp", "nan"], [t / "r.png"]), ["--bpp"]),
    "--bpp 1e9": (lambda t: ([save_png(t / "r.png", photo(8, 8)), "--bpp", "1e9"], [t / "r.png"]), ["largest rate"]),
    "--kbps 0": (lambda t: ([wav(t / "k.wav", voiced_audio(0.05), 16000), "--kbps", "0"], [t / "k.wav"]), ["--kbps"]),
    "image without --bpp": (lambda t: ([save_png(t / "r.png", photo(8, 8))], [t / "r.png"]), ["--bpp"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_media(name, tmp_path, capfd, monkeypatch, patch_prior_dir, tiny_audio_prior_dir):
    make, expect = CASES[name]
    work = tmp_path / "case"
    work.mkdir()
    args, inputs = make(work)
    if args and args[0] == "decode":
        argv = args
    else:
        is_audio = "--kbps" in args
        prior = tiny_audio_prior_dir / "tiny_audio.safetensors" if is_audio else patch_prior_dir / "tinypatch.safetensors"
        argv = ["encode", *args, "--prior", prior, "-q", "--threads", "1"]
    before = {p: digest(p) for p in inputs if p.is_file()}
    listing = sorted(p.name for p in work.rglob("*"))
    monkeypatch.setattr(cli, "_fit_config", lambda a: TINY_FIT)
    r = run_cli(capfd, *argv)
    for p, d in before.items():
        assert digest(p) == d, f"{p} changed"
    assert not [p for p in work.rglob("*") if p.name.endswith(".tmp")]
    if callable(expect):
        expect(work, r)
    else:
        assert_one_line_error(r, *expect)
        assert sorted(p.name for p in work.rglob("*")) == listing  # no partial output


def test_read_only_folder(tmp_path, capfd):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    args, inputs = _ro_folder(tmp_path)
    try:
        assert_one_line_error(run_cli(capfd, "encode", *args), "cannot write")
    finally:
        os.chmod(tmp_path / "ro", 0o755)


def test_extreme_shapes_cost_what_their_pixels_cost(patch_prior, monkeypatch):
    """A 1x10000 image was 625 mostly empty 16x16 patches' worth of network evaluations (157 64x64 ones with the
    shipped prior: still encoding after 400 s); only grid points inside the image are evaluated now."""
    import engine.patch_codec as pc
    import engine.unit_coding as uc
    from engine.codec import run

    work = []

    def spy(batch, *a, **k):  # count the work, skip the fitting
        work[-1] += batch.target.shape[0] * batch.field.emb.shape[0]
        nb = max(len(m) for m in batch.members)
        return np.zeros((batch.target.shape[0], nb), np.int64), np.zeros((batch.target.shape[0], nb))
        yield

    monkeypatch.setattr(uc, "code_units", spy)
    for shape in [(100, 100), (1, 10000), (10000, 1)]:
        work.append(0)
        img = np.resize(photo(100, 100), (*shape, 3))
        run(pc.encode_image(img, 2.0, prior=patch_prior, adaptive=False))
    square, row, col = work
    assert row <= 1.2 * square and col <= 1.2 * square, work
    assert row == 10000 and col == 10000
