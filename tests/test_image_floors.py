"""Spectral floors for photos (engine/image_floors.py, kind-15 flag bit 1): the filter, the sender's choice, the
file field, and encode -> decode."""
import dataclasses

import numpy as np
import pytest

from engine import container, image_floors as imf, patch_codec
from engine.codec import run
from engine.errors import CmbFormatError
from engine.patch_codec import encode_image_batch
from engine.prior import Prior
from engine.restoration import Restoration
from engine.signals import psnr_uint8

from .conftest import PATCH_FIT, check_restoration_field, photo

UNITY = np.tile(imf.UNITY, 3)


def noisy(h: int, w: int, sigma: float = 8.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A real photo crop and a copy with white noise added (uint8)."""
    x = photo(h, w, seed=seed)
    rs = np.random.default_rng(seed)
    return x, np.clip(np.round(x + rs.normal(0, sigma, x.shape)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (16, 16), (33, 65), (65, 33), (100, 37)])
def test_unity_codes_give_the_image_back(shape):
    """The squared windows sum to one over every pixel, borders included, and the colour transform inverts."""
    x = photo(*shape, seed=1)
    np.testing.assert_array_equal(imf.apply(x, UNITY), x)


def test_the_sender_lowers_the_noise_and_no_single_code_does_better():
    x, y = noisy(96, 128)
    codes = imf.choose(x, y)
    assert codes.shape == (imf.N_CODES,) and codes.min() >= 0 and codes.max() < 1 << imf.BITS
    z = imf.apply(y, codes)
    assert psnr_uint8(x, z) > psnr_uint8(x, y) + 1.0
    assert (codes.reshape(3, 2, imf.BANDS)[:, 0] > 0).any()          # some band takes a noise floor
    err = np.sum((x.astype(float) - z) ** 2)
    rs = np.random.default_rng(2)
    for _ in range(10):
        k = int(rs.integers(imf.N_CODES))
        other = codes.copy()
        other[k] = (codes[k] + int(rs.integers(1, 1 << imf.BITS))) % (1 << imf.BITS)
        # the choice is exact on the spectra; rounding to uint8 leaves a little slack
        assert np.sum((x.astype(float) - imf.apply(y, other)) ** 2) >= err * (1 - 2e-3)


def test_a_clean_decode_keeps_every_band():
    x = photo(64, 64, seed=3)
    codes = imf.choose(x, x).reshape(3, 2, imf.BANDS)
    assert (codes[:, 0] == 0).all() and (codes[:, 1] == imf.GAINS.index(1.0)).all()


def test_strips_equal_the_whole(monkeypatch):
    x, y = noisy(70, 90, seed=4)
    codes = imf.choose(x, y)
    z = imf.apply(y, codes)
    monkeypatch.setattr(imf, "FRAMES_AT_ONCE", 7)    # one frame row (7 frames) at a time
    assert len(imf._strips(70, 90)) == imf._frames(70)
    np.testing.assert_array_equal(imf.choose(x, y), codes)
    np.testing.assert_array_equal(imf.apply(y, codes), z)


def test_band_edges_in_bins():
    band = imf._band_of_bins()
    assert band.shape == (imf.FRAME, imf.FRAME // 2 + 1) and band[0, 0] == 0 and (band[1:, :] > 0).all()
    assert [int(band[0, k]) for k in (1, 2, 4, 6, 8, 12, 16)] == [1, 2, 3, 4, 5, 6, 6]


@pytest.fixture(scope="module")
def floored(shared_prior_dir):
    """A 40x56 photo in groups of 2x2 patches (kind 15), with and without spectral floors."""
    prior = Prior.load(shared_prior_dir / "shared.safetensors")
    img = photo(40, 56, seed=11)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(patch_codec, "MIN_GROUP_BLOCKS", 1)
        on, off = (run(encode_image_batch([img], 2.0, prior=prior, fit=PATCH_FIT, delta_group=2,
                                          restore=Restoration(floors=f, wiener=False)))[0]
                   for f in (True, False))
    return img, on, off


def test_floors_round_trip_through_the_file_and_decode_exactly(floored, shared_prior_dir):
    img, on, off = floored
    hdr = check_restoration_field(img, on, shared_prior_dir, "floors")
    assert len(hdr.floors) == imf.N_CODES and hdr.delta_group == 2
    # floors=False writes kind 15 without flag bit 1; both files keep to the rate
    assert off.header.floors is None
    assert abs(len(on.data) - len(off.data)) <= 0.05 * len(off.data)
    assert max(len(on.data), len(off.data)) * 8 <= 2.0 * 40 * 56 * 1.05


def test_floor_fields_are_checked(floored):
    _, on, _ = floored
    hdr, idx = container.read(on.data)
    body = container.header_bytes(hdr)
    for cut in range(len(body) - (imf.N_CODES * imf.BITS + 7) // 8, len(body)):   # ends inside the floors
        with pytest.raises(CmbFormatError):
            container.read(body[:cut])
    with pytest.raises(ValueError, match="spectral floors"):
        container.write(dataclasses.replace(hdr, floors=(0,) * (imf.N_CODES - 1)), idx)
    with pytest.raises(ValueError, match="spectral floors"):
        container.write(dataclasses.replace(hdr, floors=(16,) + (0,) * (imf.N_CODES - 1)), idx)
    plain = dataclasses.replace(hdr, delta_group=0, group_deltas=(), top_delta=((), 0), delta_blocks=0)
    with pytest.raises(ValueError, match="kind 15"):
        container.write(plain, idx[hdr.delta_blocks:])


def test_every_bit_flip_of_the_floors_is_caught(floored):
    _, on, _ = floored
    hdr, _ = container.read(on.data)
    end = len(container.header_bytes(hdr))
    data = bytearray(on.data)
    for pos in range(end - (imf.N_CODES * imf.BITS + 7) // 8, end):
        for bit in range(8):
            data[pos] ^= 1 << bit
            with pytest.raises(CmbFormatError):
                container.read(bytes(data))
            data[pos] ^= 1 << bit
