"""evaluate.py as a user runs it, on a model that train_mnist.py saved.
(Accuracy and distinct values, in process: tests/unit/training/
test_evaluation.py.)"""
import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.training import reported
from quantized_net.training.result_dir import read_log


def run(*args):
    return helpers.run_script('evaluate.py', *args)


@pytest.fixture(scope='module')
def bnn(tiny_data, tmp_path_factory):
    """Two epochs of a small bnn, validated, and its data set."""
    out = str(tmp_path_factory.mktemp('evaluate') / 'bnn')
    result = helpers.run_script(
        'train_mnist.py', '--dataset-dir', tiny_data, '--epoch', 2,
        '--seed', 3, '--batchsize', 50, '--noplot', '--out', out,
        '--preset', 'bnn', '--unit', 64, '--layers', 2, '--validation', 100)
    assert result.returncode == 0, result.stderr
    return tiny_data, out


def accuracy_line(stdout):
    line = next(text for text in stdout.splitlines()
                if text.startswith('test accuracy:'))
    return float(line.split()[2])


def test_reproduces_the_logged_test_accuracy_and_says_which_epoch(bnn):
    data, out = bnn
    log = read_log(out)
    for flags, entry, words in (
            ([], log[-1], 'epoch 2 (last)'),
            (['--best'], reported.best_validation(log),
             reported.model_epoch(log, best=True))):
        result = run(out, '--dataset-dir', data, *flags)
        assert result.returncode == 0, result.stderr
        assert accuracy_line(result.stdout) == pytest.approx(
            entry['test/main/accuracy'], abs=5e-5)
        first = result.stdout.splitlines()[0]
        assert first.startswith('model: {}/model{}.npz, {} (preset bnn;'
                                .format(out, '_best' if flags else '',
                                        words))
        assert '(sign allows at most 2)' in result.stdout
        assert '  mean: 2.0' in result.stdout


def test_errors(tmp_path):
    assert_one_line_error(run(str(tmp_path)), 'evaluate.py: error:',
                          'args.json does not exist')
    model, config = helpers.binarized_model(units=16)
    out = helpers.write_result(str(tmp_path / 'r'), model, config)
    # A run without validation images has no best model to choose.
    assert_one_line_error(run(out, '--best'), 'model_best.npz does not exist',
                          '(--validation N)')
    assert_one_line_error(run(str(tmp_path), '--gpu', '0', '--device', '-1'),
                          'either --device or --gpu', code=2)
