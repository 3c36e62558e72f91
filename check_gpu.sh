#!/usr/bin/env bash
# Every GPU check in one go: the CPU/GPU parity tests, one epoch of
# training on the GPU, the training benchmark, the packed binarized network
# on the GPU against the Chainer model and its inference benchmark, one epoch
# of data-parallel training (pure_nccl, a GPU a process). Needs CuPy, a CUDA
# GPU and MNIST_DIR (or internet).
#
#   MNIST_DIR=/path/to/mnist ./check_gpu.sh [GPU_ID]
#
# Wheels in ./.whl (Chainer and what it needs, built with `make wheels`)
# are installed first into /tmp/quantized_net-site, for machines whose
# Python has CuPy but not Chainer.
set -euo pipefail
cd "$(dirname "$0")"
gpu="${1:-0}"
python="${PYTHON:-python3}"
if compgen -G '.whl/*.whl' > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile \
        --target /tmp/quantized_net-site .whl/*.whl
    export PYTHONPATH="/tmp/quantized_net-site${PYTHONPATH:+:$PYTHONPATH}"
fi
"$python" - <<'PY'
import chainer_compat  # noqa: F401
import chainer
chainer.print_runtime_info()
PY
echo '== CPU/GPU parity tests'
"$python" -m pytest -q -m gpu -p no:cacheprovider tests
echo '== one epoch on GPU' "$gpu"
out="$(mktemp -d)"
"$python" train_mnist.py --gpu "$gpu" --epoch 1 --seed 0 --noplot --out "$out"
echo '== benchmark on GPU' "$gpu"
"$python" bench.py --gpu "$gpu"
echo '== packed binarized network on GPU' "$gpu"
"$python" infer_packed.py docs/bnn/model.packed.npz --gpu "$gpu"
"$python" bench_packed.py --gpu "$gpu" --batches 100 10000
echo '== data-parallel training on the GPUs (2 processes where there are 2)'
mpiexec="$(command -v mpiexec || true)"
for candidate in .venv/bin/mpiexec /tmp/quantized_net-site/bin/mpiexec; do
    if [ -z "$mpiexec" ] && [ -x "$candidate" ]; then
        mpiexec="$candidate"
    fi
done
n="$("$python" -c 'import cupy; print(min(2, cupy.cuda.runtime.getDeviceCount()))')"
out="$(mktemp -d)"
"$mpiexec" -n "$n" "$python" train_mnist_mn.py --gpu "$gpu" --epoch 1 \
    --seed 0 --noplot --out "$out"
