#!/usr/bin/env bash
# Shared-network latent patch priors trained on one GPU: several runs at once on the same card, each
# warm-started from a shipped prior, on 128x128 crops that no CPU stage has seen (items SKIP.. of the seed-0
# stream over the photos). The photos travel as they are, in one file (66 PNGs, a 39 MiB tar), so any number of
# crops can be cut there. Here, once:
#   mkdir -p gpu_data && tar -cf gpu_data/photos_train.tar -C ../shared/data/images photos_train
# There (carry gpu_data/photos_train.tar):   OUT=bench_out DEADLINE_S=530 bash benchmarks/gpu_train_shared.sh
# Measured on one H200 (docs/results.md, 2026-12-04, fifth session): three runs of 1024 crops share the card at
# about 6 steps/s each (27.7 GiB in all, 100 % busy), 3100 steps each in 530 s.
# Each run rewrites its prior in OUT after every M-step, so the deadline leaves the latest one; logs beside it.
# RUNS lists NAME:RATE:INIT:BETA_INIT:WIDTH[:cd] (the width may exceed the initial prior's: it is grown; `cd`
# trains with a network delta per crop, `--crop-delta`, on 192x192 crops of 3x3 patches (the encoder's groups,
# as the CPU stages t3cd, t3cd2 and the 0.5 bpp t5cd) from item SKIP_CD of their stream, ITEMS * 4 / 9 of them,
# so a step fits about as many patches as the other runs). The run of
# 2026-12-04 was SKIP=2176 RUNS="g1-0.3:0.3:photo64-shared-0.3bpp-s6:1e-6:32
# g1-0.5:0.5:photo64-shared-0.5bpp-s1:5e-7:32 g1w48-0.3:0.3:photo64-shared-0.3bpp-s6:1e-6:48" (g1-0.5 was shipped
# as photo64-shared-0.5bpp-g1); the defaults are the next runs, on the next unseen crops: crop-delta runs at
# 0.3 and 0.5 bpp from -0.3bpp-t3cd (the CPU stages took the 3x3-patch crops 0..170; at 0.5 bpp t3cd already
# codes Kodak crops better than g1, docs/results.md 2026-12-06), and 1.0 bpp.
set -u
OUT=${OUT:-bench_out}; DATA=${DATA:-gpu_data/photos_train.tar}; ITEMS=${ITEMS:-1024}; SKIP=${SKIP:-3200}
BATCH=${BATCH:-2048}; DEADLINE_S=${DEADLINE_S:-530}; ROUNDS=${ROUNDS:-60}; DEV=${DEV:-cuda}; SKIP_CD=${SKIP_CD:-171}
RUNS=${RUNS:-"gcd-0.3:0.3:photo64-shared-0.3bpp-t3cd:1e-6:32:cd gcd-0.5:0.5:photo64-shared-0.3bpp-t3cd:4.5e-7:32:cd g1-1.0:1.0:photo64-shared-1.0bpp-s1:1.5e-8:32"}
mkdir -p "$OUT" /tmp/ck
if [[ "$DATA" == *.tar ]]; then mkdir -p /tmp/photos && tar -xf "$DATA" -C /tmp/photos && DATA=/tmp/photos/photos_train; fi
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; python -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
  >"$OUT/gpu.log" 2>&1
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 >>"$OUT/gpu.log" 2>&1 &
SMI=$!
PIDS=()
for run in $RUNS; do
  IFS=: read -r name rate init beta width mode <<<"$run"
  crops=(--items "$ITEMS" --skip "$SKIP")
  if [ "${mode:-}" = cd ]; then crops=(--items $((ITEMS * 4 / 9)) --skip "$SKIP_CD" --tile 3 --crop-delta); fi
  timeout "$DEADLINE_S" python -m engine.cli learn-prior --data "$DATA" --patch 64 --latent 32,16,8,4,2 \
    --shared-inr --shared-lr 2e-3 --rate "$rate" --width "$width" --depth 2 --freqs 4 --max-freq 8 \
    "${crops[@]}" --batch "$BATCH" --beta-init "$beta" --first-steps 100 --round-steps 100 \
    --warmup 0 --rounds "$ROUNDS" --init-prior "priors/$init.safetensors" --device "$DEV" --no-compile \
    --name "photo64-shared-$name" --checkpoint "/tmp/ck/$name.ckpt" -o "$OUT/photo64-shared-$name.safetensors" \
    >"$OUT/train-$name.log" 2>&1 &
  PIDS+=($!)
done
wait "${PIDS[@]}"
kill "$SMI" 2>/dev/null
rm -f "$OUT"/*.tmp
ls -l "$OUT"
