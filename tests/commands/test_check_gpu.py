"""check_gpu.sh stops at once, in one line, where CuPy sees no GPU."""
import os
import subprocess
import sys

import pytest

import helpers


@pytest.mark.skipif(helpers.gpu_available(),
                    reason='a GPU is here: check_gpu.sh would run it all')
def test_without_a_gpu_it_stops_in_one_line(tmp_path):
    results = tmp_path / 'results'
    env = dict(os.environ, PYTHON=sys.executable, RESULTS=str(results))
    result = subprocess.run(
        ['bash', os.path.join(helpers.ROOT, 'check_gpu.sh')],
        capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ''
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('check_gpu.sh: CuPy sees no GPU (')
    assert lines[0].endswith('run it on a machine with a CUDA GPU and CuPy.')
    assert not results.exists()
