"""The Chainer trainer of a run: iterators, updater and extensions, each
with why it is there, and running it.

The trainer is the same however many processes train: what a process of a
data-parallel run does differently comes from the object it plugs in (see
:mod:`processes`).
"""
import contextlib
import sys

import numpy

import chainer
from chainer import training
from chainer.training import extensions

from quantized_net.training import extensions as run_extensions
from quantized_net.training import population_statistics
from quantized_net.training import presets
from quantized_net.training import processes as processes_module
from quantized_net.training import result_dir
from quantized_net.training import snapshot


class TypesCheckedOnce(object):
    """Chainer's checks of every function's argument types (its
    ``type_check``) in the first training iteration, not in the ones
    after: they are the same functions of arrays of the same types and
    shapes (a repeating ``SerialIterator``'s batches are all full), and
    the checks are Python on every function each time (docs/speed.md).
    A network that is wrong still fails in its first iteration with
    Chainer's message. Where the checks are off already
    (``CHAINER_TYPE_CHECK=0``), they stay off.
    """

    def __init__(self):
        self.checked = False

    @contextlib.contextmanager
    def scope(self):
        """An iteration: checked if it is the first."""
        if self.checked:
            with chainer.using_config('type_check', False):
                yield
        else:
            yield
            self.checked = True


class Updater(training.updaters.StandardUpdater):
    """Chainer's ``StandardUpdater``, the types of its functions'
    arguments checked in its first iteration only
    (:class:`TypesCheckedOnce`)."""

    def __init__(self, *args, **kwargs):
        super(Updater, self).__init__(*args, **kwargs)
        self.type_checks = TypesCheckedOnce()

    def update_core(self):
        with self.type_checks.scope():
            super(Updater, self).update_core()


def build_trainer(run, model, optimizer, train_set, val_set, test_set,
                  device, processes=None, record=None):
    """The trainer of ``run`` (a :class:`run_description.Run`) in
    ``run.out``.

    Args:
        run: What to train.
        model: The classifier, on ``device``.
        optimizer: Its optimizer, set up.
        train_set, val_set, test_set: This process's data; ``val_set`` is
            None where the run holds no images out, and then the test set
            is evaluated as "validation", as the original did.
        device: The Chainer device.
        processes: How the run is spread over processes; one by default
            (:class:`processes.SingleProcess`).
        record (run_record.Record): What the run's snapshots record of it;
            without one they record nothing and remove no earlier
            snapshot.
    """
    processes = processes or processes_module.SingleProcess()
    config = run.config
    batchsize = processes.batch(config['batchsize'])
    train_iter = chainer.iterators.SerialIterator(train_set, batchsize)
    # Chainer's updater, that checks its functions' argument types in its
    # first iteration and not in every one.
    updater = Updater(train_iter, optimizer, device=device,
                      loss_func=processes.loss(model))
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'),
                               out=run.out)
    processes.extend(trainer)

    # Stop at the first NaN or infinite loss, before it reaches a snapshot.
    trainer.extend(run_extensions.StopOnNonFiniteLoss())

    # Recompute batch normalisation's statistics with the epoch's weights
    # before anything evaluates or saves the model: the running averages
    # lag weights that move fast.
    bn_batches = presets.with_defaults(config)['bn_batches']
    if bn_batches:
        trainer.extend(population_statistics.PopulationStatistics(
            model, train_set, batchsize, bn_batches, device,
            processes.total))

    # Evaluate at the end of each epoch: on the held-out images and the
    # test set, or, as the original, on the test set named "validation".
    evaluated = [('validation', val_set if val_set else test_set)]
    if val_set:
        evaluated.append(('test', test_set))
    for name, dataset in evaluated:
        evaluator = extensions.Evaluator(
            chainer.iterators.SerialIterator(
                dataset, batchsize, repeat=False, shuffle=False),
            model, device=device)
        trainer.extend(processes.evaluator(evaluator), name=name)

    # Decay Adam's alpha exponentially, epoch by epoch, to lr_final.
    rate = presets.lr_decay_rate(config)
    if rate:
        trainer.extend(extensions.ExponentialShift('alpha', rate),
                       trigger=(1, 'epoch'))
        trainer.extend(extensions.observe_value(
            'alpha', lambda trainer: optimizer.alpha), trigger=(1, 'epoch'))

    # Snapshot the whole trainer, random state included, so that --resume
    # continues the run exactly, and its record, which a resume checks;
    # only the latest is kept (each holds the model and Adam's state).
    every = (run.frequency, 'epoch')
    trainer.extend(snapshot.RandomState(device), trigger=every,
                   priority=snapshot.Snapshot.priority + 1)
    trainer.extend(processes.snapshot(record), trigger=every)
    if processes.writer:
        _extend_reports(trainer, run, model, [name for name, _ in evaluated],
                        holds_out=bool(val_set))
    return trainer


def _extend_reports(trainer, run, model, names, holds_out):
    # Write the computational graph (cg.dot) once, to inspect the network;
    # first of all, while the reported loss is still the graph's root.
    trainer.extend(extensions.dump_graph('main/loss',
                                         filename=result_dir.GRAPH_FILE),
                   priority=training.PRIORITY_WRITER + 10)

    # Average the reported values over each epoch and write them to log.
    trainer.extend(run_extensions.LogReport())

    if holds_out:
        # Keep the model of the best validation epoch: the one to test.
        trainer.extend(run_extensions.BestModel(model))

    # Plot loss and accuracy of training and evaluation, once per epoch.
    if run.plot and extensions.PlotReport.available():
        for what, file_name in result_dir.PLOT_FILES.items():
            trainer.extend(run_extensions.PlotReport(
                ['main/' + what] + [n + '/main/' + what for n in names],
                'epoch', file_name=file_name))

    # The seed's table, one row per epoch, plus the time taken so far. (Both
    # reports are given today's stdout: Chainer's default is the one it
    # found at import, which a closed stdout leaves None.)
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy'] +
        [n + '/main/accuracy' for n in names] + ['elapsed_time'],
        out=sys.stdout))

    # Show progress within an epoch and an estimate of the time left.
    trainer.extend(extensions.ProgressBar(out=sys.stdout))


def run(trainer):
    """Runs ``trainer``; errors end it as one line (see :mod:`cli`)."""
    # A diverging run ends with StopOnNonFiniteLoss's one line, not with
    # NumPy's overflow warnings.
    with numpy.errstate(over='ignore', invalid='ignore'):
        trainer.run(show_loop_exception_msg=False)
