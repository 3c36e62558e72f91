"""extensions.py: the best model chosen by validation, the stop on a
non-finite loss, the log written whole; what a resume loads into them,
checked."""
import json
import math
import os
import types

import numpy
import pytest

import chainer
import chainer.links as L
from chainer import training

from quantized_net.training import extensions
from quantized_net.training import snapshot
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


def loaded(extension, **members):
    """``extension`` after loading ``members`` as a snapshot's, checked as
    a resume checks it."""
    extension.serialize(chainer.serializers.NpzDeserializer(
        {key: numpy.asarray(value) for key, value in members.items()}))
    extension.check_state('extensions/X/')
    return extension


def test_a_log_loaded_is_a_list_of_entries_of_numbers():
    saved = chainer.serializers.DictionarySerializer()
    extensions.LogReport().serialize(saved)
    members = dict(saved.target)
    members['_log'] = json.dumps([{'epoch': 1, 'main/loss': 0.5}])
    assert loaded(extensions.LogReport(), **members).log == [
        {'epoch': 1, 'main/loss': 0.5}]
    for log in ('{}', '[1, 2]', '[{"epoch": null}]', '[{"epoch": [1]}]',
                '[{"epoch": false}]'):
        members['_log'] = log
        with pytest.raises(snapshot.Tampered) as e:
            loaded(extensions.LogReport(), **members)
        assert str(e.value) == ('extensions/X/_log is not a list of objects '
                                'of numbers')
    members['_log'] = '[' * 40 + ']' * 40
    with pytest.raises(snapshot.Tampered, match=r'^_log is not a log: its '
                       r'JSON nests 40 deep \(at most 32\)'):
        loaded(extensions.LogReport(), **members)


def test_the_best_accuracy_loaded_is_an_accuracy():
    link = L.Linear(3, 2)
    assert loaded(extensions.BestModel(link), best=0.25).best == 0.25
    assert loaded(extensions.BestModel(link), best=-math.inf).best == \
        -math.inf
    for best in (math.nan, 1.01, -0.5, math.inf):
        with pytest.raises(snapshot.Tampered) as e:
            loaded(extensions.BestModel(link), best=best)
        assert str(e.value) == ('extensions/X/best is not an accuracy in '
                                '[0, 1]')


@pytest.mark.skipif(not training.extensions.PlotReport.available(),
                    reason='needs matplotlib')
def test_plot_data_loaded_or_kept_from_a_run_without_plots():
    keys = ['main/loss', 'validation/main/loss']
    data = {'main/loss': [[1, 0.5]], 'validation/main/loss': [[1, 0.6]]}
    member = '_plot_loss.png'
    # From a run with plots: the data it plotted, checked.
    with_plots = loaded(extensions.PlotReport(keys, 'epoch',
                                              file_name='loss.png'),
                        **{member: json.dumps(data)})
    assert with_plots._data == data
    # From a run without (no member): its own, empty, data.
    report = extensions.PlotReport(keys, 'epoch', file_name='loss.png')
    report.serialize(chainer.serializers.NpzDeserializer(
        {}, ignore_names=lambda key: True))
    report.check_state('extensions/X/')
    assert report._data == {key: [] for key in keys}
    for bad in ({'main/loss': [[1, 0.5]]}, {'main/loss': [[1]],
                                            'validation/main/loss': []}):
        with pytest.raises(snapshot.Tampered) as e:
            loaded(extensions.PlotReport(keys, 'epoch',
                                         file_name='loss.png'),
                   **{member: json.dumps(bad)})
        assert str(e.value) == (
            'extensions/X/_plot_loss.png is not an object of lists of [x, '
            'y] pairs for main/loss, validation/main/loss')
