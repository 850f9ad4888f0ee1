#!/usr/bin/env bash
# Kodak on one GPU, in priority order under one deadline so that partial results still come back:
#   1. encode time of one full Kodak image at 0.5 bpp, fast preset (after a warm-up encode), then the same with
#      every step over all pixels (--fit points=1);
#   2. the 24 images at 0.3 and 0.5 bpp, fast preset, 4 images per batch (.cmb files kept);
#   3. the same single-image timing with the best preset;
#   4. the 24 images at 0.1 and 1.0 bpp; 5. peak memory of a 4000x3000 photo (short fit).
# The JPEG/WebP/AVIF columns are added afterwards on any machine with `kodak_rd.py --from-json k.jsonl
# --decode-dir DIR` (the files untarred from cmb.tar), which also decodes every file again there and checks it.
#   OUT=bench_out DATA=path/to/kodak DEADLINE_S=540 bash benchmarks/gpu_kodak.sh
set -u
OUT=${OUT:-bench_out}; DATA=${DATA:-gpu_data/kodak}; DEV=${DEV:-cuda}; N=${N:-24}
END=$(( $(date +%s) + ${DEADLINE_S:-540} ))
mkdir -p "$OUT" /tmp/cmb
LOG="$OUT/log.txt"
source "$(dirname "$0")/gpu_stage.sh"   # stage NAME CAP COMMAND...
K="python benchmarks/kodak_rd.py --data $DATA --device $DEV --no-classic"
{ nvidia-smi -L; python -c "import torch, PIL; print('torch', torch.__version__, 'Pillow', PIL.__version__)"; } >>"$LOG" 2>&1
stage time-fast 150 $K -n 1 --bpp 0.5 --preset fast --warmup --json "$OUT/timing_fast.jsonl" || exit 1
# the same with every step over all pixels (600 steps; the default since 2026-12-04 is 2 400 steps over a quarter
# of them, which pays on a CPU; on the GPU, whose steps are bound by kernel launches, it may not: docs/results.md)
stage time-fast-points1 120 $K -n 1 --bpp 0.5 --preset fast --fit points=1 --json "$OUT/timing_fast.jsonl"
for r in 0.3 0.5; do
  stage kodak-$r 170 $K -n "$N" --bpp $r --batch 4 --preset fast --warmup --json "$OUT/kodak.jsonl" --save-dir /tmp/cmb
done
stage time-best 200 $K -n 1 --bpp 0.5 --preset best --warmup --json "$OUT/timing_best.jsonl"
for r in 0.1 1.0; do
  stage kodak-$r 170 $K -n "$N" --bpp $r --batch 4 --preset fast --warmup --json "$OUT/kodak.jsonl" --save-dir /tmp/cmb
done
stage memory-12mp 120 python benchmarks/patch_memory.py --prior priors/photo64-0.3bpp.safetensors --bpp 0.3 \
  --steps 4 --device "$DEV"
tar -cf "$OUT/cmb.tar" -C /tmp cmb
