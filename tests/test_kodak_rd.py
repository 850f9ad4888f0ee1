"""Helpers of the Kodak benchmark (benchmarks/kodak_rd.py) that its reported figures rest on."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from benchmarks.kodak_rd import classic_interpolated
from engine.signals import psnr_uint8

from .conftest import photo


def test_classic_codec_interpolated_to_our_exact_file_size():
    """benchmarks/kodak_rd.py: the classic codec's PSNR at exactly our file's size lies on the line between the
    two neighbouring qualities that bracket it, and is that quality's own PSNR at its exact size."""
    img = photo(96, 128)

    def webp(q):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="WEBP", quality=q)
        return buf.tell(), psnr_uint8(img, np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))

    (s40, p40), (s41, p41) = webp(40), webp(41)
    assert s40 < s41
    assert classic_interpolated(img, "WEBP", s40) == pytest.approx(p40, abs=1e-9)
    mid = classic_interpolated(img, "WEBP", (s40 + s41) // 2)
    assert min(p40, p41) <= mid <= max(p40, p41)
    assert classic_interpolated(img, "WEBP", 10) is None          # below quality 1's file
