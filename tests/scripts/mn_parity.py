"""Run under ``mpiexec -n 2``: trains the same network for a few
iterations as N ranks at B/N images each (multi_node.py's way) and as one
process at B images, and prints, on rank 0, one JSON line: for each
parameter the largest difference between the two, and that of the last
iteration's gradient; whether every rank holds the same parameters; and
the largest difference between batch normalisation's statistics
recomputed over the batch (population_statistics) by the ranks and by the
one process. Used by test_train_mnist_mn.py.

    mpiexec -n 2 python tests/scripts/mn_parity.py PRESET ITERATIONS
"""
import json
import sys

import numpy

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import multi_node
from quantized_net.training import population_statistics
from quantized_net.training import presets
import chainer
import chainermn


def statistics_differences(single, parallel, x, t, ours, comm):
    """Batch normalisation's statistics recomputed over the batch by the
    one process and by the ranks (each over its part, the sums totalled),
    with the same weights: for each layer, the largest difference of the
    means in standard deviations and of the variances relative to
    themselves (both with the layer's epsilon)."""
    parallel.copyparams(single)
    cpu = chainer.get_device('@numpy')
    population_statistics.recompute(
        single, chainer.datasets.TupleDataset(x, t), len(x), 1, cpu)
    population_statistics.recompute(
        parallel, chainer.datasets.TupleDataset(x[ours], t[ours]),
        len(x[ours]), 1, cpu, total=comm.mpi_comm.allreduce)
    differences = []
    for a, b in zip(population_statistics.normalised_links(single),
                    population_statistics.normalised_links(parallel)):
        var = a.avg_var + a.eps
        differences += [
            float((numpy.abs(a.avg_mean - b.avg_mean) / numpy.sqrt(var))
                  .max()),
            float((numpy.abs(a.avg_var - b.avg_var) / var).max())]
    return differences


def main():
    preset, iterations = sys.argv[1], int(sys.argv[2])
    comm = multi_node.create_communicator('naive')
    config = dict(presets.PRESETS[preset], preset=preset, unit=32,
                  batchsize=64)
    rng = numpy.random.RandomState(0)
    x = rng.rand(config['batchsize'], 784).astype(numpy.float32)
    t = rng.randint(0, 10, config['batchsize']).astype(numpy.int32)
    share = len(x) // comm.size
    ours = slice(comm.rank * share, (comm.rank + 1) * share)

    numpy.random.seed(1)
    single = presets.build_classifier(config)
    parallel = chainermn.links.create_mnbn_model(
        presets.build_classifier(config), comm)
    parallel.copyparams(single)
    single_opt = presets.build_optimizer(single, config)
    parallel_opt = chainermn.create_multi_node_optimizer(
        presets.build_optimizer(parallel, config), comm)
    parallel_opt.add_hook(multi_node.SumGradients(comm.size))
    multi_node.broadcast_parameters(parallel_opt, comm)
    for _ in range(iterations):
        single_opt.update(single, x, t)
        parallel_opt.update(multi_node.loss(parallel, comm), x[ours],
                            t[ours])

    mine = dict((name, p.array.copy()) for name, p in
                parallel.namedparams())
    grads = dict((name, p.grad) for name, p in parallel.namedparams())
    everyone = comm.gather_obj(mine)
    statistics = statistics_differences(single, parallel, x, t, ours, comm)
    if comm.rank:
        return
    same_on_every_rank = all(
        numpy.array_equal(theirs[name], mine[name])
        for theirs in everyone for name in mine)
    differences = {
        name: float(numpy.abs(p.array - mine[name]).max())
        for name, p in single.namedparams()}
    grad_differences = {
        name: float(numpy.abs(p.grad - grads[name]).max())
        for name, p in single.namedparams()}
    print(json.dumps({'same_on_every_rank': same_on_every_rank,
                      'differences': differences,
                      'grad_differences': grad_differences,
                      'statistics_differences': statistics}))


if __name__ == '__main__':
    main()
