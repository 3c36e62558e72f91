"""A sweep: one training run per cell of a grid of weight x activation bit
widths, each ``train_mnist.py`` in a process of its own; what ``sweep.py``
runs.

Each cell is a run in ``OUT/cells/wW_aA``. A cell already finished with the
same configuration and seed is reused, one interrupted is resumed from its
latest snapshot, and one trained with another configuration stops the sweep
unless ``--retrain`` asks to train it again (:func:`cell_state`). Under
``mpiexec``, process ``R`` of ``N`` trains cells ``R, R + N, ...`` and
process 0 gathers the rows (:func:`share`, :func:`interleave`) and writes
the results (:mod:`sweep_results`).
"""
import argparse
import dataclasses
import importlib.util
import os
import signal
import stat
import subprocess
import sys
import time
from typing import Optional, Tuple

from quantized_net import cli
from quantized_net.training import claim
from quantized_net.training import flags
from quantized_net.training import presets
from quantized_net.training import reported
from quantized_net.training import result_dir
from quantized_net.training import sweep_results
from quantized_net import errors
from quantized_net import signals
from quantized_net import untrusted_file

NEW, DONE, INTERRUPTED, OTHER = 'new', 'done', 'interrupted', 'other'
#: Seconds a cell is given to end cleanly when the sweep is interrupted:
#: a run removes its temporary files and releases its lock in well under
#: one.
CELL_GRACE_SECONDS = 30


def bits_list(text):
    """Argument type: bit widths from 1 to 16 or ``none``, separated by
    commas."""
    values = []
    for item in text.split(','):
        item = item.strip()
        if item == 'none':
            values.append(item)
            continue
        try:
            bits = int(item)
        except ValueError:
            bits = 0
        if not 1 <= bits <= 16:
            raise argparse.ArgumentTypeError(
                'expected bit widths from 1 to 16 or "none", separated by '
                'commas, got {!r}'.format(text))
        values.append(bits)
    return values


def add_flags(parser):
    """sweep.py's flags: the grid, and every flag of train_mnist.py's
    configuration but the two quantizers the grid sets."""
    parser.add_argument('--out', '-o', default='sweep',
                        help='Directory for the cells and the results')
    parser.add_argument('--bits', type=bits_list,
                        default=[1, 2, 4, 8, 'none'],
                        help='Bit widths for weights and activations, e.g. '
                             '1,2,4,8,none (linear:K; 1 is sign)')
    parser.add_argument('--weight-bits', type=bits_list,
                        help='Bit widths for weights (default: --bits)')
    parser.add_argument('--act-bits', type=bits_list,
                        help='Bit widths for activations (default: --bits)')
    parser.add_argument('--seed', type=cli.int_at_least(0, flags.MAX_SEED),
                        default=0, help='Random seed of every cell')
    parser.add_argument('--retrain', action='store_true',
                        help='Train again the cells trained before with '
                             'another configuration (their files are '
                             'replaced)')
    cli.add_device_flags(parser)
    cli.add_dataset_flag(parser)
    # Every cell's configuration; the grid sets the weight and activation
    # quantizers. Small and fast by default, in hard-tanh units.
    flags.add_config_flags(parser, skip=('weight_quant', 'act_quant'))
    parser.set_defaults(preset='float', grad_quant='none',
                        activation='htanh', epoch=3, unit=256, layers=2)


def spec(bits):
    """The quantizer spec of a bit width: ``linear:K`` or ``none``."""
    return 'none' if bits == 'none' else 'linear:{}'.format(bits)


@dataclasses.dataclass(frozen=True)
class Sweep(object):
    """A sweep as its command line describes it.

    Attributes:
        out (str): The directory of the cells and the results.
        weight_bits, act_bits (tuple): The grid's bit widths.
        seed (int): Every cell's seed.
        retrain (bool): Whether to train again cells of another
            configuration.
        preset (str): Every cell's preset.
        config_flags (tuple): ``(key, value)`` of the configuration flags
            every cell is given.
        config_items (tuple): ``(key, value)`` of the configuration they
            give, but the grid's quantizers.
        device_flags (tuple): The device flag every cell is given.
        dataset_dir (str): Where the MNIST files are, or None.
        train_script (str): The path of train_mnist.py.
    """

    out: str
    weight_bits: Tuple
    act_bits: Tuple
    seed: int
    retrain: bool
    preset: str
    config_flags: Tuple[tuple, ...]
    config_items: Tuple[tuple, ...]
    device_flags: Tuple[str, ...]
    dataset_dir: Optional[str]
    train_script: str

    @property
    def config(self):
        """The configuration every cell shares, a new dict at each call."""
        return dict(self.config_items)

    def cells(self):
        """``[(weight bits, activation bits)]``, row by row."""
        return [(w, a) for w in self.weight_bits for a in self.act_bits]

    def cell_config(self, weight_bits, act_bits):
        """The configuration a cell trains with."""
        return dict(self.config, weight_quant=spec(weight_bits),
                    act_quant=spec(act_bits))

    def cells_dir(self):
        """The directory that holds the cells' result directories."""
        return os.path.join(self.out, 'cells')

    def cell_dir(self, weight_bits, act_bits):
        """The result directory of a cell."""
        return os.path.join(self.cells_dir(), 'w{}_a{}'.format(
            weight_bits, act_bits))


def check_own_directory(path):
    """errors.UsageError unless ``path`` is missing or a directory itself,
    not a link (to a directory elsewhere, say): a sweep writes its cells
    inside its own ``--out`` only."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise errors.UsageError(errors.os_error(e))
    if not stat.S_ISDIR(mode):
        raise errors.UsageError(
            '{} is {}, not a directory of this sweep; sweep.py writes its '
            'cells inside its own --out only. Remove it, or choose another '
            '--out.'.format(path, untrusted_file.kind(mode)))


def describe(args, train_script):
    """The :class:`Sweep` of the flags of :func:`add_flags` (parsed into
    ``args``), whose cells ``train_script`` trains."""
    device_flags = (('--device', str(args.device)) if args.device is not None
                    else ('--gpu', str(args.gpu)) if args.gpu != -1 else ())
    return Sweep(
        out=args.out, weight_bits=tuple(args.weight_bits or args.bits),
        act_bits=tuple(args.act_bits or args.bits), seed=args.seed,
        retrain=args.retrain, preset=args.preset,
        config_flags=tuple((key, getattr(args, key))
                           for key in flags.CONFIG_FLAGS
                           if getattr(args, key, None) is not None),
        config_items=tuple(flags.config_from_args(args).items()),
        device_flags=device_flags, dataset_dir=args.dataset_dir,
        train_script=train_script)


def cell_state(sweep, weight_bits, act_bits):
    """``(state, what differs)`` of a cell: :data:`NEW` (nothing there),
    :data:`DONE` (finished with this configuration and seed),
    :data:`INTERRUPTED` (started with them) or :data:`OTHER` (a run of
    another configuration or seed; what differs names the keys)."""
    directory = sweep.cell_dir(weight_bits, act_bits)
    if not os.path.isdir(directory) or not result_dir.run_files(directory):
        return NEW, None
    try:
        recorded = result_dir.read_args(directory)
    except errors.ResultError:
        recorded = {'config': {}}
    differs = presets.differences(recorded['config'],
                                  sweep.cell_config(weight_bits, act_bits))
    if recorded.get('seed') != sweep.seed:
        differs.append('seed')
    if differs:
        return OTHER, differs
    if os.path.isfile(os.path.join(directory, result_dir.MODEL_FILE)):
        return DONE, None
    return INTERRUPTED, None


def train_command(sweep, weight_bits, act_bits, resume=None, replace=False):
    """The command line that trains a cell."""
    command = [sys.executable, sweep.train_script,
               '--preset', sweep.preset,
               '--weight-quant', spec(weight_bits),
               '--act-quant', spec(act_bits),
               '--seed', str(sweep.seed), '--noplot',
               '--out', sweep.cell_dir(weight_bits, act_bits)]
    if resume:
        command += ['--resume', resume]
    if replace:
        command += ['--replace']
    for key, value in sweep.config_flags:
        command += [flags.flag(key), str(value)]
    command += list(sweep.device_flags)
    if sweep.dataset_dir is not None:
        command += ['--dataset-dir', sweep.dataset_dir]
    return command


def train_cell(sweep, weight_bits, act_bits, resume=None, replace=False):
    """Trains a cell in a process of its own; errors.UsageError with what
    it printed if it fails."""
    env = dict(os.environ)
    if under_mpiexec():  # the processes share the cores: a thread each
        env.update(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    process = subprocess.Popen(
        train_command(sweep, weight_bits, act_bits, resume, replace),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env)
    try:
        _, stderr = process.communicate()
    except (KeyboardInterrupt, signals.Terminated) as e:
        # The cell ends as a run does on the same signal: its temporary
        # files removed, its lock released, its snapshot named.
        process.send_signal(signal.SIGINT if isinstance(
            e, KeyboardInterrupt) else signal.SIGTERM)
        try:
            process.communicate(timeout=CELL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        raise
    if process.returncode != 0:
        # The cell's run ends with its one line; the sweep's says so too.
        lines = stderr.strip().splitlines()
        raise errors.UsageError('cell w={} a={} failed: {}'.format(
            weight_bits, act_bits, lines[-1] if lines else
            'exit status {}'.format(process.returncode)))


def run_cell(sweep, weight_bits, act_bits):
    """Trains, resumes or reuses one cell; whether it was done before."""
    directory = sweep.cell_dir(weight_bits, act_bits)
    check_own_directory(directory)
    state, differs = cell_state(sweep, weight_bits, act_bits)
    if state == DONE:
        return True
    if state == OTHER and not sweep.retrain:
        raise errors.UsageError(
            '{} was trained with another configuration ({} differ); give '
            '--retrain to train it again, or choose another --out.'.format(
                directory, ', '.join(differs)))
    latest = result_dir.snapshots(directory) if state == INTERRUPTED \
        else []
    print('{} weights {} activations {} ...'.format(
        'resuming' if latest else 'training', spec(weight_bits),
        spec(act_bits)), flush=True)
    train_cell(sweep, weight_bits, act_bits,
               resume=os.path.join(directory, latest[-1][1]) if latest
               else None, replace=state != NEW and not latest)
    return False


def read_cell(directory):
    """What a finished cell reports (see :mod:`reported`): its test error,
    training loss and epoch, and how long it trained."""
    redo = ('; remove {} to train the cell again, or choose another '
            '--out.'.format(directory))
    try:
        log = result_dir.read_log(directory)
    except errors.ResultError as e:
        raise errors.ResultError(str(e).rstrip('.') + redo)
    result = reported.reported(log)
    if result is None or result.test_error is None:
        raise errors.ResultError('the log of {} reports no test error{}'
                                 .format(directory, redo))
    seconds = reported.number(log[-1].get('elapsed_time')) if log else None
    return {'test_error': round(result.test_error, 2),
            'train_loss': (None if result.train_loss is None
                           else round(result.train_loss, 4)),
            'seconds': None if seconds is None else round(seconds, 1),
            'reported_epoch': result.epoch, 'chosen_by': result.chosen_by}


def run_one(sweep, weight_bits, act_bits):
    """The row of one cell, trained, resumed or reused."""
    finished = run_cell(sweep, weight_bits, act_bits)
    config = sweep.config
    row = dict(read_cell(sweep.cell_dir(weight_bits, act_bits)),
               weight_bits=weight_bits, act_bits=act_bits,
               weight_quant=spec(weight_bits), act_quant=spec(act_bits),
               grad_quant=config['grad_quant'], unit=config['unit'],
               layers=config['layers'], epoch=config['epoch'])
    print('{:>7} {:>7}: test error {:.2f}% at {}{}'.format(
        spec(weight_bits), spec(act_bits), row['test_error'],
        reported.describe_epoch(row['reported_epoch'], row['chosen_by']),
        ' (done before)' if finished else ''), flush=True)
    return row


def share(cells, rank, size):
    """The cells process ``rank`` of ``size`` trains: every size-th."""
    return cells[rank::size]


def interleave(shares):
    """The rows of every cell, in the grid's order, of each process's rows
    of its :func:`share`."""
    size = len(shares)
    count = sum(len(rows) for rows in shares)
    return [shares[i % size][i // size] for i in range(count)]


def run(sweep, mpi=None):
    """Runs ``sweep``; with ``mpi`` (an mpi4py communicator), this
    process's share of it. The process of rank 0 holds ``sweep.out`` for
    the whole sweep, and writes the results."""
    start = time.time()
    rank, size = (mpi.rank, mpi.size) if mpi else (0, 1)
    if rank == 0 and importlib.util.find_spec('matplotlib') is None:
        # Before any cell trains: the heat map comes last.
        raise errors.UsageError('sweep.py draws results.png with '
                                'matplotlib: pip install matplotlib')
    lock = None
    if rank == 0:
        # The cells' files are the deepest a sweep writes.
        claim.check_length(sweep.out, longest=len(os.path.join(
            'cells', 'wnone_anone')) + 1 + result_dir.LONGEST_NAME)
        claim.make_directory(sweep.out)
        lock = claim.DirectoryLock(sweep.out).acquire()
    try:
        if rank == 0:
            check_own_directory(sweep.cells_dir())
        if mpi:
            mpi.barrier()  # the directory is held before any cell starts
        rows = [run_one(sweep, w, a)
                for w, a in share(sweep.cells(), rank, size)]
        if mpi:
            shares = mpi.gather(rows)
            if rank:
                return
            rows = interleave(shares)
        sweep_results.write_results(sweep, rows)
        print('wall time of this invocation: {:.0f} s'.format(
            time.time() - start))
    finally:
        if lock:
            lock.release()


def under_mpiexec():
    """Whether mpiexec started this process among several (MPICH's and
    Open MPI's variables)."""
    size = os.environ.get('PMI_SIZE') or os.environ.get(
        'OMPI_COMM_WORLD_SIZE')
    return bool(size) and size.isdigit() and int(size) > 1
