"""COMBINER engine: compression with Bayesian implicit neural representations (pure PyTorch/NumPy).

    from engine import encode, decode
    data = encode(image, rate_bpp=1.0)   # (H, W, 3) uint8 -> .cmb bytes
    image2 = decode(data)                # -> (H, W, 3) uint8

`encode_batch` (a generator of progress events) codes many same-size images as one batch; `learn_prior`
learns a prior; `container` reads and writes the `.cmb` format. The engine never imports Qt.
"""
from .codec import Encoded, EncodeEvent, decode, decode_full, encode, encode_batch, run
from .config import FitConfig, InrConfig, LearnConfig
from .errors import CmbFormatError, CombinerError, MediaError, PriorError
from .learn import learn_prior
from .prior import Prior

__version__ = "0.1.0"
__all__ = ["encode", "decode", "decode_full", "encode_batch", "run", "Encoded", "EncodeEvent", "learn_prior",
           "Prior", "FitConfig", "InrConfig", "LearnConfig", "CombinerError", "CmbFormatError", "PriorError",
           "MediaError", "__version__"]
