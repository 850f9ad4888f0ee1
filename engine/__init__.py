"""COMBINER engine: compression with Bayesian implicit neural representations (pure PyTorch/NumPy).

    from engine import encode, decode
    data = encode(image, rate_bpp=1.0)   # (H, W, 3) uint8 -> .cmb bytes
    image2 = decode(data)                # -> (H, W, 3) uint8

    samples2, rate = decode_audio(encode_audio_bytes(samples, 16000, kbps=10))   # (N, C) float audio

`encode_batch` (a generator of progress events) codes many same-size images as one batch, `encode_audio`
(also a generator) one audio clip; `learn_prior`
learns a prior; `container` reads and writes the `.cmb` format. The engine never imports Qt.
"""
from .threads import configure_env as _configure_env

_configure_env()  # before torch is imported: OpenMP threads must not busy-wait (engine/threads.py)

from .audio_codec import EncodedAudio, decode_audio, decode_audio_full, encode_audio, encode_audio_batch
from .codec import Encoded, EncodeEvent, decode, decode_full, encode, encode_batch, run
from .config import FitConfig, InrConfig, LearnConfig
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .learn import learn_prior
from .prior import Prior

__version__ = "0.1.0"
__all__ = ["encode", "decode", "decode_full", "encode_batch", "run", "Encoded", "EncodeEvent", "learn_prior",
           "encode_audio", "encode_audio_batch", "encode_audio_bytes", "decode_audio", "decode_audio_full",
           "EncodedAudio",
           "Prior", "FitConfig", "InrConfig", "LearnConfig", "CombinerError", "CmbFormatError", "PriorError",
           "MediaError", "__version__"]


def encode_audio_bytes(samples, sample_rate: int, kbps: float, **kw) -> bytes:
    """One audio clip, (N,) or (N, C) samples -> `.cmb` bytes."""
    return run(encode_audio(samples, sample_rate, kbps, **kw)).data
