"""Group deltas (engine.hierarchy, kind-15 files): a network delta for each group of G x G patches (by default
under an image-level delta: three levels), coded before the patches, decoded exactly, counted in the rate, and
a header whose every field is checked on reading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine import container, hierarchy, patch_codec
from engine.codec import run
from engine.errors import CmbFormatError, CombinerError
from engine.patch_codec import decode_image_full, encode_image_batch
from engine.prior import Prior
from engine.restoration import NONE

from .conftest import PATCH_FIT, photo


@pytest.fixture(autouse=True)
def small_groups(monkeypatch):
    """The test images are tiny: let a group have a delta whatever its share of the budget."""
    monkeypatch.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)


@pytest.fixture
def shared(shared_prior_dir):
    return Prior.load(shared_prior_dir / "shared.safetensors")


def _grouped(prior_dir, top: bool):
    """A 40x56 photo (3x4 patches of 16) coded with groups of 2x2 patches: 2x2 groups, the last ones cut;
    `top`: under an image-level delta (three levels, the default) or not (two levels). Without spectral floors
    (a filter over the whole image; tests/test_image_floors.py), so each group's pixels are its own."""
    prior = Prior.load(prior_dir / "shared.safetensors")
    img = photo(40, 56, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)
        return img, run(encode_image_batch([img], 2.0, prior=prior, fit=PATCH_FIT, delta_group=2,
                                           delta_top=top, restore=NONE))[0]


@pytest.fixture(scope="module", params=[True, False], ids=["three-levels", "two-levels"])
def grouped(shared_prior_dir, request):
    return _grouped(shared_prior_dir, request.param)


@pytest.fixture(scope="module")
def two_level(shared_prior_dir):
    return _grouped(shared_prior_dir, False)


@pytest.fixture(scope="module")
def three_level(shared_prior_dir):
    return _grouped(shared_prior_dir, True)


def _group_field_bytes(h) -> int:
    """Header bytes of the kind-15 fields after the layer count: each delta's scale bytes and block varint."""
    tops = (h.top_delta,) if h.top_delta[1] else ()
    return sum(len(s) + 1 + (b >= 128) + (b >= 1 << 14) for s, b in h.group_deltas + tops)


def test_small_budgets_get_larger_groups_then_one_delta(monkeypatch):
    """The shipped 0.3 bpp prior on a Kodak-sized image: groups of 4x4 patches at 0.3 bpp, of 8x8 at 0.1 bpp
    (each group keeps MIN_GROUP_BLOCKS of the budget), one delta for the image at 0.02 bpp."""
    from engine.prior import nearest_patch

    monkeypatch.setattr(patch_codec, "MIN_GROUP_BLOCKS", 512)
    prior = nearest_patch(0.3)
    shape = (512, 768, 3)
    assert patch_codec.group_side(0.3, shape, prior, 0, b"", True, 4) == 4
    assert patch_codec.group_side(0.1, shape, prior, 0, b"", True, 4) == 8
    assert patch_codec.group_side(0.02, shape, prior, 0, b"", True, 4) == 0
    assert patch_codec.group_side(0.3, shape, prior, 0, b"", True, 0) == 0
    # the default side, 3: 12 groups of 3x3 patches at 0.3 bpp, 4 of 6x6 at 0.1 bpp
    assert patch_codec.group_side(0.3, shape, prior, 0, b"", True, patch_codec.DELTA_GROUP) == 3
    assert patch_codec.group_side(0.1, shape, prior, 0, b"", True, patch_codec.DELTA_GROUP) == 6


def test_group_of_units_is_row_major_over_the_groups():
    assert hierarchy.group_of_units((3, 4), 2).reshape(3, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]]
    assert hierarchy.group_of_units((2, 3), 5).tolist() == [0] * 6


def test_grouped_file_decodes_exactly_with_one_delta_per_group(grouped, shared_prior_dir):
    img, res = grouped
    h = res.header
    assert res.data[1] & 0x0F == container.KIND_PATCHES_GROUPS
    assert h.delta_group == 2 and h.n_groups == (2, 2) and len(h.group_deltas) == 4
    assert h.delta_blocks == h.top_delta[1] + sum(b for _, b in h.group_deltas)
    assert all(b >= 1 for _, b in h.group_deltas)
    assert h.n_indices == h.delta_blocks + sum(h.unit_blocks)
    out, hdr, _ = decode_image_full(res.data, prior_dirs=[shared_prior_dir])
    assert hdr == h and np.array_equal(out, res.reconstruction)
    assert out.shape == img.shape


def test_each_group_renders_with_its_own_delta(grouped, shared_prior_dir, shared):
    """The groups' deltas differ, and swapping two groups' deltas changes exactly their patches' pixels."""
    _, res = grouped
    h, idx = container.read(res.data)
    deltas = hierarchy.from_header(shared, h, idx)
    assert deltas.shape == (4, shared.inr.n_params)
    assert not torch.equal(deltas[0], deltas[1])
    top = h.top_delta[1]
    offs = top + np.cumsum([0] + [b for _, b in h.group_deltas])
    parts = [idx[offs[g]:offs[g + 1]] for g in range(4)]
    gd = list(h.group_deltas)
    gd[0], gd[3] = gd[3], gd[0]
    swapped = container.write(container.CmbHeader(**{**h.__dict__, "group_deltas": tuple(gd)}),
                              np.concatenate([idx[:top], parts[3], parts[1], parts[2], parts[0],
                                              idx[h.delta_blocks:]]))
    other, _, _ = decode_image_full(swapped, prior_dirs=[shared_prior_dir])
    changed = np.abs(other.astype(int) - res.reconstruction.astype(int)).max(axis=2) > 0
    # the network is per patch (the latent features do not depend on it): only groups 0 and 3 move
    assert changed[:32, :32].any() and changed[32:, 32:].any()
    assert not changed[:32, 32:].any() and not changed[32:, :32].any()


def test_three_levels_the_image_delta_under_every_group(three_level, shared_prior_dir, shared):
    """A three-level file has an image-level delta: it is coded (its blocks lead the payload), added to every
    group's delta, and without it every group renders differently."""
    _, res = three_level
    h, idx = container.read(res.data)
    codes, top = h.top_delta
    assert len(codes) == len(h.group_deltas[0][0]) and top >= 1
    with_top = hierarchy.from_header(shared, h, idx)
    alone = hierarchy.decode(shared.inr, codes, h.seed, idx[:top], stream=hierarchy.TOP_STREAM)
    flat = container.CmbHeader(**{**h.__dict__, "top_delta": ((), 0), "delta_blocks": h.delta_blocks - top})
    residuals = hierarchy.from_header(shared, flat, idx[top:])
    assert torch.equal(with_top, residuals + alone) and alone.abs().sum() > 0
    other, _, _ = decode_image_full(container.write(flat, idx[top:]), prior_dirs=[shared_prior_dir])
    changed = np.abs(other.astype(int) - res.reconstruction.astype(int)).max(axis=2) > 0
    assert all(changed[r:r + 32, c:c + 32].any() for r in (0, 32) for c in (0, 32))


def test_groups_pay_for_their_blocks_within_the_rate(grouped, shared):
    img, res = grouped
    plain = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, delta_group=0))[0]
    assert plain.data[1] & 0x0F == container.KIND_PATCHES_DELTA
    target = 2.0 * img.shape[0] * img.shape[1] / 8
    assert abs(len(res.data) - target) <= 0.05 * target + 4
    assert sum(res.header.unit_blocks) < sum(plain.header.unit_blocks)


def test_an_image_of_one_group_writes_the_image_delta_file(shared):
    """With one group the file is the kind-11 file, byte for byte (the group's delta is the image's)."""
    img = photo(32, 30, seed=3)
    one = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, delta_group=2))[0]
    image = run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, delta_group=0))[0]
    assert one.data == image.data and one.data[1] & 0x0F == container.KIND_PATCHES_DELTA


def test_batch_equals_single_with_group_deltas(shared):
    imgs = [photo(40, 56, seed=11), photo(33, 17, seed=12)]
    both = run(encode_image_batch(imgs, 2.0, prior=shared, fit=PATCH_FIT, delta_group=2))
    for img, r in zip(imgs, both):
        assert run(encode_image_batch([img], 2.0, prior=shared, fit=PATCH_FIT, delta_group=2))[0].data == r.data


def test_a_negative_group_side_is_a_clear_error(shared):
    with pytest.raises(CombinerError, match="group side"):
        run(encode_image_batch([photo(32, 32)], 2.0, prior=shared, fit=PATCH_FIT, delta_group=-1))


def test_group_fields_are_checked_on_writing(grouped):
    h = grouped[1].header
    for bad in ({"group_deltas": h.group_deltas[:3]},                      # one group missing
                {"delta_blocks": h.delta_blocks + 1},                        # not the groups' sum
                {"group_deltas": ((h.group_deltas[0][0][:2], 3),) + h.group_deltas[1:]},   # layer counts differ
                {"delta_scales": (1, 2, 3)},                                 # a kind-11 delta beside the groups
                {"top_delta": ((1, 2), 3), "delta_blocks": h.delta_blocks + 3},   # too few top layers
                {"top_delta": ((1, 2, 3), 0)},                               # top scales without blocks
                {"top_delta": ((1, 2, 3), 5)}):                              # top blocks not in the sum
        with pytest.raises(ValueError):
            container.header_bytes(container.CmbHeader(**{**h.__dict__, **bad}))


def test_truncated_or_corrupt_group_fields_raise_the_format_error(grouped, shared_prior_dir):
    data = grouped[1].data
    h = grouped[1].header
    end = len(container.header_bytes(h))
    start = end - _group_field_bytes(h) - 3   # flags, group side, layer count
    for cut in range(start, end + 1):
        with pytest.raises(CmbFormatError):
            container.read(data[:cut])
    for pos in range(start, end):
        for bit in (0x01, 0x80):
            bad = bytearray(data)
            bad[pos] ^= bit
            with pytest.raises(CmbFormatError):
                decode_image_full(bytes(bad), prior_dirs=[shared_prior_dir])


def test_a_grouped_header_that_names_absurd_fields_is_refused(two_level):
    """A forged header (checksum recomputed) with a group side of 0, unknown flags, a block count of 0 or no
    delta layers, or flag bit 0 (an image-level delta) without the image delta's fields."""
    import binascii

    h, idx = container.read(two_level[1].data)

    def forged(side: bytes, rest: bytes, flags: bytes = b"\x00") -> bytes:
        head = container.header_bytes(h)
        n_fixed = len(head) - sum(1 + len(s) + (b >= 128) for s, b in h.group_deltas) - 3
        body = head[:n_fixed] + flags + side + rest + container.pack_indices(idx, h.kappa)
        return body + binascii.crc_hqx(body, 0).to_bytes(2, "little")

    assert all(b < 128 for _, b in h.group_deltas)   # one varint byte each, as the forger writes them
    layers = bytes([len(h.group_deltas[0][0])])
    groups = b"".join(bytes(s) + bytes([b]) for s, b in h.group_deltas)
    assert container.read(forged(bytes([2]), layers + groups))[0] == h   # the forger itself is right
    with pytest.raises(CmbFormatError, match="group side"):
        container.read(forged(bytes([0]), layers + groups))
    with pytest.raises(CmbFormatError, match="flags"):
        container.read(forged(bytes([2]), layers + groups, flags=b"\x08"))
    with pytest.raises(CmbFormatError):   # the groups' fields read as the image delta's: the payload is short
        container.read(forged(bytes([2]), layers + groups, flags=b"\x01"))
    first = len(h.group_deltas[0][0]) + 1
    with pytest.raises(CmbFormatError, match="delta blocks"):
        container.read(forged(bytes([2]), layers + bytes(h.group_deltas[0][0]) + b"\x00" + groups[first:]))
    with pytest.raises(CmbFormatError, match="delta layers"):
        container.read(forged(bytes([2]), b"\x00" + groups))


def test_cli_writes_group_deltas_and_info_names_them(shared_prior_dir, tmp_path, capfd):
    from PIL import Image

    from .clitools import run_cli
    src = tmp_path / "in.png"
    Image.fromarray(photo(40, 56, seed=8)).save(src)
    prior = shared_prior_dir / "shared.safetensors"
    out = tmp_path / "out.cmb"
    r = run_cli(capfd, "encode", src, "--bpp", 2, "-o", out, "--prior", prior, "--preset", "fast", "-q",
                "--delta-group", 2)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[1] & 0x0F == container.KIND_PATCHES_GROUPS and "over 4 groups" in r.stdout
    info = run_cli(capfd, "info", out, "--prior-dir", shared_prior_dir)
    assert info.returncode == 0 and "network delta for each of 2x2 groups of 2x2 patches" in info.stdout
    assert "an image-level delta" in info.stdout
    two = tmp_path / "two.cmb"
    r = run_cli(capfd, "encode", src, "--bpp", 2, "-o", two, "--prior", prior, "--preset", "fast", "-q",
                "--delta-group", 2, "--no-image-delta")
    assert r.returncode == 0 and container.read_header(two.read_bytes()).top_delta == ((), 0)
    assert container.read_header(out.read_bytes()).top_delta[1] >= 1
    # spectral floors by default, named by `info`; --no-floors leaves them out (tests/test_image_floors.py)
    assert "spectral floors" in info.stdout and container.read_header(out.read_bytes()).floors is not None
    plain = tmp_path / "plain.cmb"
    r = run_cli(capfd, "encode", src, "--bpp", 2, "-o", plain, "--prior", prior, "--preset", "fast", "-q",
                "--delta-group", 2, "--no-floors")
    assert r.returncode == 0 and container.read_header(plain.read_bytes()).floors is None
    back = run_cli(capfd, "decode", out, "-o", tmp_path / "back.png", "--prior-dir", shared_prior_dir)
    assert back.returncode == 0, back.stderr
    bad = run_cli(capfd, "encode", src, "--bpp", 2, "-o", tmp_path / "x.cmb", "--prior", prior, "-q",
                  "--delta-group", -3)
    assert bad.returncode != 0 and "group side" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.cmb").exists()
