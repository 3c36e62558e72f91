"""evaluate.py as a user runs it, on models that train_mnist.py saved."""
import os

import numpy
import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.quantization import quantizers
from quantized_net.training.result_dir import read_log


def run(*args):
    return helpers.run_script('evaluate.py', *args)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp('data'))
    helpers.write_subset(directory, 1000, 300)
    return directory


def train(data, out, *flags):
    result = helpers.run_script(
        'train_mnist.py', '--dataset-dir', data, '--epoch', 1, '--seed', 3,
        '--batchsize', 50, '--noplot', '--out', out, *flags)
    assert result.returncode == 0, result.stderr
    return read_log(out)[-1]


def accuracy_line(stdout):
    line = next(text for text in stdout.splitlines()
                if text.startswith('test accuracy:'))
    return float(line.split()[2]), float(line.split()[5].rstrip('%'))


def distinct_lines(stdout):
    return [text.split(': ')[1] for text in stdout.splitlines()
            if text.startswith('  l')]


def test_reproduces_the_logged_accuracy_of_the_seed_preset(data, tmp_path):
    out = str(tmp_path / 'seed')
    logged = train(data, out, '--unit', 200)
    result = run(out, '--dataset-dir', data, '--batchsize', 50)
    assert result.returncode == 0, result.stderr
    accuracy, error = accuracy_line(result.stdout)
    assert accuracy == pytest.approx(logged['validation/main/accuracy'],
                                     abs=5e-5)
    # The seed preset validates on the test set: no best model to choose.
    assert_one_line_error(run(out, '--best', '--dataset-dir', data),
                          'model_best.npz does not exist', '(--validation N)')
    assert error == pytest.approx(100 * (1 - accuracy), abs=0.006)
    assert '(seed allows any number)' in result.stdout
    assert len(distinct_lines(result.stdout)) == 3


def test_binary_weights_have_two_values(data, tmp_path):
    out = str(tmp_path / 'bnn')
    logged = train(data, out, '--preset', 'bnn', '--unit', 64, '--layers', 2,
                   '--validation', 200)
    result = run(out, '--dataset-dir', data)
    assert result.returncode == 0, result.stderr
    accuracy, _ = accuracy_line(result.stdout)
    assert accuracy == pytest.approx(logged['test/main/accuracy'], abs=5e-5)
    assert '(sign allows at most 2)' in result.stdout
    assert distinct_lines(result.stdout) == ['2', '2', '2']
    assert '  mean: 2.0' in result.stdout
    # One epoch: it is the best validation epoch as well.
    best = run(out, '--best', '--dataset-dir', data)
    assert best.returncode == 0, best.stderr
    assert accuracy_line(best.stdout) == accuracy_line(result.stdout)
    assert 'model_best.npz' in best.stdout


@pytest.mark.parametrize('spec,levels', [('linear:2', 4), ('log:3', 7)])
def test_distinct_values_within_the_bit_width(data, tmp_path, spec, levels):
    out = str(tmp_path / 'q')
    train(data, out, '--preset', 'float', '--weight-quant', spec,
          '--unit', 64)
    result = run(out, '--dataset-dir', data)
    assert result.returncode == 0, result.stderr
    counts = [int(c) for c in distinct_lines(result.stdout)]
    assert all(1 <= c <= levels for c in counts)
    saved = numpy.load(os.path.join(out, 'model.npz'))
    quantizer = quantizers.parse(spec)
    assert counts == [
        len(numpy.unique(quantizer(saved['predictor/l{}/W'.format(i)])))
        for i in (1, 2, 3)]


def test_errors(tmp_path, data):
    assert_one_line_error(run(str(tmp_path)), 'evaluate.py: error:',
                          'args.json does not exist')
    (tmp_path / 'args.json').write_text('{"config": {"preset": "x"}}')
    (tmp_path / 'model.npz').write_bytes(b'not a zip')
    assert_one_line_error(run(str(tmp_path), '--dataset-dir', data),
                          'is not a configuration written by train_mnist.py')
    assert_one_line_error(run(str(tmp_path), '--gpu', '0', '--device', '-1'),
                          'either --device or --gpu', code=2)
