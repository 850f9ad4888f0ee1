"""Signal <-> tensor conventions shared by the encoder, decoder and prior learning.

Images are uint8 (H, W, C); the network predicts value/255 - 0.5 at row-major pixel coordinates in [-1, 1].
Audio is float in [-1, 1] (L, C); the network predicts sample/2, so both live in [-0.5, 0.5] and an MSE
on the network scale is the MSE of the signal mapped to [0, 1] (the PSNR convention of COIN++/RECOMBINER).
"""
from __future__ import annotations

import numpy as np
import torch


def image_targets(images: np.ndarray, device) -> torch.Tensor:
    """(B, H, W, C) uint8 -> (B, H*W, C) float32 in [-0.5, 0.5]."""
    b, h, w, c = images.shape
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return (x.float() / 255.0 - 0.5).reshape(b, h * w, c)


def to_uint8(pred: torch.Tensor, h: int, w: int) -> np.ndarray:
    """(B, H*W, C) network output -> (B, H, W, C) uint8 (rounded, clipped)."""
    x = ((pred + 0.5).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return x.reshape(pred.shape[0], h, w, -1).cpu().numpy()


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0 ** 2 / mse)


def audio_targets(chunks: np.ndarray, device) -> torch.Tensor:
    """(B, L, C) float samples in [-1, 1] -> (B, L, C) float32 in [-0.5, 0.5]."""
    return torch.from_numpy(np.ascontiguousarray(chunks, dtype=np.float32)).to(device) * 0.5
