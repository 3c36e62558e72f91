"""The Chainer trainer of a run: iterators, updater and extensions.

``train_mnist.py`` and ``train_mnist_mn.py`` build the same trainer here,
the second with a ChainerMN communicator.
"""
import os
import random

import numpy

import chainer
from chainer import training
from chainer.backends import cuda
from chainer.training import extensions

from quantized_net import cli
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import extensions as trainer_extensions
from quantized_net import errors

#: Where a snapshot records the number of processes that wrote it.
PROCESSES_KEY = 'processes'


def add_flags(parser):
    """train_mnist.py's flags, each as in Chainer's examples where it has a
    counterpart there."""
    parser.add_argument('--frequency', '-f', type=cli.int_at_least(1),
                        default=1,
                        help='Take a snapshot every this many epochs')
    cli.add_device_flags(parser)
    parser.add_argument('--out', '-o', default='result',
                        help='Directory to output the result')
    parser.add_argument('--resume', '-r', default=None,
                        help='Resume the training from this snapshot')
    parser.add_argument('--replace', action='store_true',
                        help='Delete the files of an earlier run in --out '
                             'and start again (without it, such a --out is '
                             'refused)')
    parser.add_argument('--noplot', dest='plot', action='store_false',
                        help='Disable PlotReport extension')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=None,
                        help='Random seed; the same seed on the CPU, with '
                             'as many BLAS threads, gives the same log')
    cli.add_dataset_flag(parser)
    presets.add_config_flags(parser)


def parse_args(parser, argv=None):
    """The flags of :func:`add_flags` read, with ``args.config`` the
    configuration they give, checked."""
    args = cli.parse(parser, argv)
    args.config = presets.config_from_args(args)
    try:
        presets.check_config(args.config)
    except ValueError as e:
        parser.error(str(e))
    return args


def seed_everything(seed, device):
    random.seed(seed)
    numpy.random.seed(seed)
    if device.xp is cuda.cupy:
        cuda.cupy.random.seed(seed)


def print_header(device, config, seed, processes=1):
    print('Device: {}'.format(device))
    if processes > 1:
        print('# processes: {}'.format(processes))
    print('# preset: {}'.format(config['preset']))
    print('# quantizers: weight {weight_quant}, activation {act_quant}, '
          'gradient {grad_quant}, input {input_quant}'.format(**config))
    print('# unit: {unit} x {layers} layers, {activation}'.format(**config))
    print('# Minibatch-size: {}'.format(config['batchsize']))
    print('# epoch: {}'.format(config['epoch']))
    print('# seed: {}'.format(seed))
    print('')


def check_batchsize(batchsize, train_set, processes=1):
    """UsageError unless each of ``processes`` gets a whole, non-empty
    share of the batch, and the batch fits in the training set."""
    if batchsize > len(train_set):
        raise errors.UsageError(
            '--batchsize {} is larger than the training set ({} images); '
            'give at most {}.'.format(batchsize, len(train_set),
                                      len(train_set)))
    if batchsize % processes:
        raise errors.UsageError(
            '--batchsize {} does not split evenly over {} processes; give a '
            'multiple of {}.'.format(batchsize, processes, processes))


def build_trainer(args, model, optimizer, train_set, val_set, test_set,
                  device, comm=None):
    """The trainer of a run of ``args`` (train_mnist.py's flags) in
    ``args.out``: the updater and every extension, each with why it is
    there.

    With ``comm`` (a ChainerMN communicator), one process of a
    data-parallel run: ``train_set`` and the evaluated sets are this
    process's shards, ``optimizer`` is the multi-node optimizer, the
    global batch is split over the processes, and only rank 0 reports
    and writes files (see :mod:`multi_node`).
    """
    config = args.config
    size = comm.size if comm else 1
    writer = comm is None or comm.rank == 0
    if comm:
        from quantized_net.training import multi_node  # imports chainermn, which MPI runs alone need
    batchsize = config['batchsize']
    train_iter = chainer.iterators.SerialIterator(train_set,
                                                  batchsize // size)
    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, device=device,
        loss_func=multi_node.loss(model, comm) if comm else None)
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'),
                               out=args.out)

    if comm:
        # Average the loss and accuracy over the processes every
        # iteration, before the NaN check and the log read them.
        trainer.extend(multi_node.AverageObservations(comm))

    # Stop at the first NaN or infinite loss, before it reaches a snapshot.
    trainer.extend(trainer_extensions.StopOnNonFiniteLoss())

    # Evaluate at the end of each epoch: on the held-out images and the
    # test set, or, as the original, on the test set named "validation".
    evaluated = [('validation', val_set if val_set else test_set)]
    if val_set:
        evaluated.append(('test', test_set))
    for name, dataset in evaluated:
        evaluator = extensions.Evaluator(
            chainer.iterators.SerialIterator(
                dataset, batchsize // size, repeat=False, shuffle=False),
            model, device=device)
        if comm:
            evaluator = multi_node.chainermn.create_multi_node_evaluator(
                evaluator, comm)
        trainer.extend(evaluator, name=name)

    # Decay Adam's alpha exponentially, epoch by epoch, to lr_final.
    rate = presets.lr_decay_rate(config)
    if rate:
        trainer.extend(extensions.ExponentialShift('alpha', rate),
                       trigger=(1, 'epoch'))
        trainer.extend(extensions.observe_value(
            'alpha', lambda trainer: optimizer.alpha), trigger=(1, 'epoch'))

    # Snapshot the whole trainer, random state included, so that --resume
    # continues the run exactly; only the latest is kept (each holds the
    # model and Adam's state).
    every = (args.frequency, 'epoch')
    trainer.extend(trainer_extensions.RandomState(device), trigger=every,
                   priority=trainer_extensions.Snapshot.priority + 1)
    trainer.extend(multi_node.Snapshot(comm, n_retains=1) if comm
                   else trainer_extensions.Snapshot(n_retains=1),
                   trigger=every)
    if not writer:
        return trainer

    # Write the computational graph (cg.dot) once, to inspect the network;
    # first of all, while the reported loss is still the graph's root.
    trainer.extend(extensions.dump_graph('main/loss',
                                         filename=result_dir.GRAPH_FILE),
                   priority=training.PRIORITY_WRITER + 10)

    # Average the reported values over each epoch and write them to log.
    trainer.extend(trainer_extensions.LogReport())

    if val_set:
        # Keep the model of the best validation epoch: the one to test.
        trainer.extend(trainer_extensions.BestModel(model))

    names = [name for name, _ in evaluated]
    # Plot loss and accuracy of training and evaluation, once per epoch.
    if args.plot and extensions.PlotReport.available():
        for what, file_name in result_dir.PLOT_FILES.items():
            trainer.extend(trainer_extensions.PlotReport(
                ['main/' + what] + [n + '/main/' + what for n in names],
                'epoch', file_name=file_name))

    # The seed's table, one row per epoch, plus the time taken so far.
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy'] +
        [n + '/main/accuracy' for n in names] + ['elapsed_time']))

    # Show progress within an epoch and an estimate of the time left.
    trainer.extend(extensions.ProgressBar())
    return trainer


def run(trainer):
    """Runs ``trainer``; errors end it as one line (see :mod:`cli`)."""
    # A diverging run ends with StopOnNonFiniteLoss's one line, not with
    # NumPy's overflow warnings.
    with numpy.errstate(over='ignore', invalid='ignore'):
        trainer.run(show_loop_exception_msg=False)


def check_resume(args):
    """UsageError unless ``args.resume`` is a file to resume from, of a
    run whose recorded configuration (its directory's args.json) is
    ``args.config`` but for the number of epochs. Without ``--seed``, the
    run keeps the seed it recorded."""
    path, config = args.resume, args.config
    if os.path.isdir(path):
        raise errors.UsageError('cannot resume: {} is a directory; give one of '
                             'its snapshot_iter_* files.'.format(path))
    if not os.path.isfile(path):
        raise errors.UsageError(
            'cannot resume: snapshot {} does not exist.'.format(path))
    recorded = result_dir.read_args(os.path.dirname(os.path.abspath(path)))
    if not recorded or not isinstance(recorded.get('config'), dict):
        return
    differs = sorted(key for key in set(config) | set(recorded['config'])
                     if key != 'epoch' and
                     config.get(key) != recorded['config'].get(key))
    if differs:
        raise errors.UsageError(
            'cannot resume from {}: its run was trained with other {} ({}); '
            'give the same flags, or start a new run.'.format(
                path, 'values' if len(differs) > 1 else 'value',
                ', '.join('{} {!r}, not {!r}'.format(
                    key, recorded['config'].get(key), config.get(key))
                    for key in differs)))
    if args.seed is None:
        args.seed = recorded.get('seed')


def _optional(key):
    # Plots are optional (--noplot, matplotlib missing): a run resumed
    # with or without them is the same run. Snapshots older than BestModel
    # lack its best accuracy: it counts from the resumed epoch on.
    return 'PlotReport' in key or 'BestModel' in key


def load_snapshot(path, trainer, arrays=None, processes=1):
    """Loads the snapshot ``path`` (or its ``arrays``, already read) into
    the ``trainer`` of a run of ``processes`` processes, never
    unpickling; UsageError, one line, if it cannot."""
    try:
        if arrays is None:
            arrays = result_dir.read_npz(path)
        written = int(arrays.get(PROCESSES_KEY, 1))
        if written != processes:
            raise errors.UsageError(
                'cannot resume: {} was written by {} process{}; run it with '
                '{}.'.format(path, written, 'es' if written > 1 else '',
                             'mpiexec -n {} ./train_mnist_mn.py'.format(
                                 written) if written > 1 else
                             './train_mnist.py'))
        result_dir.deserialize(arrays, trainer, optional=_optional)
    except errors.ResultError as e:
        raise errors.UsageError('cannot resume: {}'.format(e))
    except errors.UsageError:
        raise
    except Exception as e:  # a key or shape error: not our snapshot
        raise errors.UsageError(
            'cannot resume from {}: it is not a snapshot of this network '
            '({}: {}). Give a snapshot_iter_* file written with the same '
            'preset, --unit and --layers.'.format(
                path, type(e).__name__, ' '.join(str(e).split())))


def resume_hint(args):
    """What to say when the run is interrupted."""
    latest = (result_dir.snapshots(args.out)
              if getattr(args, 'claimed', False) else [])
    if not latest:
        return 'no snapshot was written yet'
    return 'resume with --resume {}'.format(
        os.path.join(args.out, latest[-1][1]))
