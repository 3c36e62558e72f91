"""reported.py: the one definition of what a run reports: its best
validation epoch where it held out validation images, else its last."""
import pytest

from helpers import LOG
from quantized_net.training import reported

#: LOG of a run of the original's way: the test set evaluated as
#: "validation", no test apart.
ORIGINAL = [{key: value for key, value in entry.items()
             if key != 'test/main/accuracy'} for entry in LOG]


def test_errors_in_percent_of_an_entry():
    assert reported.error(LOG[0], 'validation') == pytest.approx(5)
    assert reported.error(LOG[3], 'test') is None
    assert reported.error({'test/main/accuracy': None}, 'test') is None


def test_a_run_holding_out_reports_its_best_validation_epoch():
    result = reported.reported(LOG)
    assert reported.holds_out(LOG)
    # Epochs 2 and 3 tie; the test error (better at 3) plays no part.
    assert (result.epoch, result.chosen_by) == (2, 'best validation')
    assert result.test_error == pytest.approx(3.5)
    assert result.validation_error == pytest.approx(3)
    assert str(result) == 'epoch 2 (best validation)'
    assert result.summary() == ('test error 3.50% at epoch 2 (best '
                                'validation); validation error there 3.00%')


def test_a_run_of_the_original_reports_its_last_epoch():
    result = reported.reported(ORIGINAL + [{'epoch': 5, 'main/loss': 0.2,
                                            'validation/main/accuracy': 0.96}])
    assert not reported.holds_out(ORIGINAL)
    # Not epoch 2, the best: choosing it would choose by test error.
    assert (result.epoch, result.chosen_by) == (5, 'last')
    assert result.test_error == pytest.approx(4)
    assert result.validation_error is None
    assert result.train_loss == pytest.approx(0.2)
    assert result.summary() == 'test error 4.00% at epoch 5 (last)'


def test_entries_without_an_epoch_or_a_number_are_not_candidates():
    odd = [{'validation/main/accuracy': 0.99},
           {'epoch': 5, 'validation/main/accuracy': None}]
    assert reported.best_validation(LOG + odd)['epoch'] == 2
    assert reported.reported(ORIGINAL + odd).epoch == 3
    assert reported.reported(ORIGINAL).train_loss is None
    assert reported.reported([]) is None
    assert reported.reported([{'epoch': 1, 'main/accuracy': 0.5}]) is None


def test_the_epoch_of_each_model_file():
    assert reported.model_epoch(LOG, best=True) == \
        'epoch 2 (best validation)'
    assert reported.model_epoch(LOG, best=False) == 'epoch 3 (last)'
    assert reported.model_epoch([], best=False) is None


@pytest.mark.parametrize('value', [
    '0.99', True, None, [0.99], {'a': 1}, float('nan'), float('inf'), 1.5,
    -0.1])
def test_values_of_the_wrong_type_or_range_are_no_accuracy(value):
    """A log is read as anyone may have written it."""
    entry = {'epoch': 5, 'validation/main/accuracy': value,
             'main/loss': value}
    assert reported.error(entry, 'validation') is None
    assert reported.reported(ORIGINAL + [entry]).epoch == 3
    assert reported.reported(ORIGINAL + [entry]).train_loss is None


@pytest.mark.parametrize('epoch', ['5', True, 0, -1, 2.0, None, [5]])
def test_epochs_of_the_wrong_type_are_no_epoch(epoch):
    entry = {'epoch': epoch, 'validation/main/accuracy': 0.999}
    assert reported.reported(ORIGINAL + [entry]).epoch == 3
    assert reported.best_validation(LOG + [entry])['epoch'] == 2
