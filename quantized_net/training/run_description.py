"""A training run as its command line describes it: built once from the
parsed flags, never changed after (:class:`Run` is frozen), and passed to
everything that trains (:mod:`session`, :mod:`trainer`, the processes).

Resuming a run changes what the flags alone say in one way: without
``--seed``, the run keeps the seed its directory recorded. :func:`resumed`
checks the snapshot and its run's configuration and gives the run that is
then trained, a new description.
"""
import dataclasses
import os
from typing import Optional, Tuple, Union

from quantized_net import cli
from quantized_net.training import flags
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net import errors


@dataclasses.dataclass(frozen=True)
class Run(object):
    """What to train, and where.

    Attributes:
        config_items (tuple): The configuration's ``(key, value)`` pairs, in
            order; read it as :attr:`config`.
        seed (int): The random seed, or None for none.
        out (str): The result directory.
        resume (str): The snapshot to continue from, or None.
        replace (bool): Whether to replace another run's files in ``out``.
        frequency (int): Epochs between snapshots.
        plot (bool): Whether to draw the loss and accuracy plots.
        dataset_dir (str): Where the MNIST files are, or None.
        device: Chainer's device specifier, as ``--device``/``--gpu`` gave.
        device_flag (str): That flag as given, for messages.
        argv (tuple): The command line's arguments, recorded in args.json.
        communicator (str): The ChainerMN communicator asked for, or None
            for the default (multi-process runs only).
    """

    config_items: Tuple[tuple, ...]
    seed: Optional[int]
    out: str
    resume: Optional[str] = None
    replace: bool = False
    frequency: int = 1
    plot: bool = True
    dataset_dir: Optional[str] = None
    device: Union[int, str] = -1
    device_flag: str = '--gpu -1'
    argv: Tuple[str, ...] = ()
    communicator: Optional[str] = None

    @property
    def config(self):
        """The configuration, a new dict at each call."""
        return dict(self.config_items)

    @property
    def on_gpu(self):
        """Whether the run asks for a CUDA GPU."""
        return cli.wants_gpu(self.device)


def describe(args, argv):
    """The :class:`Run` that the flags of :func:`flags.add_train_flags`
    (parsed into ``args``) and the command line ``argv`` describe."""
    return Run(
        config_items=tuple(flags.config_from_args(args).items()),
        seed=args.seed, out=args.out, resume=args.resume,
        replace=args.replace, frequency=args.frequency, plot=args.plot,
        dataset_dir=args.dataset_dir, device=cli.device_spec(args),
        device_flag=cli.device_flag(args), argv=tuple(argv),
        communicator=getattr(args, 'communicator', None))


def resumed(run):
    """The run to train: ``run`` itself, or where it resumes without a
    seed, ``run`` with the seed its snapshot's run recorded.

    Raises:
        errors.UsageError: ``run.resume`` is not a file to resume from, or
            its run recorded another configuration (the number of epochs
            aside).
    """
    path = run.resume
    if path is None:
        return run
    if os.path.isdir(path):
        raise errors.UsageError('cannot resume: {} is a directory; give one '
                                'of its snapshot_iter_* files.'.format(path))
    if not os.path.isfile(path):
        raise errors.UsageError(
            'cannot resume: snapshot {} does not exist.'.format(path))
    try:
        recorded = result_dir.read_args(os.path.dirname(os.path.abspath(
            path)))
    except errors.ResultError:
        # Without a readable record beside it, the snapshot itself must fit.
        return run
    config, theirs = run.config, recorded['config']
    differs = presets.differences(theirs, config, ignore=('epoch',))
    if differs:
        raise errors.UsageError(
            'cannot resume from {}: its run was trained with other {} ({}); '
            'give the same flags, or start a new run.'.format(
                path, 'values' if len(differs) > 1 else 'value',
                ', '.join('{} {!r}, not {!r}'.format(
                    key, theirs.get(key), config.get(key))
                    for key in differs)))
    if run.seed is not None:
        return run
    return dataclasses.replace(run, seed=recorded.get('seed'))
