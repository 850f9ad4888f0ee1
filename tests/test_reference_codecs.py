"""MP3/Opus references: equal-size search and delay alignment."""
import numpy as np
import pytest

from engine.audio_codec import audio_snr
from engine.reference_codecs import align, at_size, available

from .conftest import voiced_audio


def test_align_undoes_a_delay():
    x = voiced_audio(0.3)[:, None]
    delayed = np.concatenate([np.zeros((529, 1), np.float32), x])
    y = align(x, delayed)
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    early = x[300:]
    z = align(x, early)
    np.testing.assert_array_equal(z[300:], x[300:])


@pytest.mark.parametrize("codec", ["mp3", "opus"])
def test_equal_size_reference(codec):
    if not available(codec):
        pytest.skip(f"libsndfile here has no {codec}")
    x = voiced_audio(1.0)[:, None]
    target = 24000 / 8   # 24 kbit/s over 1 s
    r = at_size(x, 16000, codec, target)
    assert r is not None and r.decoded.shape == x.shape
    assert abs(r.nbytes - target) / target < 0.35        # the nearest size the codec's levels offer
    assert audio_snr(x, r.decoded) > 5                    # aligned: a real waveform match


@pytest.mark.parametrize("codec", ["mp3", "opus"])
def test_sizes_between_fixed_bitrates_are_reached(codec):
    """12 kbit/s lies between LAME's constant rates (8 and 16 kbit/s at 16 kHz) and between the coarse grid's
    Opus levels: the search must still land within 5 % of the budget (MP3 by average bitrate)."""
    if not available(codec):
        pytest.skip(f"libsndfile here has no {codec}")
    x = voiced_audio(3.0)[:, None]
    target = 12000 / 8 * 3.0
    r = at_size(x, 16000, codec, target)
    assert abs(r.nbytes - target) / target < 0.05
    assert audio_snr(x, r.decoded) > 5
    if codec == "mp3":
        assert r.mode == "AVERAGE"
