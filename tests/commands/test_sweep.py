"""sweep.py as a user runs it, on a tiny grid: every cell trained by
train_mnist.py, the results, a second run that reuses the cells, --retrain,
and the cells spread over MPI processes. (The grid, the cells' states and
commands, the tables, in process: tests/unit/training/test_sweep.py and
test_sweep_results.py.)"""
import csv
import os
import subprocess
import sys

import pytest

import helpers
from quantized_net.training import result_dir


def run(*args):
    return helpers.run_script('sweep.py', *args)


def results(out):
    with open(os.path.join(out, 'results.csv')) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_two_cells_then_reuse_and_retrain(tmp_path):
    data = str(tmp_path / 'data')
    helpers.write_subset(data, 600, 200)
    out = str(tmp_path / 'sweep')
    flags = ['--out', out, '--weight-bits', '1', '--act-bits', '2,none',
             '--epoch', 1, '--unit', 32, '--dataset-dir', data]
    result = run(*flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('training weights') == 2
    rows = results(out)
    assert [(r['weight_quant'], r['act_quant'], r['grad_quant'],
             r['reported_epoch'], r['chosen_by']) for r in rows] == [
        ('linear:1', 'linear:2', 'none', '1', 'last'),
        ('linear:1', 'none', 'none', '1', 'last')]
    for row in rows:
        assert 0 <= float(row['test_error']) < 90  # chance is 90%
        assert row['epoch'] == '1' and row['unit'] == '32'
    assert 'linear:2: test error {:.2f}% at epoch 1 (last)'.format(
        float(rows[0]['test_error'])) in result.stdout
    with open(os.path.join(out, 'results.md')) as f:
        table = f.read()
    assert table.startswith('Test error (%) at epoch 1 (last), 2 x 32 units')
    assert '| 1 | {:.2f} | {:.2f} |'.format(
        float(rows[0]['test_error']), float(rows[1]['test_error'])) in table
    with open(os.path.join(out, 'results.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # A second run trains nothing and writes the same results.
    again = run(*flags)
    assert again.returncode == 0, again.stderr
    assert 'training weights' not in again.stdout
    assert again.stdout.count('(done before)') == 2
    assert results(out) == rows
    # Cells of another configuration are trained again with --retrain.
    other = [flag if flag != 32 else 16 for flag in flags]
    again = run(*(other + ['--retrain', '--act-bits', '2']))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('training weights') == 1
    assert result_dir.read_args(os.path.join(
        out, 'cells', 'w1_a2'))['config']['unit'] == 16


@pytest.mark.mpi
@pytest.mark.skipif(helpers.mpi_missing() is not None,
                    reason=str(helpers.mpi_missing()))
def test_cells_spread_over_mpi_processes(tmp_path):
    data = str(tmp_path / 'data')
    helpers.write_subset(data, 300, 100)
    out = str(tmp_path / 'sweep')
    flags = ['--out', out, '--weight-bits', '1,2', '--act-bits', '2,none',
             '--epoch', 1, '--unit', 16, '--dataset-dir', data]
    result = subprocess.run(
        [helpers.MPIEXEC, '-n', '2', sys.executable,
         os.path.join(helpers.ROOT, 'sweep.py')] + [str(f) for f in flags],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('training weights') == 4
    rows = results(out)
    assert [(r['weight_quant'], r['act_quant']) for r in rows] == [
        ('linear:1', 'linear:2'), ('linear:1', 'none'),
        ('linear:2', 'linear:2'), ('linear:2', 'none')]
    # The same cells as one process trains: the sweep reuses all four.
    again = run(*flags)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('(done before)') == 4
    assert results(out) == rows
