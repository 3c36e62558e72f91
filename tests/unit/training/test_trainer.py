"""trainer.py: the trainer of a run, the same however many processes
train: what differs comes from the processes object it plugs in."""
import numpy
import pytest

import chainer
from chainer import training

from quantized_net.training import extensions
from quantized_net.training import presets
from quantized_net.training import processes
from quantized_net.training import run_record
from quantized_net.training import snapshot
from quantized_net.training import trainer as trainer_module


def dataset(n, seed=0):
    rng = numpy.random.RandomState(seed)
    return chainer.datasets.TupleDataset(
        rng.rand(n, 784).astype(numpy.float32),
        rng.randint(0, 10, n).astype(numpy.int32))


def build(run, plugged=None):
    config = run.config
    model = presets.build_classifier(config)
    optimizer = presets.build_optimizer(model, config)
    val_set = dataset(20, 1) if config['validation'] else None
    return trainer_module.build_trainer(
        run, model, optimizer, dataset(40), val_set, dataset(20, 2),
        chainer.get_device('@numpy'), plugged), model


def names(trainer):
    """The trainer's extensions by name: the names its snapshot keys
    start with, so renaming one breaks resuming old snapshots."""
    return sorted(trainer._extensions)


def test_the_extensions_of_a_run_with_validation(describe_run, tmp_path):
    trainer, _ = build(describe_run('--preset', 'bnn', '--unit', 8,
                                    '--validation', 20, '--batchsize', 10,
                                    '--out', tmp_path))
    plots = (['PlotReport', 'PlotReport_1']
             if training.extensions.PlotReport.available() else [])
    assert names(trainer) == sorted([
        'BestModel', 'ExponentialShift', 'LogReport', 'PrintReport',
        'ProgressBar', 'RandomState', 'Snapshot', 'StopOnNonFiniteLoss',
        '_observe_value', 'dump_graph', 'test', 'validation'] + plots)
    entries = trainer.get_extension('PrintReport')._entries
    assert entries == ['epoch', 'main/loss', 'validation/main/loss',
                       'main/accuracy', 'validation/main/accuracy',
                       'test/main/accuracy', 'elapsed_time']
    assert trainer.stop_trigger.period == 1000
    assert trainer.updater.get_iterator('main').batch_size == 10


def test_the_extensions_of_the_original(describe_run, tmp_path):
    trainer, _ = build(describe_run('--unit', 8, '--noplot', '--batchsize',
                                    10, '-f', 3, '--out', tmp_path))
    assert names(trainer) == [
        'LogReport', 'PrintReport', 'ProgressBar', 'RandomState', 'Snapshot',
        'StopOnNonFiniteLoss', 'dump_graph', 'validation']
    assert trainer.get_extension('PrintReport')._entries[-2:] == [
        'validation/main/accuracy', 'elapsed_time']


def test_statistics_are_recomputed_before_anything_reads_the_model(
        describe_run, tmp_path):
    trainer, _ = build(describe_run('--preset', 'bnn', '--unit', 8,
                                    '--validation', 20, '--batchsize', 10,
                                    '--bn-batches', 2, '--out', tmp_path))
    entries = trainer._extensions
    order = sorted(entries, key=lambda name: -entries[name].priority)
    assert order.index('StopOnNonFiniteLoss') < order.index(
        'PopulationStatistics') < min(order.index(name) for name in (
            'validation', 'test', 'BestModel', 'Snapshot'))
    assert entries['PopulationStatistics'].trigger.period == 1
    assert entries['PopulationStatistics'].trigger.unit == 'epoch'


class Plugged(processes.SingleProcess):
    """A process, not the writer, of a run of two, that marks what it
    gives the trainer."""

    size, rank = 2, 1

    def loss(self, model):
        def scaled(*arrays):
            return model(*arrays) / 2
        return scaled

    def extend(self, trainer):
        trainer.extend(Marker())

    def evaluator(self, evaluator):
        evaluator.plugged = True
        return evaluator

    def snapshot(self, record=None):
        return Kept(record=record)


class Marker(training.Extension):
    trigger = 1, 'iteration'


class Kept(snapshot.Snapshot):
    pass


def test_a_process_plugged_in_decides_what_differs(describe_run, tmp_path):
    run = describe_run('--preset', 'bnn', '--unit', 8, '--validation', 20,
                       '--batchsize', 10, '--out', tmp_path)
    trainer, model = build(run, Plugged())
    # Not the writer: it reports nothing and writes no file but through
    # the snapshot.
    assert names(trainer) == [
        'ExponentialShift', 'Kept', 'Marker', 'RandomState',
        'StopOnNonFiniteLoss', '_observe_value', 'test', 'validation']
    assert trainer.get_extension('validation').plugged
    assert trainer.get_extension('test').plugged
    # Its part of the batch, and its loss.
    updater = trainer.updater
    assert updater.get_iterator('main').batch_size == 5
    x, t = chainer.dataset.concat_examples(dataset(4))
    with chainer.using_config('train', False):
        assert float(updater.loss_func(x, t).array) == pytest.approx(
            float(model(x, t).array) / 2)


def test_the_default_is_one_process(describe_run, tmp_path):
    run = describe_run('--unit', 8, '--batchsize', 10, '--out', tmp_path)
    trainer, model = build(run)
    assert trainer.updater.loss_func is model
    assert isinstance(trainer.get_extension('Snapshot'), snapshot.Snapshot)
    assert trainer.get_extension('Snapshot').record is None
    assert isinstance(trainer.get_extension('LogReport'),
                      extensions.LogReport)


def test_the_snapshot_records_the_run(describe_run, tmp_path):
    run = describe_run('--unit', 8, '--batchsize', 10, '--out', tmp_path)
    record = run_record.Record(config_items=run.config_items, seed=None,
                               run_id=run_record.new_run_id(), data='f' * 64)
    for plugged in (None, Plugged()):
        config = run.config
        model = presets.build_classifier(config)
        trainer = trainer_module.build_trainer(
            run, model, presets.build_optimizer(model, config), dataset(40),
            None, dataset(20, 2), chainer.get_device('@numpy'), plugged,
            record)
        name = 'Kept' if plugged else 'Snapshot'
        assert trainer.get_extension(name).record is record


class _Counted(chainer.function_node.FunctionNode):
    """The identity, counting its type checks."""
    checks = 0

    def check_type_forward(self, in_types):
        _Counted.checks += 1
        chainer.utils.type_check.expect(in_types[0].dtype == numpy.float32)

    def forward(self, inputs):
        return inputs[0].copy(),

    def backward(self, indexes, grad_outputs):
        return grad_outputs


def test_types_are_checked_in_the_first_iteration_only(monkeypatch):
    monkeypatch.setattr(_Counted, 'checks', 0)
    once = trainer_module.TypesCheckedOnce()
    x = numpy.ones(3, numpy.float32)
    for _ in range(3):
        with once.scope():
            y, = _Counted().apply((x,))
    assert _Counted.checks == 1
    numpy.testing.assert_array_equal(y.array, x)
    # Checked after, as before: the scope changes only its iterations.
    _Counted().apply((x,))
    assert _Counted.checks == 2
    # Off where the user turned them off.
    monkeypatch.setattr(_Counted, 'checks', 0)
    with chainer.using_config('type_check', False):
        with trainer_module.TypesCheckedOnce().scope():
            _Counted().apply((x,))
    assert _Counted.checks == 0


def test_a_wrong_type_fails_the_first_iteration_with_chainers_message():
    once = trainer_module.TypesCheckedOnce()
    with pytest.raises(chainer.utils.type_check.InvalidType,
                       match='float32'):
        with once.scope():
            _Counted().apply((numpy.ones(3, numpy.float64),))
    assert not once.checked  # the next iteration checks again


def test_the_updater_checks_the_first_iteration_only(describe_run, tmp_path,
                                                     monkeypatch):
    run = describe_run('--unit', 8, '--batchsize', 10, '--out', tmp_path)
    trainer, model = build(run)
    counted = []
    check = chainer.function_node.FunctionNode._check_data_type_forward

    def counting(self, in_data):
        counted.append(type(self).__name__)
        return check(self, in_data)
    monkeypatch.setattr(chainer.function_node.FunctionNode,
                        '_check_data_type_forward', counting)
    trainer.updater.update()
    first = len(counted)
    assert first > 0 and 'QuantizedLinearFunction' in counted
    trainer.updater.update()
    trainer.updater.update()
    assert len(counted) == first
    assert trainer.updater.iteration == 3
