#!/usr/bin/env bash
# The shipped speech priors (16 kHz, 800-sample chunks, SIREN depth 2, 8 Fourier frequencies up to 256),
# trained on CPU (one thread each, two at a time) with the project's own learner on
# ../shared/data/audio/speech_train only (never on speech_test). Training chunks are the first --items of
# the seed-0 shuffle of all 800-sample chunks of all training files.
# To refine a prior on unseen chunks later: add  --skip 512 --items 768 --init-prior OUT/NAME.safetensors
set -euo pipefail
DATA=${DATA:-../shared/data/audio/speech_train}
OUT=${OUT:-priors}
train() {  # kbps width items rounds
  local name=speech16k-$1kbps
  combiner learn-prior --data "$DATA" --kbps "$1" --width "$2" --depth 2 --freqs 8 --max-freq 256 \
    --items "$3" --first-steps 400 --round-steps 200 --rounds "$4" --threads 1 --name "$name" -q \
    -o "$OUT/$name.safetensors"
}
( train 5 32 512 8; train 40 64 384 5 ) &
( train 10 48 512 8; train 20 56 384 5 ) &
wait
