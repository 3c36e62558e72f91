#!/usr/bin/env python3
"""What data-parallel training spends on communication: the gradient
all-reduce of one iteration, for the default and the bnn network.

    mpiexec -n 2 ./bench_allreduce.py              # the naive communicator

Each process holds the network's gradients; every round times ChainerMN's
``multi_node_mean_grad`` (what the multi-node optimizer calls once an
iteration) and, as the baseline measured in the same process, a copy of
the same bytes in memory. Rank 0 prints the median over the rounds and the
rate at which each process sent its gradients. docs/multi_node.md turns
these into a scaling estimate.
"""
import argparse
import os
import statistics
import time

os.environ.setdefault('OMP_NUM_THREADS', '1')

import numpy  # noqa: E402

from quantized_net import cli  # noqa: E402
from quantized_net.training import multi_node  # noqa: E402
from quantized_net.training import presets  # noqa: E402

PROG = 'bench_allreduce.py'
NETWORKS = (
    ('seed, 2 x 1000', dict(presets.PRESETS['seed'], preset='seed')),
    ('bnn, 3 x 4096', dict(presets.PRESETS['bnn'], preset='bnn')),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(
        '\n')[0])
    parser.add_argument('--rounds', type=cli.int_at_least(1), default=10)
    # The gradients are NumPy arrays: the CPU communicators.
    parser.add_argument('--communicator', choices=('naive', 'flat'),
                        default='naive')
    return cli.parse(parser, argv)


def time_rounds(run, rounds, barrier):
    samples = []
    run()
    for _ in range(rounds):
        barrier()
        start = time.perf_counter()
        run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench(args):
    comm = multi_node.create_communicator(args.communicator)
    barrier = comm.mpi_comm.Barrier
    rows = []
    for name, config in NETWORKS:
        model = presets.build_classifier(config)
        for param in model.params():
            param.grad = numpy.ones_like(param.array)
        size = sum(param.array.nbytes for param in model.params())
        flat = numpy.ones(size // 4, numpy.float32)
        copy = numpy.empty_like(flat)
        reduce = time_rounds(lambda: comm.multi_node_mean_grad(model),
                             args.rounds, barrier)
        baseline = time_rounds(lambda: numpy.copyto(copy, flat), args.rounds,
                               barrier)
        rows.append((name, size, reduce, baseline))
    if comm.rank:
        return
    print('Gradient all-reduce, {} processes, {} communicator; median of {} '
          'rounds\n'.format(comm.size, args.communicator, args.rounds))
    print('| network | bytes | all-reduce ms | GB/s | x memory copy |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, size, reduce, baseline in rows:
        print('| {} | {} | {:.2f} | {:.2f} | {:.1f} |'.format(
            name, size, 1000 * reduce, size / reduce / 1e9,
            reduce / baseline))


def main(argv=None):
    args = parse_args(argv)
    multi_node.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
