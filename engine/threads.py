"""Thread policy: how many CPU threads torch uses, chosen from the work, and no OpenMP busy-waiting.

On a busy machine (other CPU-heavy processes running), OpenMP's worker threads that spin between parallel
regions compete with those processes for the cores and with each other: an encode whose per-step work is
tiny (one 32x32 image) ran 20-70x slower with the default thread count than with one thread. So:

- `configure_env()` (called by `engine/__init__.py` before torch is imported) sets OMP_WAIT_POLICY=PASSIVE
  unless the user set it: idle OpenMP threads sleep instead of spinning;
- `threads_for(work)` picks the thread count from the work of one fitting step (coordinates evaluated per
  step over the batch): one thread for small batches, up to the cores the process may use for large ones;
- `apply(requested, work)` sets it (an explicit --threads N wins).
"""
from __future__ import annotations

import os

WORK_PER_THREAD = 1 << 16     # network evaluations (coordinates x units) per step that justify one more thread


def configure_env() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def threads_for(work: int, n_cores: int | None = None) -> int:
    """Threads for a step that evaluates the network at `work` coordinates (summed over the batch)."""
    n = n_cores or cores()
    return max(1, min(n, int(work) // WORK_PER_THREAD))


def apply(requested: int, work: int) -> int:
    """Set torch's intra-op threads: `requested` if > 0, else threads_for(work) -> the count set."""
    import torch

    n = requested if requested > 0 else threads_for(work)
    torch.set_num_threads(n)
    return n
