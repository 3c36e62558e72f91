# Entry points for a fresh clone:
#   make train [ARGS="--gpu 0 --epoch 5"]   set up .venv, then train on MNIST
#   make test                                set up .venv, then run the tests
#   make train-mn N=2 [ARGS=...]             the same training on N MPI processes
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Chainer's sdist must build with setuptools < 81 (see constraints.txt). Pip
# before 26.2 applies PIP_CONSTRAINT to isolated build environments, later
# releases read PIP_BUILD_CONSTRAINT instead; setting both covers every pip.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_BUILD_CONSTRAINT := $(CURDIR)/constraints.txt

N ?= 2

.PHONY: setup train train-mn test wheels

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-test.txt \
		requirements-mpi.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-test.txt
	touch $@

train: setup
	$(PY) train_mnist.py $(ARGS)

# requirements-test.txt brings requirements-mpi.txt, and with it mpiexec.
train-mn: setup
	$(VENV)/bin/mpiexec -n $(N) $(PY) train_mnist_mn.py $(ARGS)

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Wheels for a GPU machine whose Python (3.12) has NumPy and CuPy but not
# Chainer: ./check_gpu.sh installs what it finds in .whl. Chainer is built
# here (it has no wheel); what it needs (not NumPy), pytest and MPI come as
# Python 3.12 wheels with their own dependencies. numba and matplotlib are
# left out: without them the CPU-kernel tests skip and runs draw no plots.
wheels: setup
	rm -rf .whl
	$(PY) -m pip wheel --quiet --no-deps --wheel-dir .whl chainer==7.8.1
	$(PY) -m pip download --quiet --only-binary=:all: \
		--python-version 3.12 --dest .whl 'setuptools<81' six \
		typing_extensions filelock protobuf pytest 'mpi4py>=4.1' \
		'mpich>=4.3'
