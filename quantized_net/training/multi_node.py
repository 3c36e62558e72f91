"""Data-parallel training over MPI with ChainerMN: what a process of
``train_mnist_mn.py`` adds to a single-process run.

Each of the ``N`` processes (ranks) trains on its shard of the training
set with ``B / N`` images of the global batch ``B``; after each backward the
multi-node optimizer averages the gradients, so every rank applies the same
update to the same parameters. What makes that the single-process run at
batch ``B``, as far as it can be:

* batch normalisation computes its statistics over the whole global batch
  (``chainermn.links.create_mnbn_model``);
* each rank's loss is divided by ``N`` (:func:`loss`) and the averaged
  gradients multiplied by ``N`` (:class:`SumGradients`): the gradient
  quantizer then sees each example's gradient at the scale one process
  gives it, and Adam the global batch's gradient;
* the multi-node optimizer's first update only broadcasts rank 0's
  parameters; :func:`broadcast_parameters` does that before training, so
  every update is one (an epoch has as many updates as with one process);
* the reported loss and accuracy are averaged over the ranks every
  iteration (:class:`AverageObservations`), the evaluators over their
  shards (``chainermn.create_multi_node_evaluator``);
* extensions that change state (the evaluators, the learning-rate decay,
  the snapshot) run on every rank; rank 0 alone prints and writes files;
* the snapshot (:class:`Snapshot`) holds what differs between ranks (their
  iterators and random generators) beside rank 0's trainer, and
  :func:`load_snapshot` gives each rank its own on resume.

:class:`MultiNode` is all of that as the object a run plugs in (see
:mod:`processes`).

The rest differs from one process by float rounding only (the sums are
taken in another order); with the ``seed`` quantizer a difference of
rounding can move a value across a quantization level, after which the
runs part more (see docs/multi_node.md).
"""
import contextlib
import os
import sys
import time
import traceback

import numpy

import chainer
from chainer import training
import chainermn

from quantized_net import cli
from quantized_net.training import processes
from quantized_net.training import run_record
from quantized_net.training import safe_npz
from quantized_net.training import snapshot
from quantized_net import errors
from quantized_net import signals

COMMUNICATORS = ('naive', 'flat', 'pure_nccl')
# Multi-node batch normalisation is marked experimental; it is what makes a
# run at N processes the run at one.
chainer.disable_experimental_feature_warning = True
ABORT_GRACE_SECONDS = 1.0
RANKS_PREFIX = 'ranks/'
#: The trainer's state that differs between ranks, by key prefix.
PER_RANK = ('updater/iterator:', 'extensions/RandomState/')


def create_communicator(name):
    """A ChainerMN communicator; UsageError if it cannot be made here."""
    try:
        comm = chainermn.create_communicator(name)
    except Exception as e:  # NCCL or CUDA missing, an unknown name
        raise errors.UsageError('cannot create the {} communicator ({}); use '
                                '--communicator naive on the CPU.'.format(
                                 name, ' '.join(str(e).split())))
    # One copy per parameter: chainermn's batched copy compiles a kernel
    # that names CUDA's half type without including its header, which CuPy
    # 14's carray.cuh no longer brings in ('identifier "half" is
    # undefined'); a model of a few matrices loses nothing by it. Set
    # directly, as pure_nccl's set_config drops the value it passes on.
    with comm.config_scope():
        comm.batched_copy = False
    return comm


def loss(model, comm):
    """The loss each rank differentiates: its shard's mean loss divided by
    the number of ranks (see the module's description)."""
    def scaled(*arrays):
        return model(*arrays) / comm.size
    return scaled


class SumGradients(object):
    """Optimizer hook: the multi-node optimizer averages the ranks'
    gradients; multiplying by their number makes it their sum, the
    gradient of the global batch's mean loss (see :func:`loss`). Exact for
    every number of ranks that is a power of two."""

    name = 'SumGradients'
    call_for_each_param = True
    timing = 'pre'

    def __init__(self, size):
        self.size = size

    def __call__(self, rule, param):
        if param.grad is not None:
            param.grad *= param.grad.dtype.type(self.size)


def broadcast_parameters(optimizer, comm):
    """Gives every rank rank 0's parameters now, and tells the multi-node
    optimizer so, lest its first update do that instead of updating."""
    comm.bcast_data(optimizer.target)
    optimizer.is_changed(optimizer.target)


class AverageObservations(training.Extension):
    """Replaces this iteration's training loss and accuracy by their mean
    over the ranks, on every rank, before anything reads them."""

    trigger = 1, 'iteration'
    priority = training.PRIORITY_WRITER + 3
    keys = ('main/loss', 'main/accuracy')

    def __init__(self, comm):
        self.comm = comm

    def __call__(self, trainer):
        observation = trainer.observation
        values = numpy.array([float(getattr(observation[key], 'array',
                                            observation[key]))
                              for key in self.keys], numpy.float64)
        total = self.comm.mpi_comm.allreduce(values)
        for key, value in zip(self.keys, total / self.comm.size):
            observation[key] = value


class Snapshot(snapshot.Snapshot):
    """The snapshot of a multi-node run, written by rank 0: rank 0's whole
    trainer, the number of ranks, and under ``ranks/R/`` what only rank
    ``R`` holds (:data:`PER_RANK`: its iterator and its random generator;
    the model, the optimizer and the extensions are the same on every
    rank, so only rank 0's are sent). Every rank takes part; see
    :func:`load_snapshot`."""

    def __init__(self, comm, n_retains=1, record=None):
        super(Snapshot, self).__init__(n_retains, record)
        self.comm = comm

    def arrays(self, trainer):
        ours = super(Snapshot, self).arrays(trainer)
        everyone = self.comm.gather_obj(
            {key: value for key, value in ours.items()
             if key.startswith(PER_RANK)})
        if self.comm.rank != 0:
            return None
        merged = dict(ours)
        merged[snapshot.PROCESSES_KEY] = numpy.array(self.comm.size)
        for rank, theirs in enumerate(everyone[1:], 1):
            merged.update(('{}{}/{}'.format(RANKS_PREFIX, rank, key), value)
                          for key, value in theirs.items())
        return merged


def load_snapshot(path, trainer, comm):
    """Resumes every rank from a :class:`Snapshot` file, which rank 0 reads
    (never unpickling) and sends to the others. If it cannot be read or
    loaded, or was written by another number of ranks, the first rank that
    fails raises UsageError and the others end quietly."""
    arrays, error = None, None
    if comm.rank == 0:
        try:
            arrays = safe_npz.read_npz(path)
        except errors.ResultError as e:
            error = 'cannot resume: {}'.format(e)
    arrays, error = comm.bcast_obj((arrays, error) if comm.rank == 0
                                   else None)
    if error is None:
        ours = '{}{}/'.format(RANKS_PREFIX, comm.rank)
        view = {key: value for key, value in arrays.items()
                if not key.startswith(RANKS_PREFIX)}
        view.update((key[len(ours):], value)
                    for key, value in arrays.items() if key.startswith(ours))
        try:
            snapshot.load_snapshot(path, trainer, view, comm.size)
        except errors.UsageError as e:
            error = str(e)
    messages = comm.mpi_comm.allgather(error)
    failed = [rank for rank, e in enumerate(messages) if e]
    if failed:
        if comm.rank == failed[0]:
            raise errors.UsageError(messages[failed[0]])
        raise SystemExit(1)  # the first rank that failed says why


class MultiNode(processes.SingleProcess):
    """One process of a data-parallel run over MPI, as the object a run
    plugs in (see :mod:`processes`): its shard of the data, its part of
    the batch, batch statistics and gradients over every process, rank 0
    the writer.

    Args:
        name (str): The ChainerMN communicator (:data:`COMMUNICATORS`).

    Raises:
        errors.UsageError: The communicator cannot be made here.
    """

    def __init__(self, name):
        self.comm = create_communicator(name)
        self.size = self.comm.size
        self.rank = self.comm.rank
        self.recorded_size = self.comm.size

    def first(self, work):
        return self.comm.bcast_obj(work() if self.writer else None)

    def device(self, run):
        # Each process a GPU of its own: that of its index on its host.
        if run.on_gpu:
            spec = '@cupy:{}'.format(self.comm.intra_rank)
            return cli.get_device(spec, '--device ' + spec)
        return super(MultiNode, self).device(run)

    def seed(self, seed):
        # Each process a seed of its own: its shuffles and dropout masks
        # (in NumPy's range, which the run's seed may reach the top of).
        return (seed + self.rank) % run_record.SEED_LIMIT

    def shard(self, dataset, shuffle_seed=None):
        return chainermn.scatter_dataset(
            dataset, self.comm, shuffle=shuffle_seed is not None,
            seed=shuffle_seed)

    def total(self, array):
        return self.comm.mpi_comm.allreduce(array)

    def model(self, model):
        return chainermn.links.create_mnbn_model(model, self.comm)

    def optimizer(self, optimizer):
        optimizer = chainermn.create_multi_node_optimizer(optimizer,
                                                          self.comm)
        optimizer.add_hook(SumGradients(self.size))
        return optimizer

    def loss(self, model):
        return loss(model, self.comm)

    def extend(self, trainer):
        # Average the loss and accuracy over the processes every
        # iteration, before the NaN check and the log read them.
        trainer.extend(AverageObservations(self.comm))

    def evaluator(self, evaluator):
        return chainermn.create_multi_node_evaluator(evaluator, self.comm)

    def snapshot(self, record=None):
        return Snapshot(self.comm, n_retains=1, record=record)

    def load_snapshot(self, path, trainer):
        load_snapshot(path, trainer, self.comm)

    def start(self, optimizer):
        broadcast_parameters(optimizer, self.comm)


def default_communicator(run):
    """The communicator of ``run``: the one it names, else pure_nccl on
    GPUs and naive on the CPU."""
    return run.communicator or ('pure_nccl' if run.on_gpu else 'naive')


def world():
    """MPI's world communicator; UsageError where mpi4py or an MPI library
    is missing."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as e:  # RuntimeError: no libmpi
        raise errors.UsageError(
            'this needs MPI ({}); install it with pip install -r '
            'requirements-mpi.txt, and run under mpiexec.'.format(
                ' '.join(str(e).split())))
    return MPI.COMM_WORLD


def run(prog, main, interrupted=None):
    """:func:`cli.run` for one rank: a rank that fails prints its one line
    and aborts the whole job, so that no rank waits forever for it. A
    signal that every rank gets (mpiexec passes Ctrl-C on) is reported by
    rank 0 alone, which ends the job; another rank that got one waits
    :data:`signals.RANK_GRACE_SECONDS` for that, and if the job is still
    there (the signal reached it alone: a kill of its process), says so
    itself and ends the job."""
    try:
        mpi = world()
    except errors.UsageError as e:
        sys.exit('{}: error: {}'.format(prog, e))
    try:
        cli.run(prog, main, interrupted, report_signals=mpi.rank == 0)
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            abort(mpi, 1)
        endings = {status: what for what, status in signals.ENDINGS.values()}
        if mpi.rank and e.code in endings:
            time.sleep(signals.RANK_GRACE_SECONDS)
            print(signals.line(endings[e.code], mpi.rank), file=sys.stderr)
            abort(mpi, e.code)
        # Quiet: another rank says why, and is given time to.
        abort(mpi, e.code, ABORT_GRACE_SECONDS * 2)
    except BaseException:
        traceback.print_exc()
        abort(mpi, 1)


@contextlib.contextmanager
def quiet_unless_first(rank):
    """Silences stderr in the ``with`` block on every rank but rank 0:
    every rank reads the same flags, and one says what is wrong."""
    if rank == 0:
        yield
        return
    stderr = sys.stderr
    with open(os.devnull, 'w') as sys.stderr:
        try:
            yield
        finally:
            sys.stderr = stderr


def abort(mpi, status, grace=ABORT_GRACE_SECONDS):
    """Ends every process of the job, after giving mpiexec time to pass on
    what this one printed (an abort kills its forwarding too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(grace)
    mpi.Abort(status)
