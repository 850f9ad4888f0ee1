#!/usr/bin/env bash
# The commands that produced priors/cifar10-*.safetensors (CPU, one thread per job, 2-core machine).
# Each prior: one run from a fresh SIREN initialisation, then refinement runs on further, unseen training
# items (--init-prior/--skip). Only CIFAR-10 *training* images are used.
set -euo pipefail
D=${1:-../shared/data/images/cifar10/train.npz}
run() { combiner learn-prior --data "$D" --threads 1 -q "$@"; }

# rate  width  items per stage
run --rate 0.3 --width 16 --items 512 --rounds 10 --name cifar10-0.3bpp -o priors/cifar10-0.3bpp.safetensors
run --rate 0.3 --width 16 --items 512 --skip 512  --first-steps 200 --rounds 6 --name cifar10-0.3bpp --init-prior priors/cifar10-0.3bpp.safetensors -o priors/cifar10-0.3bpp.safetensors
run --rate 0.3 --width 16 --items 512 --skip 1024 --first-steps 200 --rounds 6 --name cifar10-0.3bpp --init-prior priors/cifar10-0.3bpp.safetensors -o priors/cifar10-0.3bpp.safetensors

run --rate 0.8 --width 24 --items 512 --rounds 10 --name cifar10-0.8bpp -o priors/cifar10-0.8bpp.safetensors
run --rate 0.8 --width 24 --items 512 --skip 512  --first-steps 200 --rounds 6 --name cifar10-0.8bpp --init-prior priors/cifar10-0.8bpp.safetensors -o priors/cifar10-0.8bpp.safetensors
run --rate 0.8 --width 24 --items 512 --skip 1024 --first-steps 200 --rounds 6 --name cifar10-0.8bpp --init-prior priors/cifar10-0.8bpp.safetensors -o priors/cifar10-0.8bpp.safetensors

run --rate 1.8 --width 32 --items 384 --rounds 10 --name cifar10-1.8bpp -o priors/cifar10-1.8bpp.safetensors
run --rate 1.8 --width 32 --items 384 --skip 384 --first-steps 200 --rounds 6 --name cifar10-1.8bpp --init-prior priors/cifar10-1.8bpp.safetensors -o priors/cifar10-1.8bpp.safetensors
run --rate 1.8 --width 32 --items 384 --skip 768 --first-steps 200 --rounds 4 --name cifar10-1.8bpp --init-prior priors/cifar10-1.8bpp.safetensors -o priors/cifar10-1.8bpp.safetensors

run --rate 3.6 --width 48 --items 384 --rounds 10 --name cifar10-3.6bpp -o priors/cifar10-3.6bpp.safetensors
run --rate 3.6 --width 48 --items 384 --skip 384 --first-steps 200 --rounds 6 --name cifar10-3.6bpp --init-prior priors/cifar10-3.6bpp.safetensors -o priors/cifar10-3.6bpp.safetensors
run --rate 3.6 --width 48 --items 384 --skip 768 --first-steps 200 --rounds 4 --name cifar10-3.6bpp --init-prior priors/cifar10-3.6bpp.safetensors -o priors/cifar10-3.6bpp.safetensors
# a fourth stage for 1.8 bpp (two threads, the machine otherwise idle)
combiner learn-prior --data "$D" --threads 2 -q --rate 1.8 --width 32 --items 768 --skip 1152 --first-steps 200 --rounds 6 --name cifar10-1.8bpp --init-prior priors/cifar10-1.8bpp.safetensors -o priors/cifar10-1.8bpp.safetensors
# 2026-12-04 (seventh session): a prior for 1.0 bpp (until then 1.0 bpp used the 0.8 bpp prior), warm-started
# from cifar10-0.8bpp and trained in stages of 768 unseen items each (one thread, beside other jobs)
run --rate 1.0 --width 24 --items 768 --skip 1536 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-0.8bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
run --rate 1.0 --width 24 --items 768 --skip 2304 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-1.0bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
run --rate 1.0 --width 24 --items 768 --skip 3072 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-1.0bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
run --rate 1.0 --width 24 --items 768 --skip 3840 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-1.0bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
run --rate 1.0 --width 24 --items 768 --skip 4608 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-1.0bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
run --rate 1.0 --width 24 --items 768 --skip 5376 --first-steps 200 --rounds 6 --name cifar10-1.0bpp --init-prior priors/cifar10-1.0bpp.safetensors -o priors/cifar10-1.0bpp.safetensors
