"""sweep.py on a tiny grid: results, table, figure, and resuming."""
import csv
import json
import os
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.training import result_dir


def run(*args):
    return helpers.run_script('sweep.py', *args)


def test_two_cells_then_resume(tmp_path):
    data = str(tmp_path / 'data')
    helpers.write_subset(data, 600, 200)
    out = str(tmp_path / 'sweep')
    flags = ['--out', out, '--weight-bits', '1', '--act-bits', '2,none',
             '--epoch', 1, '--unit', 64, '--dataset-dir', data]
    result = run(*flags)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('training weights') == 2
    with open(os.path.join(out, 'results.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [(r['weight_quant'], r['act_quant'], r['grad_quant'])
            for r in rows] == [('linear:1', 'linear:2', 'none'),
                               ('linear:1', 'none', 'none')]
    for row in rows:
        assert 0 <= float(row['test_error']) < 90  # chance is 90%
        assert row['epoch'] == '1' and row['unit'] == '64'
    with open(os.path.join(out, 'results.md')) as f:
        table = f.read()
    assert '| weights \\ activations | 2 | none |' in table
    assert '| 1 | {:.2f} | {:.2f} |'.format(
        float(rows[0]['test_error']), float(rows[1]['test_error'])) in table
    with open(os.path.join(out, 'results.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # A second run trains nothing and writes the same results.
    again = run(*flags)
    assert again.returncode == 0, again.stderr
    assert 'training weights' not in again.stdout
    assert again.stdout.count('(done before)') == 2
    with open(os.path.join(out, 'results.csv')) as f:
        assert list(csv.DictReader(f)) == rows
    # Cells trained with another configuration are not passed off as
    # these: the sweep stops, or with --retrain trains them again.
    other = [flag if flag != 64 else 32 for flag in flags]
    assert_one_line_error(run(*other), 'w1_a2 was trained with another '
                          'configuration (unit differ); give --retrain')
    again = run(*(other + ['--retrain', '--act-bits', '2']))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('training weights') == 1
    assert result_dir.read_args(os.path.join(
        out, 'cells', 'w1_a2'))['config']['unit'] == 32


def test_cells_get_every_configuration_flag(tmp_path):
    data = str(tmp_path / 'data')
    helpers.write_subset(data, 300, 100)
    out = str(tmp_path / 'sweep')
    result = run('--out', out, '--bits', '2', '--epoch', 1, '--unit', 16,
                 '--layers', 1, '--lr', '0.002', '--batchsize', 30,
                 '--grad-quant', 'log:6', '--dataset-dir', data)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(out, 'cells', 'w2_a2',
                           result_dir.ARGS_FILE)) as f:
        config = json.load(f)['config']
    assert {key: config[key] for key in (
        'preset', 'weight_quant', 'act_quant', 'grad_quant', 'activation',
        'unit', 'layers', 'epoch', 'lr', 'batchsize')} == {
            'preset': 'float', 'weight_quant': 'linear:2',
            'act_quant': 'linear:2', 'grad_quant': 'log:6',
            'activation': 'htanh', 'unit': 16, 'layers': 1, 'epoch': 1,
            'lr': 0.002, 'batchsize': 30}


def test_bad_arguments():
    assert_one_line_error(run('--bits', '0,2'),
                          'expected bit widths from 1 to 16 or "none"',
                          code=2)
    assert_one_line_error(run('--grad-quant', 'log:1'), 'Valid forms',
                          code=2)
    assert_one_line_error(run('--weight-quant', 'sign'),
                          'unrecognized arguments: --weight-quant', code=2)


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
    with open(os.path.join(out, 'results.csv')) as f:
        rows = list(csv.DictReader(f))
    assert [(r['weight_quant'], r['act_quant']) for r in rows] == [
        ('linear:1', 'linear:2'), ('linear:1', 'none'),
        ('linear:2', 'linear:2'), ('linear:2', 'none')]
    # The same cells as one process trains: the sweep reuses all four.
    again = run(*flags)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count('(done before)') == 4
    with open(os.path.join(out, 'results.csv')) as f:
        assert list(csv.DictReader(f)) == rows
