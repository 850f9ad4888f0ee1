"""`--fit FIELD=VALUE`: experiments that change one field of the preset's FitConfig, shared by the benchmarks."""
from __future__ import annotations

import argparse
from dataclasses import replace

from engine.config import FitConfig


def add_fit_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--fit", action="append", default=None, metavar="FIELD=VALUE",
                    help="override a field of the preset's FitConfig (experiments; an explicit points value "
                         "does not rescale steps)")


def fit_overrides(fit: FitConfig, pairs: list[str] | None) -> FitConfig:
    """The preset with --fit FIELD=VALUE overrides (experiments), e.g. points=0.125 steps=4800 sample=true."""
    for kv in pairs or []:
        k, _, v = kv.partition("=")
        if k not in FitConfig.__dataclass_fields__ or not v:
            raise SystemExit(f"--fit {kv!r}: give FIELD=VALUE with a FitConfig field")
        cur = getattr(fit, k)
        try:
            if isinstance(cur, bool):
                val = v.lower() in ("1", "true", "yes")
            else:   # int fields stay int; fields left None by the preset (shortlist, points) take numbers
                val = int(v) if isinstance(cur, int) or (cur is None and k == "shortlist") else float(v)
        except ValueError:
            raise SystemExit(f"--fit {kv!r}: {v!r} is not a number") from None
        fit = replace(fit, **{k: val})
    return fit
