#!/usr/bin/env bash
# One short accelerator check: the paper_* training steps and the flow benchmark on whatever
# GPU/TPU JAX sees. Writes JSON under ${OUT:-benchmarks/device}. Uses the machine's own
# jax/flax/optax/diffrax/orbax (no install); run from the repository root.
set -uo pipefail
out=${OUT:-benchmarks/device}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
$py -c "import jax, flax, diffrax, optax; print('jax', jax.__version__, jax.devices())"
timeout 240 $py benchmarks/bench_train.py paper_mnist paper_faces faces_l2 --repeats 5 \
    --json "$out/train.json"
timeout 200 $py benchmarks/bench_flow.py --repeats 5 --json "$out/flow.json"
