"""A training run as its command line describes it: built once from the
parsed flags, never changed after (:class:`Run` is frozen), and passed to
everything that trains (:mod:`session`, :mod:`trainer`, the processes).

Resuming a run changes what the flags alone say in one way: without
``--seed``, the run keeps the seed its snapshot recorded. :func:`resumed`
checks the flags against the run the snapshot records (its configuration
and seed, :mod:`run_record`), wherever the snapshot is, and gives the run
that is then trained, a new description; :func:`record` checks the data
and gives what the run's snapshots record.
"""
import dataclasses
import os
import stat
from typing import Optional, Tuple, Union

from quantized_net import cli
from quantized_net.training import flags
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import run_record
from quantized_net import errors
from quantized_net import untrusted_file


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
        continues (run_record.Record): What the snapshot it resumes from
            records of its run (set by :func:`resumed`); None for a new
            run, or a snapshot that records nothing.
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
    continues: Optional[run_record.Record] = None

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


def _check_snapshot_file(path):
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise errors.UsageError(
            'cannot resume: snapshot {} does not exist.'.format(path))
    except OSError as e:
        raise errors.UsageError('cannot resume: {}'.format(
            errors.os_error(e, 'read')))
    if stat.S_ISDIR(mode):
        raise errors.UsageError('cannot resume: {} is a directory; give one '
                                'of its snapshot_iter_* files.'.format(path))
    if not stat.S_ISREG(mode):
        raise errors.UsageError(
            'cannot resume: {} is {}, not a regular file; give a '
            'snapshot_iter_* file.'.format(path, untrusted_file.kind(mode)))


def _check_config(path, theirs, config):
    differs = presets.differences(theirs, config, ignore=('epoch',))
    if differs:
        raise errors.UsageError(
            'cannot resume from {}: its run was trained with other {} ({}); '
            'give the same flags, or start a new run.'.format(
                path, 'values' if len(differs) > 1 else 'value',
                ', '.join('{} {!r}, not {!r}'.format(
                    key, theirs.get(key), config.get(key))
                    for key in differs)))


def _check_seed(path, theirs, seed):
    if seed is not None and seed != theirs:
        raise errors.UsageError(
            'cannot resume from {}: --seed {} was given, but its run was '
            'trained {}; leave --seed out, or start a new run.'.format(
                path, seed, 'without a seed' if theirs is None
                else 'with seed {}'.format(theirs)))


def resumed(run):
    """The run to train: ``run`` itself, or where it resumes, ``run`` with
    the record of the run it continues and, without ``--seed``, that
    run's seed.

    The snapshot's own record of its run is what is checked. A snapshot
    written before runs recorded one is checked against the ``args.json``
    of its directory, and refused without one.

    Raises:
        errors.UsageError: ``run.resume`` is not a file to resume from, its
            run was trained with another configuration (the number of
            epochs aside) or another seed than ``--seed``; one line.
            (Whether it may continue in its own directory is
            :func:`claim.claim`'s to say.)
    """
    path = run.resume
    if path is None:
        return run
    _check_snapshot_file(path)
    record = run_record.read(path)
    if record is not None:
        _check_config(path, record.config, run.config)
        _check_seed(path, record.seed, run.seed)
        seed = record.seed
    else:
        try:
            recorded = result_dir.read_args(os.path.dirname(os.path.abspath(
                path)), check=presets.check_config)
        except errors.ResultError as e:
            raise errors.UsageError(
                'cannot resume from {}: it does not record its run (an older '
                'version wrote it) and no record of its run is beside it '
                '({}); resume it in its own result directory, or start a '
                'new run.'.format(path, str(e).rstrip('.')))
        _check_config(path, recorded['config'], run.config)
        seed = recorded.get('seed')
    return dataclasses.replace(
        run, seed=seed if run.seed is None else run.seed, continues=record)


def _data_set(run):
    if run.dataset_dir:
        return '--dataset-dir {}'.format(run.dataset_dir)
    if os.environ.get('MNIST_DIR'):
        return 'MNIST_DIR {}'.format(os.environ['MNIST_DIR'])
    return 'the MNIST cache'


def record(run, data):
    """What the snapshots of ``run`` record of it, ``data`` the fingerprint
    of the data it trains on (:func:`run_record.fingerprint`): a run id
    of its own for a new run, that of the run it continues for a resumed
    one.

    Raises:
        errors.UsageError: ``run`` continues a run trained on other data.
    """
    theirs = run.continues
    if theirs is not None and theirs.data != data:
        raise errors.UsageError(
            'cannot resume from {}: its run was trained on other data than '
            '{} holds; give the data set it was trained on, or start a new '
            'run.'.format(run.resume, _data_set(run)))
    return run_record.Record(
        config_items=run.config_items, seed=run.seed,
        run_id=theirs.run_id if theirs else run_record.new_run_id(),
        data=data)
