"""benchmarks/allreduce.py: the all-reduce of each network's gradients and
the copy of as many bytes, each timed between barriers."""
import types

import pytest

from quantized_net.benchmarks import allreduce
from quantized_net.training import presets

SMALL = (('seed, 2 x 8', dict(presets.PRESETS['seed'], preset='seed',
                              unit=8)),
         ('bnn, 3 x 4', dict(presets.PRESETS['bnn'], preset='bnn',
                             unit=4)))


class FakeCommunicator(object):
    """A communicator whose all-reduce takes 5 ms of the fake clock; logs
    barriers and the gradients it reduced."""

    def __init__(self, clock):
        self.clock, self.log = clock, []
        self.mpi_comm = types.SimpleNamespace(
            Barrier=lambda: self.log.append('barrier'))

    def multi_node_mean_grad(self, model):
        grads = [param.grad for param in model.params()]
        assert all((grad == 1).all() for grad in grads)
        self.log.append(sum(grad.nbytes for grad in grads))
        self.clock.advance(0.005)


def test_each_networks_gradients_are_reduced_and_timed(fake_clock):
    comm = FakeCommunicator(fake_clock)
    rows = allreduce.time_allreduce(comm, rounds=3, networks=SMALL)
    sizes = [sum(p.array.nbytes for p in presets.build_classifier(
        config).params()) for _, config in SMALL]
    assert [(name, size) for name, size, _, _ in rows] == [
        ('seed, 2 x 8', sizes[0]), ('bnn, 3 x 4', sizes[1])]
    for _, _, reduce, copy in rows:
        assert reduce == pytest.approx(0.005)
        assert copy == 0  # the copy does not move the fake clock
    # Per network: an untimed all-reduce, then in each round the
    # all-reduce and the copy, each between two barriers.
    per_round = ['barrier', sizes[0], 'barrier', 'barrier', 'barrier']
    assert comm.log[:1 + 3 * 5] == [sizes[0]] + per_round * 3


def test_the_networks_are_the_seed_and_bnn_presets():
    assert [name for name, _ in allreduce.NETWORKS] == [
        'seed, 2 x 1000', 'bnn, 3 x 4096']
    for (_, config), preset in zip(allreduce.NETWORKS, ('seed', 'bnn')):
        assert config == dict(presets.PRESETS[preset], preset=preset)
