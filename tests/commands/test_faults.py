"""Faults injected into real runs of the commands: kills at any point and
exact resume, kills while a snapshot is written, signals, two runs into one
directory, pickles planted under every name a command reads, a loss that
turns NaN. Tiny networks on a generated data set. (The rules behind them,
in process: tests/unit/training's test_claim.py, test_safe_npz.py,
test_saved_model.py, test_snapshot.py and test_session.py.)"""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy
import pytest

import helpers
from helpers import assert_one_line_error, assert_same_run
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.training import result_dir
from quantized_net.training import saved_model

RUNNER = os.path.join(helpers.SCRIPTS, 'fault_runner.py')
# 600 training images in batches of 50: 12 iterations an epoch.
FAST = ['--unit', '24', '--layers', '2', '--batchsize', '50', '--noplot']


@pytest.fixture(scope='module')
def data(tiny_data):
    return tiny_data


def train(data, out, *flags, fault=()):
    command = [sys.executable, RUNNER] + [str(f) for f in fault] + [
        '--', 'train_mnist.py', '--dataset-dir', data, '--out', out] + \
        FAST + [str(f) for f in flags]
    return subprocess.run(command, capture_output=True, text=True,
                          env=helpers.SCRIPT_ENV)


def train_ok(data, out, *flags, fault=()):
    result = train(data, out, *flags, fault=fault)
    assert result.returncode == 0, result.stderr
    return result


def killed(result):
    assert result.returncode == -signal.SIGKILL, result.stderr


def latest_snapshot(out):
    return os.path.join(out, result_dir.snapshots(out)[-1][1])


def no_temporaries(out):
    return [name for name in os.listdir(out) if '.part' in name
            or name.startswith('tmp')] == []


# The runs every kill is compared with: 3 epochs, uninterrupted.
RUNS = {
    'seed': ['--epoch', 3, '--seed', 3],
    'every 2 epochs': ['--epoch', 4, '--seed', 4, '--frequency', 2],
    'bnn, stochastic': ['--epoch', 3, '--seed', 5, '--preset', 'bnn',
                        '--weight-quant', 'stochastic', '--validation', 100],
}


@pytest.fixture(scope='module')
def references(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('references')
    outs = {}
    for name, flags in RUNS.items():
        outs[name] = str(tmp / name.replace(' ', '_').replace(',', ''))
        train_ok(data, outs[name], *flags)
    return outs


@pytest.mark.parametrize('name,fault', [
    ('seed', ['--kill-at', 17]),               # mid-epoch 2
    ('seed', ['--kill-after-snapshot', 1]),    # right after a snapshot
    ('seed', ['--kill-at', 24]),               # the update ending epoch 2
    ('every 2 epochs', ['--kill-at', 40]),     # epoch 4, snapshot at 2
    ('bnn, stochastic', ['--kill-at', 30]),    # dropout, stochastic signs
])
def test_killed_and_resumed_is_the_uninterrupted_run(
        data, references, tmp_path, name, fault):
    out = str(tmp_path / 'run')
    killed(train(data, out, *RUNS[name], fault=fault))
    assert result_dir.MODEL_FILE not in os.listdir(out)
    train_ok(data, out, *RUNS[name], '--resume', latest_snapshot(out))
    assert_same_run(out, references[name])
    assert no_temporaries(out)


def test_a_run_without_seed_resumed_is_the_same_run(data, tmp_path):
    out, kept = str(tmp_path / 'whole'), str(tmp_path / 'kept')
    flags = ['--epoch', 3, '--preset', 'bnn', '--validation', 100]
    train_ok(data, out, *flags, fault=['--keep-snapshots', kept])
    for iteration in (10, 20):  # 500 training images, 10 iterations
        again = str(tmp_path / 'from{}'.format(iteration))
        train_ok(data, again, *flags, '--resume', os.path.join(
            kept, result_dir.snapshot_name(iteration)))
        # Resumed into another directory, the run writes model_best.npz
        # from its next best epoch on: the earlier one stays in out.
        assert_same_run(again, out, best=False)


def test_best_model_is_the_best_validation_epoch(data, tmp_path):
    out, kept = str(tmp_path / 'run'), str(tmp_path / 'kept')
    train_ok(data, out, '--epoch', 5, '--preset', 'bnn', '--validation',
             100, '--seed', 2, fault=['--keep-snapshots', kept])
    accuracies = [entry['validation/main/accuracy']
                  for entry in result_dir.read_log(out)]
    best = accuracies.index(max(accuracies)) + 1
    assert best < len(accuracies)  # else model.npz would be the best too
    snapshot = numpy.load(os.path.join(
        kept, result_dir.snapshot_name(10 * best)))
    arrays = helpers.model_arrays(out, result_dir.BEST_MODEL_FILE)
    assert arrays
    for name, array in arrays.items():
        numpy.testing.assert_array_equal(
            array, snapshot['updater/model:main/' + name], name)


@pytest.mark.parametrize('limit', [0, 1000, 20000, -1])
def test_kill_while_a_snapshot_is_written(data, references, tmp_path,
                                          limit):
    out = str(tmp_path / 'run')
    result = train(data, out, *RUNS['seed'],
                   fault=['--kill-in-snapshot', 2, limit])
    killed(result)
    # The first snapshot is whole and loads; the second was never named.
    assert [name for _, name in result_dir.snapshots(out)] == [
        result_dir.snapshot_name(12)]
    train_ok(data, out, *RUNS['seed'], '--resume', latest_snapshot(out))
    assert_same_run(out, references['seed'])
    assert no_temporaries(out)


@pytest.mark.parametrize('signal_name,status,word', [
    ('INT', 130, 'interrupted'), ('TERM', 143, 'terminated')])
def test_signals_end_with_one_line_naming_the_snapshot(
        data, references, tmp_path, signal_name, status, word):
    out = str(tmp_path / 'run')
    result = train(data, out, *RUNS['seed'],
                   fault=['--signal-at', 20, signal_name])
    snapshot = os.path.join(out, result_dir.snapshot_name(12))
    assert result.returncode == status, result.stderr
    assert result.stderr.strip().splitlines()[-1] == \
        'train_mnist.py: {}; resume with --resume {}'.format(word, snapshot)
    assert no_temporaries(out)
    assert result_dir.LOCK_FILE not in os.listdir(out)
    train_ok(data, out, *RUNS['seed'], '--resume', snapshot)
    assert_same_run(out, references['seed'])


def test_one_run_per_directory(data, tmp_path):
    out = str(tmp_path / 'run')
    first = subprocess.Popen(
        [sys.executable, RUNNER, '--pause-at', '2', '--', 'train_mnist.py',
         '--dataset-dir', data, '--out', out] + FAST,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=helpers.SCRIPT_ENV)
    try:
        for _ in range(300):
            if os.path.exists(os.path.join(out, result_dir.ARGS_FILE)):
                break
            time.sleep(0.1)
        second = train(data, out, '--epoch', 1)
        assert_one_line_error(second, '{} is in use by another run '
                              '(process {})'.format(out, first.pid))
        assert result_dir.read_args(out)['argv'][-1] == '--noplot'
    finally:
        first.kill()
        first.wait()
    # The kernel released the lock with the process; the files stay.
    refused = train(data, out, '--epoch', 1)
    assert_one_line_error(refused, 'holds the results of another run',
                          'give --replace')
    train_ok(data, out, '--epoch', 1, '--replace')


class Planted(object):
    """Unpickling this creates a file: proof that the pickle was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def plant(path, evidence):
    with open(path, 'wb') as f:
        pickle.dump(Planted(evidence), f)


@pytest.fixture(scope='module')
def bnn_result(tmp_path_factory):
    """A result directory of a binarized network, as a run leaves it."""
    return helpers.write_result(str(tmp_path_factory.mktemp('bnn') / 'run'),
                                *helpers.binarized_model(units=24))


def test_no_pickle_is_ever_loaded(data, bnn_result, tmp_path):
    evidence = str(tmp_path / 'the_pickle_ran')
    planted = str(tmp_path / 'planted')
    os.mkdir(planted)
    with open(os.path.join(bnn_result, result_dir.ARGS_FILE)) as f:
        args = f.read()
    with open(os.path.join(planted, result_dir.ARGS_FILE), 'w') as f:
        f.write(args)
    plant(os.path.join(planted, result_dir.MODEL_FILE), evidence)
    snapshot = str(tmp_path / 'snapshot_iter_12')
    plant(snapshot, evidence)
    packed = str(tmp_path / 'model.packed.npz')
    packed_format.save(packed, packed_export.export(
        *saved_model.load_model(bnn_result)))
    fake_packed = str(tmp_path / 'fake.packed.npz')
    plant(fake_packed, evidence)
    runs = [
        ('evaluate.py', [planted, '--dataset-dir', data]),
        ('export.py', [planted, '-o', str(tmp_path / 'x.npz')]),
        ('infer_packed.py', [packed, '--compare', planted,
                             '--dataset-dir', data]),
        ('infer_packed.py', [fake_packed, '--dataset-dir', data]),
        ('train_mnist.py', ['--dataset-dir', data, '--out',
                            str(tmp_path / 'resumed'), '--resume', snapshot,
                            '--epoch', 2, '--preset', 'bnn',
                            '--validation', 100] + FAST),
    ]
    for script, flags in runs:
        line = assert_one_line_error(helpers.run_script(script, *flags))
        if script == 'infer_packed.py' and flags[0] == fake_packed:
            assert 'is not a packed network (not an .npz archive' in line
        else:
            assert 'is not an archive of arrays (it holds pickled data, ' \
                'which could run any code); it was not loaded.' in line
        assert not os.path.exists(evidence), script


def test_a_nan_loss_keeps_the_last_good_snapshot(data, tmp_path):
    out = str(tmp_path / 'out')
    result = train(data, out, *RUNS['seed'], fault=['--poison-at', 15])
    snapshot = os.path.join(out, result_dir.snapshot_name(12))
    assert_one_line_error(result, 'the training loss is nan at iteration '
                          '16; training stopped. The last good snapshot is '
                          '{}.'.format(snapshot))
    assert [name for _, name in result_dir.snapshots(out)] == [
        os.path.basename(snapshot)]
    with numpy.load(snapshot, allow_pickle=False) as archive:
        weights = archive['updater/model:main/predictor/l1/W']
    assert numpy.isfinite(weights).all()
