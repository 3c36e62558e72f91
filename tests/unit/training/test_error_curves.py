"""error_curves.py: the series from a log, the figure written whole with
the reported epoch marked, plot_error.py's work and its one-line errors."""
import errno
import json
import os
import re

import pytest

from helpers import LOG
from quantized_net.training import error_curves
from quantized_net.training import reported
from quantized_net import errors


def test_series_are_errors_in_percent_per_epoch():
    series = error_curves.error_series(LOG)
    assert [name for name, _, _ in series] == [
        'training', 'validation', 'test']
    _, epochs, values = series[0]
    assert epochs == [1, 2, 3, 4]
    assert values == pytest.approx([10, 8, 7, 6])
    _, epochs, values = series[2]
    assert epochs == [1, 2, 3]
    assert values == pytest.approx([4, 3.5, 2])


def test_a_log_without_validation_or_test_has_one_series():
    series = error_curves.error_series([{'epoch': 1, 'main/accuracy': 0.5}])
    assert [(name, values) for name, _, values in series] == [
        ('training', pytest.approx([50]))]


@pytest.mark.parametrize('log,message', [
    ({'epoch': 1}, 'not a list of LogReport entries'),
    ([1, 2], 'not a list of LogReport entries'),
    ([{'epoch': 1, 'main/loss': 0.3}], 'no accuracy to plot'),
    ([], 'no accuracy to plot')])
def test_logs_without_curves_are_refused(log, message):
    with pytest.raises(errors.UsageError, match=message):
        error_curves.error_series(log)


def test_the_figure_is_written_whole(tmp_path):
    image = pytest.importorskip('matplotlib.image')
    path = str(tmp_path / 'error.png')
    error_curves.draw(error_curves.error_series(LOG), path,
                      lines=[(1.4, 'paper')],
                      reported=reported.reported(LOG), title='run')
    assert image.imread(path).shape == (450, 700, 4)
    assert os.listdir(str(tmp_path)) == ['error.png']  # no temporary left


@pytest.fixture
def result(tmp_path):
    with open(str(tmp_path / 'log'), 'w') as f:
        json.dump(LOG, f)
    return str(tmp_path)


def test_plot_run_names_the_reported_epoch(result, capsys):
    pytest.importorskip('matplotlib')
    out = os.path.join(result, 'figure.svg')
    error_curves.plot_run(result, out, [(1.4, 'paper')])
    assert capsys.readouterr().out.splitlines() == [
        'wrote {}: 4 epochs'.format(out),
        'test error 3.50% at epoch 2 (best validation); validation error '
        'there 3.00%']
    with open(out) as f:
        assert '<svg' in f.read(1000)


@pytest.mark.parametrize('log,fragment', [
    (None, '/log does not exist.'),
    ('{"epoch": ', 'log is not a LogReport log: Expecting'),
    ('{}', 'log is not a LogReport log: it holds an object, not a list'),
    ('[1, 2]', 'log is not a LogReport log: entry 1 is a number'),
    ('[' * 1000 + ']' * 1000, 'its JSON nests 1000 deep'),
    ('[{"epoch": 1, "main/loss": 1.0}]', 'the log has no accuracy to plot'),
    # Values of the wrong type are no accuracy either.
    ('[{"epoch": "1", "main/accuracy": 0.9}, {"epoch": 2, "main/accuracy":'
     ' "0.9"}, {"epoch": true, "main/accuracy": 0.5}, {"epoch": 3, '
     '"main/accuracy": 7}, {"epoch": -1, "main/accuracy": 0.5}, '
     '{"epoch": 4, "main/accuracy": NaN}, {"epoch": 5, "main/accuracy": '
     'null}]', 'the log has no accuracy to plot')])
def test_bad_logs_are_one_line(tmp_path, log, fragment):
    if log is not None:
        with open(str(tmp_path / 'log'), 'w') as f:
            f.write(log)
    with pytest.raises(errors.UsageError, match=fragment) as e:
        error_curves.plot_run(str(tmp_path))
    assert '\n' not in str(e.value)
    assert not os.path.exists(str(tmp_path / 'error.png'))


@pytest.mark.parametrize('name,message', [
    (os.path.join('missing', 'error.png'),
     'cannot write {}: its directory does not exist.'),
    ('error.docx', r'cannot write {}: matplotlib writes no \.docx figure; '
     r'give a file name ending in one of .*\.pdf, .*\.png, .*\.svg'),
    ('error', 'cannot write {}: its name has no suffix to name a format; '
     'give a file name ending in one of '),
    ('sub', 'cannot write {}: it is a directory; give a file name, such as '
     '{}/error.png.')])
def test_figures_that_cannot_be_written(result, name, message):
    pytest.importorskip('matplotlib')
    os.mkdir(os.path.join(result, 'sub'))
    path = os.path.join(result, name)
    with pytest.raises(errors.UsageError) as e:
        error_curves.plot_run(result, path)
    assert re.match(message.replace('{}', re.escape(path)), str(e.value))
    assert sorted(os.listdir(result)) == ['log', 'sub']


def test_a_full_disk_leaves_no_figure(result, monkeypatch):
    pytest.importorskip('matplotlib')
    from quantized_net import atomic_file

    def full(data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    real = atomic_file.os.fdopen

    def fdopen(fd, mode):
        f = real(fd, mode)
        f.write = full
        return f
    monkeypatch.setattr(atomic_file.os, 'fdopen', fdopen)
    with pytest.raises(errors.ResultError) as e:
        error_curves.plot_run(result)
    assert str(e.value) == 'cannot write {}: No space left on device.'.format(
        os.path.join(result, 'error.png'))
    assert os.listdir(result) == ['log']


def test_a_run_without_any_error_is_drawn(tmp_path, capsys):
    pytest.importorskip('matplotlib')
    (tmp_path / 'log').write_text(
        '[{"epoch": 1, "main/accuracy": 1.0, '
        '"validation/main/accuracy": 1.0}]')
    error_curves.plot_run(str(tmp_path))
    assert (tmp_path / 'error.png').read_bytes()[:4] == b'\x89PNG'


@pytest.mark.parametrize('make,message', [
    (None, '{} is not a directory (it does not exist); give the --out '
     'directory of a train_mnist.py run.'),
    (os.mkfifo, '{} is not a directory (it is a FIFO); give the --out '
     'directory of a train_mnist.py run.'),
    (lambda path: os.symlink(path + '.missing', path), '{} is not a '
     'directory (it is a link to nothing); give the --out directory of a '
     'train_mnist.py run.')])
def test_a_result_that_is_no_directory(tmp_path, make, message):
    path = str(tmp_path / 'result')
    if make:
        make(path)
    with pytest.raises(errors.UsageError) as e:
        error_curves.plot_run(path)
    assert str(e.value) == message.format(path)


@pytest.mark.parametrize('pairs,message', [
    ([('low', 'paper')], "--line takes an error in % and a label, got "
                         "[['low', 'paper']]"),
    ([('0', 'paper')], '--line errors must be in (0, 100] %')])
def test_reference_lines(pairs, message):
    assert error_curves.reference_lines([('1.40', 'paper')]) == [
        (1.4, 'paper')]
    with pytest.raises(ValueError) as e:
        error_curves.reference_lines(pairs)
    assert str(e.value) == message
