"""How a run is spread over processes, as one object the trainer plugs in.

:class:`SingleProcess` is the default: one process trains on the whole
data set, at the whole batch, and writes every file. A data-parallel run
plugs in another object with the same methods
(:class:`multi_node.MultiNode`): each says what one process of such a run
does differently, so that :mod:`session` and :mod:`trainer` do not ask how
many processes there are.
"""
import contextlib

from quantized_net import cli
from quantized_net.training import claim
from quantized_net.training import snapshot


class SingleProcess(object):
    """A run of one process.

    Attributes:
        size (int): The number of processes.
        rank (int): This process's index among them.
        recorded_size (int): The number of processes ``args.json`` records;
            None, as a single-process run records none.
    """

    size = 1
    rank = 0
    recorded_size = None

    @property
    def writer(self):
        """Whether this process reads the data set, prints, and writes the
        result files: one process of a run does."""
        return self.rank == 0

    def first(self, work):
        """What ``work()`` returns, computed by the writer and given to
        every process: reading files, say, which only the writer may see.
        """
        return work()

    def device(self, run):
        """This process's Chainer device for ``run``, made current."""
        return cli.get_device(run.device, run.device_flag)

    def seed(self, seed):
        """This process's random seed, of the run's ``seed``."""
        return seed

    def shard(self, dataset, shuffle_seed=None):
        """This process's part of ``dataset`` (None but in the writer);
        with ``shuffle_seed``, the parts are of the shuffled data set."""
        return dataset

    def batch(self, batchsize):
        """This process's part of a batch of ``batchsize`` images."""
        return batchsize // self.size

    def total(self, array):
        """The sum over the processes of a float64 NumPy ``array``."""
        return array

    def model(self, model):
        """The model this process trains, of the run's ``model``."""
        return model

    def optimizer(self, optimizer):
        """The optimizer this process updates with, of ``optimizer``."""
        return optimizer

    def loss(self, model):
        """The loss function this process differentiates."""
        return model

    def extend(self, trainer):
        """Adds the extensions that the processes need, first of all."""

    def evaluator(self, evaluator):
        """The evaluator to extend the trainer with, of ``evaluator``."""
        return evaluator

    def snapshot(self, record=None):
        """The snapshot extension, keeping the latest snapshot, recording
        ``record`` (a :class:`run_record.Record`)."""
        return snapshot.Snapshot(n_retains=1, record=record)

    def claim(self, out, resume=None, replace=False):
        """The context that holds the result directory (see
        :func:`claim.claim`) where this process writes it."""
        if not self.writer:
            return contextlib.nullcontext()
        return claim.claim(out, resume, replace)

    def load_snapshot(self, path, trainer):
        """Loads the snapshot ``path`` into ``trainer``."""
        snapshot.load_snapshot(path, trainer, processes=self.size)

    def start(self, optimizer):
        """Makes the processes agree before the first update."""
