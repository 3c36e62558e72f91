#!/usr/bin/env python3
"""Test error against the bit widths of weights and activations.

    ./sweep.py --out sweep --epoch 3 --unit 256 --dataset-dir path/to/mnist
    mpiexec -n 2 ./sweep.py ...        # the cells spread over 2 processes

Trains one network per cell of the grid (weights x activations, each
``linear:K`` for K in --bits, or ``none``) with train_mnist.py; every other
flag of train_mnist.py's configuration (--grad-quant, --unit, --lr, ...)
is the same in every cell. Then writes ``results.csv``, ``results.md``
(a table of the test error in % each cell reports, and of which epoch) and
``results.png`` (a heat map) in --out. A cell already finished with the
same configuration and seed is reused, and one interrupted is resumed from
its latest snapshot, so an interrupted sweep continues where it stopped; a
cell trained with another configuration stops the sweep, unless --retrain
asks to train it again.

Under mpiexec (requirements-mpi.txt), process R trains cells R, R + N, ...
one at a time, each on one thread, and process 0 gathers the results and
writes the files. The sweep is quantized_net/training/sweep.py's.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse
import os

from quantized_net import cli
from quantized_net.training import sweep

PROG = 'sweep.py'
TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'train_mnist.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Grid of weight x activation bit widths')
    sweep.add_flags(parser)
    return cli.parse(parser, argv)


def main(argv=None):
    plan = sweep.describe(parse_args(argv), TRAIN_SCRIPT)
    if not sweep.under_mpiexec():
        cli.run(PROG, lambda: sweep.run(plan))
        return
    # Imported here: it needs MPI, which a single-process sweep does not.
    from quantized_net.training import multi_node
    multi_node.run(PROG, lambda: sweep.run(plan, multi_node.world()))


if __name__ == '__main__':
    main()
