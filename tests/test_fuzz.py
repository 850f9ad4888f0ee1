"""A fixed-seed slice of the coverage-guided fuzzer (fuzz/fuzz_cmb.py) over the reader and every decoder.

The long campaigns are run by hand (fuzz/campaign.py; numbers in docs/results.md)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
atheris = pytest.importorskip("atheris")


@pytest.mark.parametrize("kind,runs", [("container", 2000), ("image", 700), ("patch", 700), ("alpha", 700),
                                       ("audio", 700)])
def test_fuzz_slice(kind, runs, tmp_path):
    stats = tmp_path / "stats.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), FUZZ_STATS=str(stats), OMP_NUM_THREADS="1")
    corpus = ROOT / "fuzz" / "corpus" / kind
    before = sorted(p.name for p in corpus.iterdir())
    (tmp_path / "new").mkdir()
    p = subprocess.run([sys.executable, str(ROOT / "fuzz" / "fuzz_cmb.py"), "--kind", kind, f"-runs={runs}",
                        "-seed=1", "-timeout=10", "-rss_limit_mb=2048", "-max_len=2048",
                        f"-artifact_prefix={tmp_path}/", str(tmp_path / "new"), str(corpus)],
                       capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-4000:]
    assert f"Done {runs} runs" in p.stderr
    counts = json.loads(stats.read_text())
    assert sum(counts.values()) >= runs
    assert all(k == "read" or k.startswith("decoded") or "Error" in k for k in counts), counts
    if kind != "container":  # the CRC-fixing harness gets through to the decoders
        assert any(k.startswith("decoded") for k in counts), counts
    assert sorted(p.name for p in corpus.iterdir()) == before  # the seed corpus is never written to
