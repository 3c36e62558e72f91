"""error_curves.py: the series and the reported epoch from a log, and the
figure written whole."""
import os

import pytest

from quantized_net.training import error_curves
from quantized_net import errors
from helpers import LOG



def test_series_are_errors_in_percent_per_epoch():
    series = error_curves.error_series(LOG)
    assert [name for name, _, _ in series] == [
        'training', 'validation', 'test']
    _, epochs, errors = series[0]
    assert epochs == [1, 2, 3, 4]
    assert errors == pytest.approx([10, 8, 7, 6])
    _, epochs, errors = series[2]
    assert epochs == [1, 2, 3]
    assert errors == pytest.approx([4, 3.5, 2])


def test_a_log_without_validation_or_test_has_one_series():
    series = error_curves.error_series([{'epoch': 1, 'main/accuracy': 0.5}])
    assert [(name, errors) for name, _, errors in series] == [
        ('training', pytest.approx([50]))]
    assert error_curves.best_validation(
        [{'epoch': 1, 'main/accuracy': 0.5}]) is None


def test_the_reported_epoch_is_the_first_best_validation():
    # Epochs 2 and 3 tie; the test error (better at 3) plays no part.
    assert error_curves.best_validation(LOG)['epoch'] == 2
    # Entries without an epoch or a number are not candidates.
    odd = [{'validation/main/accuracy': 0.99},
           {'epoch': 5, 'validation/main/accuracy': None}]
    assert error_curves.best_validation(LOG + odd)['epoch'] == 2


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
                      best=error_curves.best_validation(LOG), title='run')
    assert image.imread(path).shape == (450, 700, 4)
    assert os.listdir(str(tmp_path)) == ['error.png']  # no temporary left
