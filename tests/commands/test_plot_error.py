"""plot_error.py as a user runs it: the figure and the reported epoch, and
one-line errors. (Bad logs and figures, in process:
tests/unit/training/test_error_curves.py.)"""
import json
import os

import pytest

from helpers import LOG, assert_one_line_error, run_script

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
        'test error 3.50% at epoch 2 (best validation); validation error '
        'there 3.00%']
    with open(str(result / 'error.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('flags,fragment,code', [
    (['--line', 'low', 'paper'], '--line takes an error in % and a label', 2),
    (['-o', 'error.docx'], 'cannot write error.docx: matplotlib writes no '
     '.docx figure; give a file name ending in one of ', 1)])
def test_bad_flags_get_one_line(result, flags, fragment, code):
    assert_one_line_error(
        run_script('plot_error.py', result, *flags, cwd=str(result)),
        fragment, code=code)
    assert sorted(os.listdir(str(result))) == ['log']
