#!/usr/bin/env python3
"""Trains the quantized MLP data-parallel over MPI processes (ChainerMN).

    mpiexec -n 2 ./train_mnist_mn.py                  # 2 processes, CPU
    mpiexec -n 4 ./train_mnist_mn.py --gpu 0 --preset bnn   # a GPU each

The flags and presets are train_mnist.py's; --batchsize is the global
batch, split over the processes. Rank 0 prints the table and writes the same
files as a single-process run (its args.json records the number of
processes), so evaluate.py, export.py and infer_packed.py read them as they
are. What each process does, and why, is in
quantized_net/training/multi_node.py.
"""
import argparse
import os
import sys

# One BLAS thread a process unless told otherwise: the processes already
# share the cores, and threads on top of them only contend.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
# Right after the thread count, which BLAS reads as this import loads
# NumPy: a signal from here on ends in one line.
import quantized_net  # noqa: E402,F401

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net.training import flags  # noqa: E402
from quantized_net.training import multi_node  # noqa: E402
from quantized_net.training import run_description  # noqa: E402
from quantized_net.training import session  # noqa: E402
from quantized_net import errors  # noqa: E402

PROG = 'train_mnist_mn.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Quantized neural network (Hubara et al. '
                               '2016) on MNIST, data-parallel over MPI')
    flags.add_train_flags(parser)
    parser.add_argument('--communicator', choices=multi_node.COMMUNICATORS,
                        default=None,
                        help='ChainerMN communicator (default: naive on the '
                             'CPU, pure_nccl with --gpu/--device)')
    return flags.parse_train_args(parser, argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        rank = multi_node.world().rank
    except errors.UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    with multi_node.quiet_unless_first(rank):
        args = parse_args(argv)
    run = run_description.describe(args, argv)
    training = session.Training(run, lambda: multi_node.MultiNode(
        multi_node.default_communicator(run)))
    multi_node.run(PROG, training, interrupted=training.resume_hint)


if __name__ == '__main__':
    main()
