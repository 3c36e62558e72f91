"""sweep.py on a tiny grid: results, table, figure, and resuming."""
import csv
import os
import subprocess
import sys

import conftest
from conftest import ROOT

SCRIPT = os.path.join(ROOT, 'sweep.py')


def run(*args):
    return subprocess.run([sys.executable, SCRIPT] + [str(a) for a in args],
                          capture_output=True, text=True)


def test_two_cells_then_resume(tmp_path):
    data = str(tmp_path / 'data')
    conftest.write_subset(data, 600, 200)
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


def test_bad_arguments():
    result = run('--bits', '0,2')
    assert result.returncode == 2
    assert 'expected bit widths from 1 to 16 or "none"' in result.stderr
    result = run('--grad-quant', 'log:1')
    assert result.returncode == 2 and 'Valid forms' in result.stderr
