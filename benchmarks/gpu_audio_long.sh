#!/usr/bin/env bash
# The 10-minute recording on one GPU (issue 12, item 5), in priority order under one deadline so that partial
# results still come back:
#   1. the shipped encode (12 kbps, fast preset, batches of 512 chunks as on the CPU): wall seconds per batch and
#      per minute of audio, peak RSS and GPU memory; the file is decoded on the CPU in the same script and kept;
#   2. the same with batches of 4 096 chunks (eight times the work per kernel launch), compiled.
#   Each prints a line per finished batch, so a run cut by the deadline still reports its batches.
# Data: one FLAC of the joined speech_test recording (10 MiB), made on a machine with the data set by
#   python benchmarks/audio_long.py --data ../shared/data/audio/speech_test --minutes 10 --pack gpu_data/speech10/long10.flac
# and carried as gpu_data/speech10 (the folder is git-ignored). Then:
#   OUT=$OUT DEADLINE_S=540 bash benchmarks/gpu_audio_long.sh
# Back on the CPU machine, `combiner decode OUT/long10-b512.cmb` checks that the GPU's file decodes there too.
set -u
OUT=${OUT:-bench_out}; DATA=${DATA:-gpu_data/speech10}; DEV=${DEV:-cuda}
END=$(( $(date +%s) + ${DEADLINE_S:-540} ))
mkdir -p "$OUT"
LOG="$OUT/log.txt"
source "$(dirname "$0")/gpu_stage.sh"   # stage NAME CAP COMMAND...
A="python benchmarks/audio_long.py --data $DATA --minutes 10 --kbps 12 --preset fast --device $DEV --no-references"
{ nvidia-smi -L; python -c "import torch; print('torch', torch.__version__)"; } >>"$LOG" 2>&1
stage batch512 330 $A --batch 512 --save "$OUT/long10-b512.cmb" --journal /tmp/long10-b512.journal
stage batch4096 330 $A --batch 4096 --compile --save "$OUT/long10-b4096.cmb" --journal /tmp/long10-b4096.journal
exit 0
