"""train_mnist.py as a user runs it: in a subprocess, reading its output.
What the training does is tests/unit/training's (test_session.py and the
modules it uses); here, that the command runs it, prints it, and ends in
one line."""
import json
import os
import signal
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error, assert_same_run, without_time
from quantized_net.packed.kernels import cpu_features
from quantized_net.training.result_dir import read_args, read_log

FAST = ['--unit', '500', '--batchsize', '50', '--noplot']


def run(*args, **kwargs):
    return helpers.run_script('train_mnist.py', *args, **kwargs)


def run_ok(*args):
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory):
    """A 2-epoch seeded run on a small data set, and its inputs."""
    tmp = tmp_path_factory.mktemp('train')
    data = str(tmp / 'data')
    helpers.write_subset(data)
    out = str(tmp / 'full')
    result = run_ok('--dataset-dir', data, '--epoch', 2, '--seed', 7,
                    '--out', out, *FAST)
    return data, out, result


def test_short_run_learns(two_epochs):
    data, out, result = two_epochs
    log = read_log(out)
    assert [entry['epoch'] for entry in log] == [1, 2]
    assert log[-1]['validation/main/accuracy'] > 0.7  # chance is 0.1
    assert log[-1]['main/loss'] < log[0]['main/loss']
    for column in ('main/loss', 'validation/main/loss', 'main/accuracy',
                   'validation/main/accuracy', 'elapsed_time'):
        assert column in result.stdout
    assert '# seed: 7' in result.stdout
    assert sorted(os.listdir(out)) == [
        'args.json', 'cg.dot', 'log', 'model.npz', 'snapshot_iter_80']
    assert read_args(out)['argv'] == [
        '--dataset-dir', data, '--epoch', '2',
        '--seed', '7', '--out', out] + FAST


def test_same_seed_same_log_here_as_in_the_command(two_epochs, tmp_path,
                                                   train_here):
    data, out, _ = two_epochs
    again = str(tmp_path / 'again')
    train_here('--dataset-dir', data, '--epoch', 2, '--seed', 7, '--out',
               again, *FAST)
    assert without_time(read_log(again)) == without_time(read_log(out))


def test_resumed_without_seed_and_with_plots_is_the_same_run(two_epochs,
                                                             tmp_path):
    data, out, _ = two_epochs
    part = str(tmp_path / 'part')
    run_ok('--dataset-dir', data, '--epoch', 1, '--seed', 7, '--out', part,
           *FAST)
    # Resumed without --seed and with plots: the same run, its seed kept,
    # and the plots drawn.
    flags = [flag for flag in FAST if flag != '--noplot']
    run_ok('--dataset-dir', data, '--epoch', 2, '--out', part, '--resume',
           os.path.join(part, 'snapshot_iter_40'), *flags)
    assert without_time(read_log(part)) == without_time(read_log(out))
    assert read_args(part)['seed'] == 7
    for name in ('loss.png', 'accuracy.png'):
        with open(os.path.join(part, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
def test_gpu_without_gpu_is_a_clear_error(two_epochs, tmp_path):
    data, _, _ = two_epochs
    result = run('--dataset-dir', data, '--out', str(tmp_path), '--gpu=0')
    assert_one_line_error(result, 'train_mnist.py: error: --gpu 0 ')
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('flags,message', [
    (['--epoch', '0'], 'argument --epoch/-e: must be at least 1, got 0'),
    (['--unit', 10 ** 9], 'unit is 1000000000; it must be an integer from 1 '
                          'to 8192')])
def test_bad_flags_are_argparse_errors(flags, message):
    assert_one_line_error(run(*flags), message, code=2)


def test_a_failing_run_ends_in_one_line(two_epochs, tmp_path):
    data, _, _ = two_epochs
    assert_one_line_error(
        run('--dataset-dir', data, '--resume', str(tmp_path / 'none'),
            '--out', str(tmp_path), *FAST),
        'train_mnist.py: error: cannot resume: snapshot', 'does not exist')
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
def test_one_epoch_on_real_mnist(tmp_path):
    out = str(tmp_path / 'real')
    run_ok('--epoch', 1, '--seed', 0, '--noplot', '--out', out)
    log = read_log(out)
    assert log[0]['validation/main/accuracy'] >= 0.955


# What the published log depends on beyond --seed: the kernel OpenBLAS
# picks for the CPU, which sets the order of each product's sums, and its
# thread count. The README pins both.
PINNED_BLAS = {'OPENBLAS_CORETYPE': 'Haswell', 'OPENBLAS_NUM_THREADS': '2'}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
@pytest.mark.skipif(not {'avx2', 'fma'} <= cpu_features.host_features(),
                    reason="OpenBLAS's Haswell kernels need AVX2 and FMA")
def test_pinned_blas_writes_the_published_log_on_real_mnist(tmp_path):
    out = str(tmp_path / 'seed')
    result = run('--epoch', 2, '--seed', 0, '--noplot', '--out', out,
                 env=PINNED_BLAS)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(helpers.ROOT, 'docs', 'seed_log.json')) as f:
        published = json.load(f)
    assert without_time(read_log(out)) == without_time(published[:2])


# A binarized ConvNet an eighth as wide as the preset's: 8-8-16-16 filters.
CONV = ['--preset', 'bnn-conv', '--width', '0.125', '--validation', '200',
        '--batchsize', '50', '--noplot']


def test_a_convnet_trains_and_resumes_exactly(two_epochs, tmp_path):
    data = two_epochs[0]
    whole, part = str(tmp_path / 'whole'), str(tmp_path / 'part')
    result = run_ok('--dataset-dir', data, '--epoch', 2, '--seed', 3,
                    '--out', whole, *CONV)
    assert '# layers: 64C3-64C3-P2-128C3-128C3-P2-512FC x 0.125 wide, ' \
        'htanh' in result.stdout
    log = read_log(whole)
    assert log[-1]['validation/main/accuracy'] > 0.5  # chance is 0.1
    # Killed right after its first snapshot, and resumed from it.
    killed = subprocess.run(
        [sys.executable, os.path.join(helpers.SCRIPTS, 'fault_runner.py'),
         '--kill-after-snapshot', '1', '--', 'train_mnist.py',
         '--dataset-dir', data, '--epoch', '2', '--seed', '3', '--out',
         part] + CONV, capture_output=True, text=True,
        env=helpers.SCRIPT_ENV)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_ok('--dataset-dir', data, '--epoch', 2, '--out', part, '--resume',
           os.path.join(part, 'snapshot_iter_36'), *CONV)
    assert_same_run(part, whole)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
def test_one_epoch_of_a_quarter_convnet_on_real_mnist(tmp_path):
    out = str(tmp_path / 'conv')
    run_ok('--preset', 'bnn-conv', '--width', '0.25', '--epoch', 1,
           '--seed', 1, '--noplot', '--out', out)
    assert read_log(out)[0]['validation/main/accuracy'] >= 0.93
