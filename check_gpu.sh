#!/usr/bin/env bash
# Every GPU check in one go, on a machine with Python 3.12, NumPy 2 and
# CuPy 13 or 14 and a CUDA GPU:
#
#   MNIST_DIR=/path/to/mnist ./check_gpu.sh [GPU_ID]
#
# 1. CuPy must see a GPU, or the script stops at once.
# 2. The CPU/GPU parity tests (pytest -m gpu): none may be skipped.
# 3. One epoch of ./train_mnist.py --gpu on MNIST, its validation accuracy
#    beside the CPU's (docs/seed_log.json, the same seed), and one epoch of
#    the binarized ConvNet beside the CPU's (docs/bnn-conv/log.json).
# 4. ./bench.py --gpu; ./infer_packed.py --gpu with every label compared
#    with the CPU engine's, for the packed MLP and ConvNet;
#    ./bench_packed.py --gpu.
# 5. One epoch of data-parallel training (pure_nccl, 2 processes where
#    there are 2 GPUs), where mpiexec is.
#
# Steps 2 to 5 each run even where an earlier one failed, so that one run on
# a GPU machine shows every fault; the script then names the failed steps and
# exits 1. Each step's output is also written to RESULTS (default
# gpu-check/). The wheels in ./.whl (`make wheels`: Chainer, what it needs,
# pytest, MPI) are installed, once CuPy has found the GPU, into a fresh
# /tmp/quantized_net-site, for a Python that has CuPy but not Chainer.
set -uo pipefail
cd "$(dirname "$0")"
gpu="${1:-0}"
python="${PYTHON:-python3}"
results="${RESULTS:-gpu-check}"
failed=()
# A step is a function run in a subshell with errexit, so that it stops at
# its first failing command without stopping the steps after it.
step() {
    echo "== $1"
    local start=$SECONDS
    (set -e; "$2")
    local status=$?
    echo "-- $1: $((SECONDS - start)) s"
    if [ "$status" -ne 0 ]; then
        failed+=("$1")
        echo "check_gpu.sh: step failed (exit $status): $1" >&2
    fi
}

"$python" - "$gpu" <<'PY' || exit 1
import sys
try:
    import cupy
    count = cupy.cuda.runtime.getDeviceCount()
except Exception as e:  # no CuPy, no driver, no device
    sys.exit('check_gpu.sh: CuPy sees no GPU ({}: {}); run it on a machine '
             'with a CUDA GPU and CuPy.'.format(type(e).__name__, e))
if int(sys.argv[1]) >= count:
    sys.exit('check_gpu.sh: GPU {} does not exist; CuPy sees {}.'.format(
        sys.argv[1], count))
PY
if compgen -G '.whl/*.whl' > /dev/null; then
    site=/tmp/quantized_net-site
    rm -rf "$site"  # pip --target does not replace what an earlier run left
    "$python" -m pip install -q --no-index --no-deps --no-compile \
        --target "$site" .whl/*.whl || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$site/bin:$PATH"
fi
"$python" -c 'import quantized_net, chainer; chainer.print_runtime_info()' \
    || exit 1
mkdir -p "$results"

parity_tests() {
    "$python" -m pytest -q -rs -m gpu -p no:cacheprovider tests \
        | tee "$results/parity.txt"
    if grep -q ' skipped' "$results/parity.txt"; then
        echo 'GPU tests were skipped (reasons above); on a GPU every one' \
            'must run.' >&2
        return 1
    fi
}

one_epoch() {
    local out
    out="$(mktemp -d)"
    "$python" train_mnist.py --gpu "$gpu" --epoch 1 --seed 0 --noplot \
        --out "$out" | tee "$results/train.txt"
    "$python" - "$out" <<'PY' | tee -a "$results/train.txt"
import json, sys
gpu = json.load(open(sys.argv[1] + '/log'))[0]['validation/main/accuracy']
cpu = json.load(open('docs/seed_log.json'))[0]['validation/main/accuracy']
print('epoch 1 validation accuracy: GPU {:.4f}, CPU {:.4f}'.format(gpu, cpu))
PY
}

convnet_epoch() {
    local out bn_batches
    out="$(mktemp -d)"
    # As the CPU's run recorded it: with or without recomputed statistics.
    bn_batches="$("$python" -c "import json; print(json.load(open(
        'docs/bnn-conv/args.json'))['config'].get('bn_batches', 0))")"
    "$python" train_mnist.py --gpu "$gpu" --preset bnn-conv --width 0.5 \
        --bn-batches "$bn_batches" --epoch 1 --seed 1 --noplot --out "$out" \
        | tee "$results/train_convnet.txt"
    "$python" - "$out" <<'PY' | tee -a "$results/train_convnet.txt"
import json, sys
gpu = json.load(open(sys.argv[1] + '/log'))[0]['validation/main/accuracy']
cpu = json.load(open('docs/bnn-conv/log.json'))[0]['validation/main/accuracy']
print('ConvNet epoch 1 validation accuracy: GPU {:.4f}, CPU {:.4f}'.format(
    gpu, cpu))
PY
}

training_benchmark() {
    "$python" bench.py --gpu "$gpu" --breakdown | tee "$results/bench.txt"
}

packed_network() {
    local packed
    for packed in docs/bnn/model.packed.npz docs/bnn-conv/model.packed.npz; do
        "$python" infer_packed.py "$packed" --gpu "$gpu" \
            | tee -a "$results/infer_packed.txt"
        "$python" - "$gpu" "$packed" <<'PY' | tee -a "$results/infer_packed.txt"
import sys
import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from quantized_net.packed import engine
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features
from quantized_net.training import mnist
network = packed_format.load(sys.argv[2])
_, (images, _) = mnist.read_mnist()
# Without numba, the CPU's blas engine: the same function, tested so.
cpu = engine.select(network, kind='packed' if cpu_features.HAVE_NUMBA
                    else 'blas').classify(images)
gpu = engine.select(network, chainer.get_device(
    '@cupy:' + sys.argv[1])).classify(images)
print('{}: {} of {} labels differ between the GPU and the CPU engine'
      .format(sys.argv[2], int((cpu != gpu).sum()), len(cpu)))
sys.exit(int((cpu != gpu).any()))
PY
        "$python" bench_packed.py "$packed" --gpu "$gpu" \
            --batches 100 10000 | tee -a "$results/bench_packed.txt"
    done
}

data_parallel() {
    local mpiexec n out
    mpiexec="$(command -v mpiexec || true)"
    if [ -z "$mpiexec" ] && [ -x .venv/bin/mpiexec ]; then
        mpiexec=.venv/bin/mpiexec
    fi
    if [ -z "$mpiexec" ]; then
        echo 'no mpiexec (make wheels brings one): data-parallel step not run' \
            | tee "$results/multi_node.txt"
    else
        n="$("$python" -c 'import cupy; print(min(2, cupy.cuda.runtime.getDeviceCount()))')"
        out="$(mktemp -d)"
        "$mpiexec" -n "$n" "$python" train_mnist_mn.py --gpu "$gpu" --epoch 1 \
            --seed 0 --noplot --out "$out" | tee "$results/multi_node.txt"
    fi
}

step 'CPU/GPU parity tests' parity_tests
step "one epoch on GPU $gpu" one_epoch
step "one epoch of the binarized ConvNet on GPU $gpu" convnet_epoch
step "training benchmark on GPU $gpu" training_benchmark
step "packed binarized network on GPU $gpu" packed_network
step 'data-parallel training on the GPUs (2 processes where there are 2)' \
    data_parallel
if [ "${#failed[@]}" -ne 0 ]; then
    printf 'check_gpu.sh: %d step(s) failed:' "${#failed[@]}" >&2
    printf ' [%s]' "${failed[@]}" >&2
    printf '; the output of each is in %s/\n' "$results" >&2
    exit 1
fi
echo "check_gpu.sh: every check passed; the tables are in $results/"
