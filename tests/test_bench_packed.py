"""bench_packed.py: the table it prints, on a small packed network."""
import os
import subprocess
import sys

import conftest
from conftest import ROOT
import export
import packed_format

SCRIPT = os.path.join(ROOT, 'bench_packed.py')


def test_table(tmp_path, synthetic_dir):
    network = export.export(*conftest.binarized_model(units=64))
    path = str(tmp_path / 'small.npz')
    packed_format.save(path, network)
    result = subprocess.run(
        [sys.executable, SCRIPT, path, '--batches', '1', '7', '--seconds',
         '0.01', '--dataset-dir', synthetic_dir],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line.strip('|').split('|') for line in result.stdout.splitlines()
            if line.startswith('| 1 ') or line.startswith('| 7 ')]
    rows = [[cell.strip() for cell in row] for row in rows]
    engines = ['packed', 'blas', 'chainer, binarized', 'chainer, float']
    assert [(r[0], r[1]) for r in rows] == [
        (b, e) for b in ('1', '7') for e in engines]
    for row in rows:
        assert float(row[2]) > 0
    packed = [r for r in rows if r[1] == 'packed'][0]
    blas = [r for r in rows if r[1] == 'blas'][0]
    assert blas[3] == '1.00'
    assert int(packed[4]) == network.weight_bytes() == 8 * (
        64 * 13 + 64 * 1 + 10 * 1)
    assert int(blas[4]) == 4 * (784 * 64 + 64 * 64 + 64 * 10)
