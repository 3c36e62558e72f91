"""bench_allreduce.py under ``mpiexec -n 2``: the table it prints."""
import os
import subprocess
import sys

import pytest

import helpers
from quantized_net.training import presets


@pytest.mark.skipif(helpers.mpi_missing() is not None,
                    reason=str(helpers.mpi_missing()))
def test_table():
    result = subprocess.run(
        [helpers.MPIEXEC, '-n', '2', sys.executable,
         os.path.join(helpers.ROOT, 'bench_allreduce.py'), '--rounds', '2'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'Gradient all-reduce, 2 processes, naive communicator' in \
        result.stdout
    rows = [[cell.strip() for cell in line.strip('|').split('|')]
            for line in result.stdout.splitlines()
            if line.startswith('| seed') or line.startswith('| bnn')]
    sizes = [sum(p.array.nbytes for p in presets.build_classifier(
        dict(presets.PRESETS[name], preset=name)).params())
        for name in ('seed', 'bnn')]
    assert [(row[0], int(row[1])) for row in rows] == [
        ('seed, 2 x 1000', sizes[0]), ('bnn, 3 x 4096', sizes[1])]
    assert sizes == [7200120, 147374200]
    for name, size, ms, rate, _ in rows:
        # The rate column is the bytes over the time column.
        assert float(rate) == pytest.approx(
            int(size) / float(ms) / 1e6, rel=0.02, abs=0.006)
