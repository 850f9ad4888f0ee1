"""Class-adaptive Wiener filters for photos (engine/image_wiener.py, kind-15 flag bit 2) and the restoration
they end (engine/restoration.py): classes, the sender's choice, the field, and encode -> decode."""
import dataclasses

import numpy as np
import pytest

from engine import container, image_wiener as iw, patch_codec, restoration
from engine.codec import run
from engine.errors import CmbFormatError
from engine.patch_codec import encode_image_batch
from engine.prior import Prior
from engine.restoration import Restoration
from engine.signals import psnr_uint8

from .conftest import PATCH_FIT, check_restoration_field, photo

K = len(iw.PAIRS)


def blurred(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A real photo crop and a copy blurred by a 3x3 box with a little noise (uint8): a stand-in decode."""
    x = photo(h, w, seed=seed).astype(np.float64)
    p = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    b = sum(p[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)) / 9.0
    b += np.random.default_rng(seed).normal(0, 2.0, b.shape)
    return x.astype(np.uint8), np.clip(np.round(b), 0, 255).astype(np.uint8)


def test_the_pairs_are_the_half_diamond():
    assert K == 12 and (0, 0) not in iw.PAIRS
    assert all(abs(dy) + abs(dx) <= iw.RADIUS and (-dy, -dx) not in iw.PAIRS for dy, dx in iw.PAIRS)


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (33, 65), (65, 33)])
def test_classes_are_in_range_and_constant_on_blocks(shape):
    x = photo(*shape, seed=2)
    c = iw.classes(x)
    assert c.shape == shape and c.min() >= 0 and c.max() < iw.CLASSES
    for by in range(0, shape[0], iw.BLOCK):
        for bx in range(0, shape[1], iw.BLOCK):
            assert len(np.unique(c[by:by + iw.BLOCK, bx:bx + iw.BLOCK])) == 1


def test_directions_follow_the_stripes():
    """Stripes that change along x have large horizontal second differences (direction class 2); turned, 1."""
    cols = np.tile(((np.arange(32) // 2) % 2 * 200 + 20).astype(np.uint8)[None, :, None], (32, 1, 3))
    assert set(np.unique(iw.classes(cols) % iw.N_DIR)) == {2}
    assert set(np.unique(iw.classes(cols.transpose(1, 0, 2).copy()) % iw.N_DIR)) == {1}
    flat = np.full((16, 16, 3), 90, np.uint8)
    assert set(np.unique(iw.classes(flat))) == {(iw.N_ACT - 1) * iw.N_DIR}   # every activity ties at 0


def test_no_filter_gives_the_image_back():
    x = photo(37, 53, seed=4)
    np.testing.assert_array_equal(iw.apply(x, np.zeros((iw.FILTERS, K), np.int64)), x)


def test_the_sender_restores_a_blurred_photo_within_its_budget():
    x, y = blurred(96, 128)
    full = iw.choose(x, y, 1000)
    assert full.shape == (iw.FILTERS, K) and full.any(axis=1).sum() > 1
    best = psnr_uint8(x, iw.apply(y, full))
    assert best > psnr_uint8(x, y) + 1.0
    for n in (15, 30, 60):   # the presence bits alone take 27 bits, a filter here 60 to 120
        q = iw.choose(x, y, n)
        assert len(iw.pack(q)) <= n and 1 <= q.any(axis=1).sum() < full.any(axis=1).sum()
        assert psnr_uint8(x, y) < psnr_uint8(x, iw.apply(y, q)) <= best + 0.01
    assert iw.choose(x, x, 1000) is None or psnr_uint8(x, iw.apply(x, iw.choose(x, x, 1000))) >= 60


def test_the_choice_does_not_depend_on_the_strips(monkeypatch):
    x, y = blurred(50, 70, seed=3)
    whole = iw.choose(x, y, 1000)
    monkeypatch.setattr(iw, "PIXELS_AT_ONCE", 64)
    np.testing.assert_array_equal(iw.choose(x, y, 1000), whole)


def test_the_field_round_trips_and_only_canonical_fields_read():
    rs = np.random.default_rng(0)
    q = rs.integers(-40, 41, (iw.FILTERS, K))
    q[rs.random(iw.FILTERS) < 0.4] = 0
    q[3, 5], q[4, 0] = iw.MAX_Q - 1, 1 - iw.MAX_Q
    data = iw.pack(q)
    np.testing.assert_array_equal(iw.unpack(data), q)
    for cut in range(len(data)):                          # every truncation ends inside a code
        with pytest.raises(ValueError):
            iw.unpack(data[:cut])
    with pytest.raises(ValueError):
        iw.unpack(data + b"\x00")                         # a spare byte
    one = np.zeros((iw.FILTERS, K), np.int64)
    one[0, 0] = 1
    padded = iw.pack(one)
    with pytest.raises(ValueError, match="after its last code"):
        iw.unpack(padded[:-1] + bytes([padded[-1] | 1]))   # a set padding bit
    with pytest.raises(ValueError, match="all coefficients zero"):
        bits = "1" + "100" * K + "0" * (iw.FILTERS - 1)        # present, then twelve zeros (order 2: "100")
        n = -(-len(bits) // 8)
        iw.unpack(int(bits.ljust(8 * n, "0"), 2).to_bytes(n, "big"))
    with pytest.raises(ValueError, match="no filter"):
        iw.unpack(bytes(4))                               # 27 absent filters: a file leaves the field out
    with pytest.raises(ValueError):
        iw.pack(np.full((iw.FILTERS, K), iw.MAX_Q))
    with pytest.raises(ValueError):
        iw.pack(np.zeros((iw.FILTERS - 1, K)))


def test_the_budget_of_the_filters_follows_the_image_size():
    r = Restoration()
    assert r.wiener_bytes((512, 768)) == int(512 * 768 * restoration.WIENER_BPP / 8)
    assert r.wiener_bytes((40, 56)) == 0 and r.wiener_bytes((8000, 8000)) == restoration.WIENER_MAX_BYTES
    assert Restoration(wiener=False).wiener_bytes((512, 768)) == 0
    assert restoration.NONE.room((512, 768)) == 0 and Restoration(wiener=False).room((512, 768)) == 18


@pytest.fixture(scope="module")
def filtered(shared_prior_dir):
    """A 40x56 photo in groups of 2x2 patches (kind 15) with floors and Wiener filters (a budget raised to
    28 bytes: this small an image gets none by default), and the same without the filters."""
    prior = Prior.load(shared_prior_dir / "shared.safetensors")
    img = photo(40, 56, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)
        mp.setattr(restoration, "WIENER_BPP", 0.1)
        on, off = (run(encode_image_batch([img], 2.0, prior=prior, fit=PATCH_FIT, delta_group=2,
                                          restore=Restoration(wiener=w)))[0] for w in (True, False))
    return img, on, off


def test_filters_round_trip_through_the_file_and_decode_exactly(filtered, shared_prior_dir):
    img, on, off = filtered
    hdr = check_restoration_field(img, on, shared_prior_dir, "wiener")
    assert hdr.floors is not None and off.header.wiener is None and len(iw.pack(hdr.wiener)) <= 28
    # both files keep to the rate
    assert max(len(on.data), len(off.data)) * 8 <= 2.0 * 40 * 56 * 1.05
    assert abs(len(on.data) - len(off.data)) <= 0.05 * len(off.data)


def test_wiener_fields_are_checked(filtered):
    _, on, _ = filtered
    hdr, idx = container.read(on.data)
    body = container.header_bytes(hdr)
    n = len(iw.pack(hdr.wiener))
    for cut in range(len(body) - n - 1, len(body)):      # ends in the length or inside the field
        with pytest.raises(CmbFormatError):
            container.read(body[:cut])
    data = bytearray(on.data)
    for pos in range(len(body) - n - 1, len(body)):      # every bit flip of the length and the field
        for bit in range(8):
            data[pos] ^= 1 << bit
            with pytest.raises(CmbFormatError):
                container.read(bytes(data))
            data[pos] ^= 1 << bit
    with pytest.raises(ValueError, match="no filter"):
        container.write(dataclasses.replace(hdr, wiener=((0,) * K,) * iw.FILTERS), idx)
    plain = dataclasses.replace(hdr, delta_group=0, group_deltas=(), top_delta=((), 0), delta_blocks=0,
                                floors=None)
    with pytest.raises(ValueError, match="kind 15"):
        container.write(plain, idx[hdr.delta_blocks:])


def test_the_cli_writes_names_and_leaves_out_the_filters(tmp_path, capfd, shared_prior_dir, monkeypatch):
    from PIL import Image

    from .clitools import run_cli

    monkeypatch.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)
    monkeypatch.setattr(restoration, "WIENER_BPP", 0.1)
    src = tmp_path / "in.png"
    Image.fromarray(photo(40, 56, seed=11)).save(src)
    prior = shared_prior_dir / "shared.safetensors"
    files = {}
    for name, extra in (("on", ()), ("off", ("--no-wiener",))):
        files[name] = tmp_path / f"{name}.cmb"
        r = run_cli(capfd, "encode", src, "--bpp", 2, "-o", files[name], "--prior", prior, "--preset", "fast",
                    "-q", "--delta-group", 2, *extra)
        assert r.returncode == 0, r.stderr
    on, off = (container.read_header(files[k].read_bytes()) for k in ("on", "off"))
    assert on.wiener is not None and off.wiener is None and off.floors is not None
    info = run_cli(capfd, "info", files["on"], "--prior-dir", shared_prior_dir)
    assert info.returncode == 0 and "Wiener filters" in info.stdout and "of 25 luma classes" in info.stdout


def test_the_app_names_the_filters():
    """The app's result fields of an opened file (combiner_app/result_view.py) show the filters beside the floors."""
    pytest.importorskip("PySide6")
    from pathlib import Path

    from combiner_app.result_view import patch_fields

    hdr = container.read_header((Path(__file__).parent / "data" / "coffee_0.3bpp_wiener.cmb").read_bytes())
    fields = patch_fields(hdr)
    assert fields["Wiener filters"] == iw.summary(hdr.wiener) and fields["Wiener filters"].startswith("2 of 25")
    assert "Spectral floors" in fields
