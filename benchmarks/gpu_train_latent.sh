#!/usr/bin/env bash
# Latent-grid patch prior training on one GPU, continuing from the shipped prior (warm start) on crops the
# CPU stages have not seen. Prepare the data here (one file, carried to the GPU machine):
#   python benchmarks/pack_crops.py --data ../shared/data/images/photos_train --side 128 -n 1200 --skip 96 \
#       -o gpu_crops.npz          # about 40-55 MiB
# then on the GPU machine:  RATE=0.3 STEPS_ROUNDS=40 bash benchmarks/gpu_train_latent.sh
# Every M-step rewrites OUT (a deadline still leaves the latest prior); record the log in docs/results.md.
set -euo pipefail
RATE=${RATE:-0.3}; DATA=${DATA:-gpu_crops.npz}; N=${N:-1200}; ROUNDS=${STEPS_ROUNDS:-40}
OUT=${OUT:-bench_out/photo64-latent-${RATE}bpp.safetensors}
mkdir -p "$(dirname "$OUT")"
INIT=priors/photo64-latent-${RATE}bpp.safetensors
combiner learn-prior --data "$DATA" --patch 64 --latent 32,16,8,4,2 --rate "$RATE" --width 32 --depth 2 \
  --freqs 4 --max-freq 8 --items "$N" --batch "$N" --first-steps 100 --round-steps 100 --rounds "$ROUNDS" \
  --device cuda --compile $( [ -f "$INIT" ] && echo --init-prior "$INIT" ) \
  --name "photo64-latent-${RATE}bpp" -o "$OUT"
