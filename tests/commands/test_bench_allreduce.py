"""bench_allreduce.py under ``mpiexec -n 2``: the table a user sees. What
the numbers mean is tested in tests/unit/benchmarks."""
import os
import subprocess
import sys

import pytest

import helpers


@pytest.mark.mpi
@pytest.mark.skipif(helpers.mpi_missing() is not None,
                    reason=str(helpers.mpi_missing()))
def test_table():
    result = subprocess.run(
        [helpers.MPIEXEC, '-n', '2', sys.executable,
         os.path.join(helpers.ROOT, 'bench_allreduce.py'), '--rounds', '1'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ('Gradient all-reduce, 2 processes, naive '
                        'communicator; median of 1 rounds')
    rows = [[cell.strip() for cell in line.strip('|').split('|')]
            for line in lines if line.startswith('|')]
    assert rows[0] == ['network', 'bytes', 'all-reduce ms', 'GB/s',
                       'x memory copy']
    # The bytes of the seed and bnn networks' parameters.
    assert [row[:2] for row in rows[2:]] == [
        ['seed, 2 x 1000', '7200120'], ['bnn, 3 x 4096', '147374200']]


def test_bad_flags():
    helpers.assert_one_line_error(
        helpers.run_script('bench_allreduce.py', '--rounds', 0),
        'must be at least 1', code=2)
