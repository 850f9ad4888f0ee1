"""Co-operative cancellation of long engine work, reaching inside a single fitting step.

A caller that may want to stop an encode or a decode early (the app's worker thread) makes a `Token`, runs the
engine inside `with scope(token):` on the same thread, and calls `token.cancel()` from any thread. The engine
calls `check()` at a few cheap points (between the layers of a network evaluation, between the blocks of the
A* coding loop, between render batches of a decode) and `watch(tensor)` on activations, so that a backward
pass also stops between layers. Where the token is set, these raise `Cancelled`; the generator being driven
unwinds and nothing is written. Without a token in scope every call is a no-op, so the CLI, the tests and
the results (bit for bit) are unaffected.
"""
from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import torch

__all__ = ["Cancelled", "Token", "check", "current", "scope", "watch"]


class Cancelled(Exception):
    """The work was cancelled through its token (not an error: nothing was produced)."""


class Token:
    """Thread-safe cancel flag."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


_local = threading.local()


def current() -> Token | None:
    """The token in scope on this thread, if any."""
    return getattr(_local, "token", None)


@contextmanager
def scope(token: Token | None):
    """Make `token` the one `check()` and `watch()` see on this thread for the duration of the block."""
    prev = getattr(_local, "token", None)
    _local.token = token
    try:
        yield token
    finally:
        _local.token = prev


def _compiling() -> bool:
    # torch.compiler.is_compiling() imports the whole of torch._dynamo (sympy...) on first use: seconds of
    # GIL-holding imports in the middle of an encode. Nothing is being compiled unless dynamo is loaded.
    return "torch._dynamo" in sys.modules and torch.compiler.is_compiling()


def check() -> None:
    """Raise Cancelled if this thread's token is set (no-op without a token, and while being compiled)."""
    t = getattr(_local, "token", None)
    if t is None or _compiling():
        return
    if t._event.is_set():
        raise Cancelled("cancelled")


def _hook(token: Token):
    def hook(grad):
        token.check()     # raised inside backward: propagates out of `loss.backward()`
        return None       # the gradient is left as it is
    return hook


def watch(x: torch.Tensor) -> torch.Tensor:
    """Check now, and make the backward pass through `x` check too (the token is captured here, since a
    backward pass may run on another thread). Returns `x` unchanged."""
    t = getattr(_local, "token", None)
    if t is None or _compiling():
        return x
    t.check()
    if x.requires_grad:
        x.register_hook(_hook(t))
    return x


def cleanup() -> None:
    """Call on the thread that ran the work, after catching Cancelled: collects the half-finished autograd
    graph (and the hooks `watch` put on it) there and then. Left to the interpreter's exit, its collection
    was seen to abort the process ("terminate called without an active exception") when the cancel had
    struck inside a backward pass on a worker thread."""
    import gc

    gc.collect(1)   # the young generations hold it; a full collection of a torch + Qt heap takes ~1 s
