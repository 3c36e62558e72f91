"""What data-parallel training spends on communication, the table of
``bench_allreduce.py``: the gradient all-reduce of one iteration against a
copy of the same bytes in memory, measured in the same process."""
import numpy

from quantized_net.benchmarks import timing
from quantized_net.training import presets

#: ``(name, configuration)`` of the networks whose gradients are reduced.
NETWORKS = (
    ('seed, 2 x 1000', dict(presets.PRESETS['seed'], preset='seed')),
    ('bnn, 3 x 4096', dict(presets.PRESETS['bnn'], preset='bnn')),
)


def time_allreduce(comm, rounds, networks=NETWORKS):
    """Times ChainerMN's ``multi_node_mean_grad`` (what the multi-node
    optimizer calls once an iteration) on each network's gradients, and a
    copy of as many bytes, round by round, each call begun together by
    every process and ended when the last is done
    (:func:`~quantized_net.benchmarks.timing.median_seconds`, after one
    untimed call each).

    Args:
        comm: A ChainerMN communicator; every process calls this.
        rounds (int): Timed rounds.
        networks: ``(name, configuration)`` pairs.

    Returns:
        list: ``(name, bytes, all-reduce seconds, copy seconds)`` for each
        network, the bytes those of its parameters (and gradients).
    """
    rows = []
    for name, config in networks:
        model = presets.build_classifier(config)
        for param in model.params():
            param.grad = numpy.ones_like(param.array)
        size = sum(param.array.nbytes for param in model.params())
        flat = numpy.ones(size // 4, numpy.float32)
        copy = numpy.empty_like(flat)
        medians = timing.median_seconds(
            [('all-reduce', lambda: comm.multi_node_mean_grad(model)),
             ('copy', lambda: numpy.copyto(copy, flat))],
            rounds, warmup=1, synchronize=comm.mpi_comm.Barrier)
        rows.append((name, size, medians['all-reduce'], medians['copy']))
    return rows
