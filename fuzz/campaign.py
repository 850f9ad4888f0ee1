"""Run a fuzzing campaign over every kind, one process at a time, and print the outcome counts.

    nice -n 10 python fuzz/campaign.py --runs 100000 --seed 7 [--kinds audio,patch] [--out /tmp/fuzz]

Each kind runs fuzz/fuzz_cmb.py with -timeout=10 (a hang is an input taking over 10 s) and -rss_limit_mb=2048,
starting from fuzz/corpus/KIND; new inputs go to OUT/KIND (never into the repository's corpus). Prints one
Markdown table (kind, runs, seconds, findings, outcomes) for docs/results.md; exit status 1 on any finding.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kinds", default="container,image,patch,alpha,audio")
    ap.add_argument("--out", default="/tmp/combiner-fuzz")
    ap.add_argument("--max-len", type=int, default=4096)
    a = ap.parse_args()
    out = Path(a.out)
    rows, bad = [], False
    for kind in a.kinds.split(","):
        work = out / kind
        work.mkdir(parents=True, exist_ok=True)
        stats = out / f"{kind}.json"
        cmd = [sys.executable, str(HERE / "fuzz_cmb.py"), "--kind", kind, f"-runs={a.runs}", f"-seed={a.seed}",
               "-timeout=10", "-rss_limit_mb=2048", f"-max_len={a.max_len}", f"-artifact_prefix={out}/{kind}-",
               str(work), str(HERE / "corpus" / kind)]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ,
                                                                       "FUZZ_STATS": str(stats)})
        secs = time.time() - t0
        done = re.findall(r"Done (\d+) runs", p.stderr)
        findings = [ln for ln in p.stderr.splitlines() if "ERROR: libFuzzer" in ln or "Uncaught Python exception" in ln]
        counts = json.loads(stats.read_text()) if stats.exists() else {}
        ok = p.returncode == 0 and not findings
        bad |= not ok
        decoded = sum(v for k, v in counts.items() if k.startswith("decoded") or k == "read")
        errors = sum(v for k, v in counts.items() if "Error" in k)
        top = "; ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda x: -x[1])[:4])
        rows.append(f"| {kind} | {done[-1] if done else '?'} | {secs:.0f} | {len(findings)} (exit {p.returncode}) | "
                    f"{decoded} | {errors} | {top} |")
        print(rows[-1], flush=True)
        if not ok:
            print(p.stderr[-3000:], file=sys.stderr)
    print("\n| kind | inputs | seconds | findings | decoded/read | format errors | most frequent outcomes |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
