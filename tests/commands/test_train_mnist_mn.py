"""train_mnist_mn.py and multi_node.py under ``mpiexec -n 2``: the ranks
agree, N ranks at B/N compute one process's run at B, resume is exact, a
failing rank ends the job, an error is said once. Skipped where MPI is not
installed."""
import json
import os
import subprocess
import sys
import time

import numpy
import pytest

import helpers
from helpers import assert_one_line_error, assert_same_run
from quantized_net.training import result_dir

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(helpers.mpi_missing() is not None,
                                 reason=str(helpers.mpi_missing()))]
RUNNER = os.path.join(helpers.SCRIPTS, 'fault_runner.py')
FAST = ['--unit', '24', '--batchsize', '50', '--noplot']


def mpirun(n, *command, timeout=300):
    return subprocess.run(
        [helpers.MPIEXEC, '-n', str(n), sys.executable] +
        [str(c) for c in command],
        capture_output=True, text=True, timeout=timeout,
        env=helpers.SCRIPT_ENV)


def train(n, data, out, *flags, fault=()):
    return mpirun(n, RUNNER, *fault, '--', 'train_mnist_mn.py',
                  '--dataset-dir', data, '--out', out, *FAST, *flags)


def assert_ours_is_one_line(result, *fragments, code=1):
    """As helpers.assert_one_line_error, MPI's own notice of the abort
    (``Abort(1) on node 0 ...``) aside."""
    result.stderr = '\n'.join(line for line in result.stderr.splitlines()
                              if not line.startswith('Abort('))
    return assert_one_line_error(result, *fragments, code=code)


def train_ok(n, data, out, *flags, fault=()):
    result = train(n, data, out, *flags, fault=fault)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope='module')
def data(tiny_data):
    return tiny_data


def parity(preset, iterations):
    result = mpirun(2, os.path.join(helpers.SCRIPTS, 'mn_parity.py'),
                    preset, iterations)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report['same_on_every_rank']
    # Each rank's sums over its half of the batch, totalled: the one
    # process's statistics over the whole batch (all three layers).
    assert len(report['statistics_differences']) == 6
    assert max(report['statistics_differences']) <= 1e-5
    # The biases before batch normalisation have a true gradient of 0:
    # what is left of them is rounding.
    return ({name: value for name, value in report[key].items()
             if not name.endswith('/b')}
            for key in ('differences', 'grad_differences'))


def test_two_ranks_compute_one_process_at_the_global_batch():
    # seed: the quantizers snap the rounding of the sums away.
    params, grads = parity('seed', 2)
    assert max(params.values()) <= 1e-6
    # float: the gradients agree to float32 rounding (the sums are taken
    # in another order); Adam's first steps, g / (|g| + eps), magnify that
    # for the few weights whose gradient is near 0 (6 of 25088 in the
    # first layer), to about 2e-6.
    _, grads = parity('float', 1)
    assert max(grads.values()) <= 1e-6
    params, _ = parity('float', 3)
    assert max(params.values()) <= 5e-6


@pytest.fixture(scope='module')
def whole(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('whole')
    out, params = str(tmp / 'run'), str(tmp / 'params')
    result = train_ok(2, data, out, '--epoch', 3, '--seed', 3,
                      fault=['--save-params', params])
    return out, params, result


def test_every_rank_ends_with_the_same_parameters(whole):
    out, params, result = whole
    ranks = [numpy.load(os.path.join(params, 'rank{}.npz'.format(r)))
             for r in (0, 1)]
    assert sorted(ranks[0].files) == sorted(ranks[1].files)
    for name in ranks[0].files:
        numpy.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    # Rank 0 alone printed the table and wrote the files, those of a
    # single-process run.
    assert result.stdout.count('validation/main/accuracy') == 1
    assert '# processes: 2' in result.stdout
    assert sorted(os.listdir(out)) == [
        'args.json', 'cg.dot', 'log', 'model.npz', 'snapshot_iter_36']
    assert result_dir.read_args(out)['processes'] == 2


def test_the_results_read_as_a_single_process_run(data, whole):
    out, _, _ = whole
    logged = result_dir.read_log(out)[-1]
    result = helpers.run_script('evaluate.py', out, '--dataset-dir', data)
    assert result.returncode == 0, result.stderr
    line = next(text for text in result.stdout.splitlines()
                if text.startswith('test accuracy:'))
    # The ranks evaluated 100 test images each; the mean is the whole's.
    assert float(line.split()[2]) == pytest.approx(
        logged['validation/main/accuracy'], abs=5e-5)


@pytest.mark.slow
def test_killed_and_resumed_is_the_uninterrupted_run(data, whole, tmp_path):
    reference, _, _ = whole
    out = str(tmp_path / 'run')
    killed = train(2, data, out, '--epoch', 3, '--seed', 3,
                   fault=['--kill-at', 17])
    assert killed.returncode != 0
    assert result_dir.MODEL_FILE not in os.listdir(out)
    snapshot = os.path.join(out, result_dir.snapshot_name(12))
    assert [name for _, name in result_dir.snapshots(out)] == [
        os.path.basename(snapshot)]
    train_ok(2, data, out, '--epoch', 3, '--seed', 3, '--resume', snapshot)
    assert_same_run(out, reference)
    # A damaged snapshot: one line, from one rank.
    damaged = str(tmp_path / 'snapshot_iter_36')
    with open(os.path.join(out, result_dir.snapshot_name(36)), 'rb') as f:
        content = f.read()
    with open(damaged, 'wb') as f:
        f.write(content[:len(content) // 2])
    assert_ours_is_one_line(
        train(2, data, str(tmp_path / 'two'), '--epoch', 3, '--resume',
              damaged), 'cannot resume: ', 'empty, damaged, or not an .npz')
    # Another number of processes cannot continue it.
    assert_ours_is_one_line(
        train(1, data, str(tmp_path / 'one'), '--epoch', 3, '--resume',
              os.path.join(out, result_dir.snapshot_name(36))),
        'was written by 2 processes; run it with mpiexec -n 2')


def test_a_failing_rank_ends_the_job_at_once(data, tmp_path):
    start = time.monotonic()
    result = train(2, data, str(tmp_path / 'run'), '--epoch', 50,
                   fault=['--raise-at', 3, 1])
    assert time.monotonic() - start < 60
    assert result.returncode != 0
    ours = [line for line in result.stderr.splitlines()
            if line.startswith('train_mnist_mn.py:')]
    assert ours == ['train_mnist_mn.py: error: injected failure in rank 1']


def test_bad_flags_are_said_once(data, tmp_path):
    result = train(2, data, str(tmp_path / 'run'), '--batchsize', 51)
    assert_ours_is_one_line(result, '--batchsize 51 does not split evenly '
                            'over 2 processes')
    result = mpirun(2, os.path.join(helpers.ROOT, 'train_mnist_mn.py'),
                    '--epoch', 0)
    assert result.returncode == 2
    assert result.stderr.count('must be at least 1') == 1


def test_communicators_copy_one_parameter_at_a_time():
    # chainermn's batched copy compiles a kernel that CuPy 14 cannot build
    # (multi_node.create_communicator); per-parameter copies need none.
    code = ('from quantized_net.training import multi_node; '
            'print(multi_node.create_communicator('
            '"naive").get_config("batched_copy"))')
    result = mpirun(1, '-c', code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False']


def test_a_snapshot_of_ranks_records_its_run_and_is_checked(data, whole,
                                                            tmp_path):
    out, _, _ = whole
    with numpy.load(os.path.join(out, result_dir.snapshot_name(36)),
                    allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert (int(arrays['run/seed']), int(arrays['processes'])) == (3, 2)
    # A value of rank 1's own state, tampered: rank 1 says so, once.
    key = 'updater/iterator:main/order'
    order = arrays['ranks/1/' + key].copy()
    order[0] = 10 ** 6
    arrays['ranks/1/' + key] = order
    tampered = str(tmp_path / result_dir.snapshot_name(36))
    with open(tampered, 'wb') as f:
        numpy.savez(f, **arrays)
    result = train(2, data, str(tmp_path / 'two'), '--epoch', 4, '--seed', 3,
                   '--resume', tampered)
    assert_ours_is_one_line(
        result, 'cannot resume from {}: it was damaged or altered ({} is not '
        'a permutation of range(300))'.format(tampered, key))
    assert not os.path.exists(str(tmp_path / 'two'))


def test_two_ranks_train_a_convnet(data, tmp_path):
    out, params = str(tmp_path / 'conv'), str(tmp_path / 'params')
    result = train_ok(2, data, out, '--preset', 'bnn-conv', '--width',
                      '0.125', '--validation', '100', '--epoch', '1',
                      '--seed', '2', fault=['--save-params', params])
    assert '# layers: 64C3-64C3-P2-128C3-128C3-P2-512FC x 0.125 wide' in \
        result.stdout
    assert [entry['epoch'] for entry in result_dir.read_log(out)] == [1]
    # The ranks' filters, summed gradients and batch statistics agree.
    ranks = [numpy.load(os.path.join(params, 'rank{}.npz'.format(r)))
             for r in (0, 1)]
    assert any(name.endswith('l1/W') and ranks[0][name].ndim == 4
               for name in ranks[0].files)
    for name in ranks[0].files:
        numpy.testing.assert_array_equal(ranks[0][name], ranks[1][name])
    assert os.path.isfile(os.path.join(out, result_dir.MODEL_FILE))
