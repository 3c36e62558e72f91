#!/usr/bin/env python3
"""Inference speed of a packed binarized MLP or ConvNet against float32
evaluation of the same network and against the float network, side by
side in one process.

    ./bench_packed.py                              # docs/bnn/model.packed.npz
    ./bench_packed.py result/model.packed.npz --batches 1 100
    ./bench_packed.py --gpu 0                      # also the 8192^3 product
    ./bench_packed.py --batches 100 --layers       # and each layer at 100
    ./bench_packed.py --simd avx2                  # AVX2 on an AVX-512 CPU

Rows, for each batch size (images taken from the test set of the data set
the network was trained on):

``packed``
    XNOR-popcount on 1-bit weights and activations
    (``quantized_net/packed/engine.py``), with the CPU's fastest kernels
    (AVX-512 or AVX2) or those ``--simd`` names.
``packed, scalar``
    The same with the portable kernels (LLVM's generic popcount on 64-bit
    words), on a CPU where the vector kernels run.
``blas``
    The same binarized network as float32 matrix products of +-1
    matrices, thresholds folded: the best a float library does with it.
    For a ConvNet, the products alone, of im2col matrices made beforehand
    (a lower bound on any float evaluation of its multiply-adds); ``blas
    engine`` is then the whole evaluation, im2col and thresholds included.
``chainer, binarized``
    The network as it was trained: the Chainer model with its sign
    quantizers, in test mode.
``chainer, float``
    A float network of the same shape (the ``float`` preset's layers) in
    Chainer: what the binarized network replaces.

Each round gives every engine in turn a few consecutive batches, after a
pause that lets the other engines' idle threads stop spinning and then at
least 0.05 s of untimed batches, so that each is timed in a steady state,
as when it runs alone: its weights in cache and the cores back at speed
after the pause. The table gives the median time over all rounds, as
images per second and as a ratio to ``blas``, and the bytes of weights
each one reads. Timings on a shared machine move from run to run
(docs/packed.md says how much); run it twice.

``--layers`` adds a table of each layer alone (its input computed
beforehand), packed against blas, with the packed layer's multiply-adds
per second and core beside its ceiling: the rate of the layer's inner
loop on one core with its data in L1 (the nibble-plane popcount tile for
the hidden layers, which a batch of one does not use: it reads packed
bits, see ``layouts.PACKED_BATCH``; for an MLP's first layer, the pair
sums of its pixel pairs that are not both zero, whose multiply-adds are
counted as both pixels of those pairs times units; for a ConvNet's first
convolution, its kernel on a 16 x 16 image; a convolution's multiply-adds
are its taps' channels times filters at each output position).
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse
import math
import os

import numpy

from quantized_net import cli
from quantized_net import errors
from quantized_net.benchmarks import packed as packed_bench
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features
from quantized_net.training import datasets
from quantized_net.training import presets

PROG = 'bench_packed.py'
DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'docs',
                       'bnn', packed_format.PACKED_FILE)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(
        '\n')[0])
    parser.add_argument('packed', nargs='?', default=DEFAULT,
                        help='Packed file (default: the README\'s bnn model)')
    parser.add_argument('--batches', type=cli.int_at_least(1), nargs='+',
                        default=[1, 100, 10000], help='Batch sizes')
    parser.add_argument('--seconds', type=cli.positive_float, default=2.0,
                        help='Rough time to spend timing each batch size')
    parser.add_argument('--layers', type=cli.int_at_least(1), nargs='?',
                        const=100, default=None, metavar='BATCH',
                        help='Also time each layer alone at this batch size '
                             '(default 100)')
    parser.add_argument('--simd', choices=tuple(cpu_features.FORMS),
                        default=None,
                        help="The packed engine's CPU kernels (default: the "
                             'fastest this CPU runs)')
    cli.add_dataset_flag(parser)
    cli.add_device_flags(parser)
    return cli.parse(parser, argv)


def check_kernels(args, device):
    """Refuses ``--simd`` off the CPU or where the CPU does not run it, and
    the CPU without numba."""
    on_cpu = device.xp is numpy
    if on_cpu and not cpu_features.HAVE_NUMBA:
        raise errors.UsageError(cpu_features.NO_NUMBA + '.')
    if args.simd and not on_cpu:
        raise errors.UsageError('--simd chooses CPU kernels; leave it out '
                                'with --gpu or --device.')
    if args.simd:
        try:
            cpu_features.check_form(args.simd)
        except ValueError as e:
            raise errors.UsageError('{}.'.format(e))


def check_config(network, path):
    """Refuses a packed file whose recorded training configuration is not
    one, or not of the network it holds: the Chainer rows are built from
    it, so it may not ask for a larger model than the file's own layers.
    """
    config = network.meta.get('config')
    try:
        presets.check_config(config)
    except ValueError as e:
        raise errors.PackedFormatError(
            '{} does not record the configuration it was trained with ({}); '
            'export it again.'.format(path, e))
    recorded = [(shape[0], math.prod(shape[1:]))
                for shape in presets.layer_shapes(config)]
    held = [network.row_shape(i) for i in range(len(network.weights))]
    if recorded != held or network.sizes[0] != datasets.input_size(config):
        raise errors.PackedFormatError(
            '{} holds layers {} but records a configuration of others; '
            'export it again.'.format(path, network.describe()))


def bench(args):
    device = cli.select_device(args)
    check_kernels(args, device)
    synchronize = cli.synchronizer(device)
    network = packed_format.load(args.packed)
    check_config(network, args.packed)
    pixels, _ = datasets.test_pixels(
        packed_format.trained_on(network, args.packed), args.dataset_dir)
    rows = packed_bench.engine_rows(network, device, args.simd)
    print('Inference, {} {} ({}), {}; median over rounds\n'.format(
        network.describe().replace(' - ', '-') if not network.convolutions
        else network.describe(), 'ConvNet' if network.convolutions
        else 'MLP', os.path.relpath(args.packed), cli.where(device)))
    print('\n'.join(packed_bench.BATCH_HEADER))
    for batch in args.batches:
        medians = packed_bench.time_batch(rows, pixels, batch, args.seconds,
                                          synchronize)
        print('\n'.join(packed_bench.batch_lines(rows, batch, medians)))
    if args.layers:
        print()
        print('\n'.join(packed_bench.layer_table(
            network, device, pixels, args.layers, args.simd, synchronize)))
    if device.xp is not numpy:
        size = 8192
        xnor, cublas = packed_bench.gpu_product(size, synchronize)
        print('\n{0}^3 product of +-1 matrices on the {1}: XNOR-popcount '
              '{2:.2f} ms, cuBLAS float32 {3:.2f} ms ({4:.2f}x)'.format(
                  size, cli.where(device), 1000 * xnor, 1000 * cublas,
                  cublas / xnor))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
