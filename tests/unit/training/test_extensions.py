"""extensions.py: the best model chosen by validation, the stop on a
non-finite loss, the log written whole."""
import json
import math
import os
import types

import numpy
import pytest

import chainer
import chainer.links as L

from quantized_net.training import extensions
from quantized_net import errors


def trainer_with(out, iteration=16, **observation):
    return types.SimpleNamespace(
        out=out, observation=observation,
        updater=types.SimpleNamespace(iteration=iteration))


def test_best_model_is_written_at_each_better_validation(tmp_path):
    out = str(tmp_path)
    link = L.Linear(3, 2)
    best = extensions.BestModel(link)
    path = os.path.join(out, 'model_best.npz')
    written = []
    for accuracy in (0.5, 0.7, 0.7, 0.6, 0.8):
        link.b.array[...] = accuracy
        best(trainer_with(out, **{'validation/main/accuracy': accuracy}))
        with numpy.load(path) as archive:
            written.append(float(archive['b'][0]))
    # The first of equals stays.
    assert written == pytest.approx([0.5, 0.7, 0.7, 0.7, 0.8])
    assert os.listdir(out) == ['model_best.npz']
    saved = chainer.serializers.DictionarySerializer()
    best.serialize(saved)
    resumed = extensions.BestModel(link)
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    assert resumed.best == pytest.approx(0.8)


def test_a_non_finite_loss_stops_training_naming_the_last_snapshot(
        tmp_path):
    out = str(tmp_path)
    stop = extensions.StopOnNonFiniteLoss()
    stop(trainer_with(out))  # nothing reported: nothing to check
    stop(trainer_with(out, **{'main/loss': numpy.float32(0.3)}))
    with pytest.raises(errors.NonFiniteLoss) as e:
        stop(trainer_with(out, **{'main/loss': math.inf}))
    assert str(e.value) == ('the training loss is inf at iteration 16; '
                            'training stopped. Try a smaller --lr.')
    (tmp_path / 'snapshot_iter_12').write_text('x')
    with pytest.raises(errors.NonFiniteLoss) as e:
        stop(trainer_with(out, **{'main/loss': chainer.Variable(
            numpy.array(numpy.nan, numpy.float32))}))
    assert str(e.value) == (
        'the training loss is nan at iteration 16; training stopped. The '
        'last good snapshot is {}. Try a smaller --lr.'.format(
            os.path.join(out, 'snapshot_iter_12')))


def test_the_log_is_written_whole(tmp_path):
    out = str(tmp_path)
    report = extensions.LogReport(trigger=(1, 'iteration'))
    trainer = types.SimpleNamespace(
        out=out, observation={'main/loss': 0.5}, elapsed_time=1.0,
        is_before_training=False,
        updater=types.SimpleNamespace(iteration=1, epoch=0,
                                      epoch_detail=0.5))
    report(trainer)
    assert os.listdir(out) == ['log']
    with open(os.path.join(out, 'log')) as f:
        assert json.load(f) == [{'main/loss': 0.5, 'epoch': 0,
                                 'iteration': 1, 'elapsed_time': 1.0}]
