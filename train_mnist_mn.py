#!/usr/bin/env python3
"""Trains the quantized MLP data-parallel over MPI processes (ChainerMN).

    mpiexec -n 2 ./train_mnist_mn.py                  # 2 processes, CPU
    mpiexec -n 4 ./train_mnist_mn.py --gpu 0 --preset bnn   # a GPU each

The flags and presets are train_mnist.py's; --batchsize is the global
batch, split over the processes. Rank 0 prints the table and writes the same
files as a single-process run (its args.json records the number of
processes), so evaluate.py, export.py and infer_packed.py read them as they
are. What each process does, and why, is in multi_node.py.
"""
import argparse
import contextlib
import os
import sys

# One BLAS thread a process unless told otherwise: the processes already
# share the cores, and threads on top of them only contend.
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net import cli  # noqa: E402
from quantized_net.training import mnist as mnist_dataset  # noqa: E402
from quantized_net.training import multi_node  # noqa: E402
from quantized_net.training import presets  # noqa: E402
from quantized_net.training import result_dir  # noqa: E402
from quantized_net.training import trainer as trainer_setup  # noqa: E402
from quantized_net import errors

PROG = 'train_mnist_mn.py'


def parse_args(rank, argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Quantized neural network (Hubara et al. '
                               '2016) on MNIST, data-parallel over MPI')
    trainer_setup.add_flags(parser)
    parser.add_argument('--communicator', choices=multi_node.COMMUNICATORS,
                        default=None,
                        help='ChainerMN communicator (default: naive on the '
                             'CPU, pure_nccl with --gpu/--device)')
    stderr = sys.stderr
    if rank != 0:  # every rank reads the same flags; one says what is wrong
        sys.stderr = open(os.devnull, 'w')
    try:
        args = trainer_setup.parse_args(parser, argv)
    finally:
        sys.stderr = stderr
    args.on_gpu = args.device is not None or args.gpu != -1
    if args.communicator is None:
        args.communicator = 'pure_nccl' if args.on_gpu else 'naive'
    return args


def select_device(args, comm):
    """Each process's device: the CPU, or with --gpu/--device the GPU of
    its index among the processes on its host."""
    if args.on_gpu:
        args.device, args.gpu = '@cupy:{}'.format(comm.intra_rank), -1
    return cli.select_device(args)


def train(args):
    comm = multi_node.create_communicator(args.communicator)
    config = args.config
    device = select_device(args, comm)
    if args.seed is not None:
        # Each process a seed of its own: its shuffles and dropout masks.
        trainer_setup.seed_everything(args.seed + comm.rank, device)
    splits = (None, None, None)
    if comm.rank == 0:
        trainer_setup.print_header(device, config, args.seed, comm.size)
        splits = mnist_dataset.load_splits(args.dataset_dir,
                                           config['validation'])
        trainer_setup.check_batchsize(config['batchsize'], splits[0],
                                      comm.size)
        if args.resume:
            trainer_setup.check_resume(args)
    scatter = multi_node.chainermn.scatter_dataset
    train_set = scatter(splits[0], comm, shuffle=True, seed=args.seed or 0)
    val_set = scatter(splits[1], comm) if config['validation'] else None
    test_set = scatter(splits[2], comm)

    claim = (result_dir.claim(args.out, args.resume, args.replace)
             if comm.rank == 0 else contextlib.nullcontext())
    with claim:
        args.claimed = True
        model = multi_node.chainermn.links.create_mnbn_model(
            presets.build_classifier(config), comm)
        model.to_device(device)
        optimizer = multi_node.chainermn.create_multi_node_optimizer(
            presets.build_optimizer(model, config), comm)
        optimizer.add_hook(multi_node.SumGradients(comm.size))
        trainer = trainer_setup.build_trainer(
            args, model, optimizer, train_set, val_set, test_set, device,
            comm)
        if args.resume:
            multi_node.load_snapshot(args.resume, trainer, comm)
        multi_node.broadcast_parameters(optimizer, comm)
        if comm.rank == 0:
            result_dir.write_args(args.out, config, args.seed, sys.argv[1:],
                                  processes=comm.size)
        trainer_setup.run(trainer)
        if comm.rank == 0:
            result_dir.save_model(model, args.out)


def main(argv=None):
    rank = 0
    try:
        rank = multi_node.world().rank
    except errors.UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    args = parse_args(rank, argv)
    multi_node.run(PROG, lambda: train(args),
                   interrupted=lambda: trainer_setup.resume_hint(args))


if __name__ == '__main__':
    main()
