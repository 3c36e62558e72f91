"""plot_error.py as a user runs it: the figure and the reported epoch, and
one-line errors on bad input."""
import json
import os

import pytest

from helpers import assert_one_line_error, run_script
from helpers import LOG

pytest.importorskip('matplotlib')


@pytest.fixture
def result(tmp_path):
    with open(str(tmp_path / 'log'), 'w') as f:
        json.dump(LOG, f)
    return tmp_path


def test_writes_the_figure_and_names_the_reported_epoch(result):
    done = run_script('plot_error.py', result, '--line', '1.40', 'paper')
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        'wrote {}: 4 epochs'.format(os.path.join(str(result), 'error.png')),
        'best validation error 3.00% at epoch 2; test error there 3.50%']
    with open(str(result / 'error.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_other_formats_by_suffix(result, tmp_path):
    out = str(tmp_path / 'error.svg')
    assert run_script('plot_error.py', result, '-o', out).returncode == 0
    with open(out) as f:
        assert '<svg' in f.read(1000)


@pytest.mark.parametrize('log,fragment', [
    (None, 'cannot read the log of'),
    ('{"epoch": ', 'is not a LogReport log'),
    ('[{"epoch": 1, "main/loss": 1.0}]', 'the log has no accuracy to plot')])
def test_bad_logs_get_one_line(tmp_path, log, fragment):
    if log is not None:
        with open(str(tmp_path / 'log'), 'w') as f:
            f.write(log)
    assert_one_line_error(run_script('plot_error.py', tmp_path),
                          'plot_error.py: error: ', fragment)
    assert not os.path.exists(str(tmp_path / 'error.png'))


@pytest.mark.parametrize('flags,fragment,code', [
    (['--line', 'low', 'paper'], '--line takes an error in % and a label', 2),
    (['--line', '0', 'paper'], '--line errors must be in (0, 100] %', 2),
    (['-o', 'missing/error.png'], 'its directory does not exist', 1),
    (['-o', 'error.docx'], 'cannot write error.docx', 1)])
def test_bad_flags_get_one_line(result, flags, fragment, code):
    assert_one_line_error(
        run_script('plot_error.py', result, *flags, cwd=str(result)),
        fragment, code=code)
    assert sorted(os.listdir(str(result))) == ['log']
