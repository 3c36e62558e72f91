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

os.environ.setdefault('OMP_NUM_THREADS', '1')
# Right after the thread count, which BLAS reads as this import loads
# NumPy: a signal from here on ends in one line.
import quantized_net  # noqa: E402,F401

from quantized_net import cli  # noqa: E402
from quantized_net.benchmarks import allreduce  # noqa: E402
from quantized_net.training import multi_node  # noqa: E402

PROG = 'bench_allreduce.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(
        '\n')[0])
    parser.add_argument('--rounds', type=cli.int_at_least(1), default=10)
    # The gradients are NumPy arrays: the CPU communicators.
    parser.add_argument('--communicator', choices=('naive', 'flat'),
                        default='naive')
    return cli.parse(parser, argv)


def bench(args):
    comm = multi_node.create_communicator(args.communicator)
    rows = allreduce.time_allreduce(comm, args.rounds)
    if comm.rank:
        return
    print('Gradient all-reduce, {} processes, {} communicator; median of {} '
          'rounds\n'.format(comm.size, args.communicator, args.rounds))
    print('| network | bytes | all-reduce ms | GB/s | x memory copy |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for name, size, reduce, copy in rows:
        print('| {} | {} | {:.2f} | {:.2f} | {:.1f} |'.format(
            name, size, 1000 * reduce, size / reduce / 1e9, reduce / copy))


def main(argv=None):
    args = parse_args(argv)
    multi_node.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
