"""evaluation.py: a model's accuracy, the distinct values of its quantized
weights, and evaluate.py's report of them with the model's epoch."""
import json
import os

import numpy
import pytest

import chainer
from chainer.training import extensions

import helpers
from quantized_net.quantization import quantizers
from quantized_net.training import evaluation
from quantized_net.training import mnist
from quantized_net.training import presets
from quantized_net.training import saved_model

DEVICE = chainer.get_device('@numpy')


def random_model(preset, seed=0, **changes):
    config = dict(presets.PRESETS[preset], preset=preset, unit=32,
                  **changes)
    numpy.random.seed(seed)
    return presets.build_classifier(config), config


def test_accuracy_is_what_the_trainer_logs(tiny_data):
    model, _ = random_model('seed')
    _, _, test_set = mnist.load_splits(tiny_data)
    evaluator = extensions.Evaluator(chainer.iterators.SerialIterator(
        test_set, 50, repeat=False, shuffle=False), model, device=DEVICE)
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    with reporter, chainer.using_config('train', False):
        logged = evaluator.evaluate()['main/accuracy']
    assert evaluation.accuracy(model, test_set, 50, DEVICE) == \
        pytest.approx(float(logged), abs=1e-6)


@pytest.mark.parametrize('spec,levels', [
    ('sign', 2), ('linear:2', 4), ('log:3', 7)])
def test_distinct_values_within_the_bit_width(spec, levels):
    model, _ = random_model('float', weight_quant=spec)
    rows = evaluation.distinct_weight_values(model)
    assert [(name, shape) for name, shape, _ in rows] == [
        ('l1', (32, 784)), ('l2', (32, 32)), ('l3', (10, 32))]
    quantizer = quantizers.parse(spec)
    assert [count for _, _, count in rows] == [
        len(numpy.unique(quantizer(link.W.array)))
        for link in model.predictor.linear_layers()]
    assert all(1 <= count <= levels for _, _, count in rows)


def test_the_report_says_which_epoch(tiny_data, tmp_path, capsys):
    model, config = random_model('bnn', layers=2)
    out = helpers.write_result(str(tmp_path), model, config)
    saved_model.save_model(model, out, 'model_best.npz')
    evaluation.report(out, 'model.npz', 100, DEVICE, tiny_data)
    printed = capsys.readouterr().out.splitlines()
    # Without a log, no epoch to name.
    assert printed[0] == (
        'model: {} (preset bnn; quantizers: weight sign, activation sign, '
        'gradient none, input none)'.format(os.path.join(out, 'model.npz')))
    assert printed[1].startswith('test accuracy: ')
    assert printed[1].endswith('(200 images)')
    assert printed[2:] == [
        'distinct values per quantized weight matrix (sign allows at most '
        '2):', '  l1 784x32: 2', '  l2 32x32: 2', '  l3 32x10: 2',
        '  mean: 2.0']
    with open(os.path.join(out, 'log'), 'w') as f:
        json.dump(helpers.LOG, f)
    for name, epoch in (('model.npz', 'epoch 3 (last)'),
                        ('model_best.npz', 'epoch 2 (best validation)')):
        evaluation.report(out, name, 100, DEVICE, tiny_data)
        assert capsys.readouterr().out.splitlines()[0].startswith(
            'model: {}, {} (preset bnn;'.format(os.path.join(out, name),
                                                epoch))


def test_the_report_of_an_unbounded_quantizer(tiny_data, tmp_path, capsys):
    # The original's seed quantizer has no bit width to keep to.
    model, config = random_model('seed')
    out = helpers.write_result(str(tmp_path), model, config)
    evaluation.report(out, 'model.npz', 100, DEVICE, tiny_data)
    printed = capsys.readouterr().out.splitlines()
    assert printed[2] == ('distinct values per quantized weight matrix '
                          '(seed allows any number):')
    counts = [int(line.rsplit(': ', 1)[1]) for line in printed[3:6]]
    assert counts == [count for _, _, count in
                      evaluation.distinct_weight_values(model)]
    assert min(counts) > 2  # powers of two, not two levels


@pytest.mark.parametrize('log', [None, '{}', '[1]', 'not json', 'fifo',
                                 '[' * 100 + ']' * 100])
def test_a_report_leaves_out_the_epoch_of_a_damaged_log(tmp_path, log):
    path = str(tmp_path / 'log')
    if log == 'fifo':
        os.mkfifo(path)  # refused, not waited on
    elif log is not None:
        (tmp_path / 'log').write_text(log)
    assert evaluation.model_epoch(str(tmp_path), 'model.npz') is None
