#!/usr/bin/env python3
"""Inference speed of a packed binarized MLP against float32 evaluation of
the same network and against the float network, side by side in one
process.

    ./bench_packed.py                              # docs/bnn/model.packed.npz
    ./bench_packed.py result/model.packed.npz --batches 1 100
    ./bench_packed.py --gpu 0                      # also the 8192^3 product
    ./bench_packed.py --batches 100 --layers       # and each layer at 100
    ./bench_packed.py --simd avx2                  # AVX2 on an AVX-512 CPU

Rows, for each batch size (images taken from the MNIST test set):

``packed``
    XNOR-popcount on 1-bit weights and activations (``packed_engine.py``),
    with the CPU's fastest kernels (AVX2 or AVX-512, :mod:`simd_kernels`)
    or those ``--simd`` names.
``packed, scalar``
    The same with the portable kernels (64-bit ``popcnt``), on a CPU
    where the vector kernels run.
``blas``
    The same binarized network as float32 matrix products of +-1
    matrices, thresholds folded: the best a float library does with it.
``chainer, binarized``
    The network as it was trained: the Chainer model with its sign
    quantizers, in test mode.
``chainer, float``
    A float MLP of the same shape (the ``float`` preset's layers) in
    Chainer: what the binarized network replaces.

Each round gives every engine in turn a few consecutive batches, after a
pause that lets the other engines' idle threads stop spinning and then at
least 0.05 s of untimed batches, so that each is timed in a steady state,
as when it runs alone: its weights in cache and the cores back at speed
after the pause (which otherwise costs a batch of one image about 15%).
The table gives the median time over all rounds, as images per second and
as a ratio to ``blas``, and the bytes of weights each one reads. Timings
on a shared machine move by 10-20% from run to run; run it twice.

``--layers`` adds a table of each layer alone (its input computed
beforehand), packed against blas, with the packed layer's multiply-adds
per second and core beside its ceiling: the rate of the layer's inner
loop on one core with its data in L1 (the nibble-plane popcount tile for
the hidden layers, which a batch of one does not use: it reads packed
bits, see ``simd_layers.PACKED_BATCH``; for the first layer, the pair
sums of its pixel pairs that are not both zero, whose multiply-adds are
counted as both pixels of those pairs times units).
"""
import argparse
import functools
import os
import statistics
import time

import numpy

try:
    import numba
except ImportError:  # bench() says so when the CPU kernels are timed
    numba = None

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
from chainer.backends import cuda

from quantized_net import cli
from quantized_net.benchmarks.timing import median_seconds
from quantized_net.training import mnist as mnist_dataset
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import format as packed_format
from quantized_net.training import presets
from quantized_net.packed.kernels import simd_kernels
from quantized_net.packed.kernels import simd_layers
from quantized_net.packed.kernels import simd_pixels
from quantized_net.packed.kernels import xnor_popcount
from quantized_net import errors

PROG = 'bench_packed.py'
# Seconds of rest before each engine (BLAS's and OpenMP's idle threads
# spin for up to about 0.1 s after a call), and of untimed calls after it.
SETTLE, WARM = 0.25, 0.05
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
    parser.add_argument('--simd', choices=tuple(simd_layers.FORMS) +
                        ('scalar',), default=None,
                        help="The packed engine's CPU kernels (default: the "
                             'fastest this CPU runs)')
    cli.add_dataset_flag(parser)
    cli.add_device_flags(parser)
    return cli.parse(parser, argv)


def chainer_model(config, device):
    model = presets.build_classifier(config).predictor
    model.to_device(device)
    weight_bytes = sum(p.array.nbytes for p in model.params())
    return functools.partial(packed_engine.chainer_classify, model), \
        weight_bytes


def engines(network, device, simd=None):
    """``[(name, classify, weight bytes)]``; ``simd`` the packed engine's
    CPU kernels (default: the fastest)."""
    packed = packed_engine.Engine(network, 'packed', device, simd)
    blas = packed_engine.Engine(network, 'blas', device)
    config = network.meta['config']
    float_config = dict(presets.PRESETS['float'], unit=config['unit'],
                        layers=config['layers'])
    rows = [('packed', packed.classify, network.weight_bytes())]
    if packed.simd not in (None, 'scalar'):
        scalar = packed_engine.Engine(network, 'packed', device, 'scalar')
        rows.append(('packed, scalar', scalar.classify,
                     network.weight_bytes()))
    rows.append(('blas', blas.classify,
                 sum(w.nbytes for w in blas.weights)))
    rows.append(('chainer, binarized',) + chainer_model(config, device))
    rows.append(('chainer, float',) + chainer_model(float_config, device))
    return rows


def layer_table(network, device, pixels, batch, sync, simd=None):
    """Prints each layer's time alone, packed against blas, at ``batch``."""
    pixels = device.send(numpy.resize(pixels, (batch, pixels.shape[1])))
    times, form = {}, None
    for engine in packed_engine.ENGINES:
        h, runners = pixels, []
        built = packed_engine.Engine(network, engine, device,
                                     simd if engine == 'packed' else None)
        for i, layer in enumerate(built.layers()):
            runners.append((i, functools.partial(layer, h)))
            h = layer(h)
        times[engine] = median_seconds(runners, 3, 10, settle=SETTLE,
                                       warm_seconds=WARM, synchronize=sync)
        form = form or built.simd
    on_cpu = device.xp is numpy
    sizes = network.sizes
    print('\nEach layer alone, batch {}{}\n'.format(
        batch, ', {} kernels; ceiling: the inner loop on one core, '
        'L1-resident'.format(form) if on_cpu else ''))
    print('| layer | packed ms | blas ms | x blas | G multiply-adds/s '
          'per core | ceiling | of the ceiling |')
    print('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
    threads = numba.get_num_threads() if on_cpu else None
    ceilings = {}  # measured once for each inner loop and width
    for i in range(len(sizes) - 1):
        packed, blas = times['packed'][i], times['blas'][i]
        work = batch * sizes[i] * sizes[i + 1]
        if on_cpu and i == 0 and form != 'scalar':
            work = 2 * numpy.count_nonzero(
                simd_layers.pixel_pairs(pixels)) * sizes[1]
            key, measure = 'pair sums', pair_sums_ceiling
        elif form == 'scalar':
            key, measure = 'scalar', lambda: 64 * inner_loop_rate()
        else:
            key = sizes[i]
            measure = functools.partial(tile_ceiling, form, sizes[i])
        if on_cpu and key not in ceilings:
            ceilings[key] = measure()
        ceiling = ceilings.get(key)
        rate = work / packed / threads if on_cpu else None
        print('| {} ({}-{}) | {:.3f} | {:.3f} | {:.2f} | {} | {} | {} |'
              .format(i + 1, sizes[i], sizes[i + 1], 1000 * packed,
                      1000 * blas, blas / packed,
                      '{:.1f}'.format(rate / 1e9) if on_cpu else '-',
                      '{:.1f}'.format(ceiling / 1e9) if on_cpu else '-',
                      '{:.0%}'.format(rate / ceiling) if on_cpu else '-'))


def inner_loop_rate(words=64, rows=16, rounds=20000):
    """Words (64 binary multiply-adds each) a second that one core's
    scalar XNOR-popcount inner loop processes on L1-resident data (``rows``
    weight rows of ``words`` words against one input row, 8 KiB): the
    ceiling of the scalar kernels."""
    rng = numpy.random.RandomState(0)
    x = rng.randint(0, 2 ** 63, words, dtype=numpy.int64).astype(
        numpy.uint64)
    w = rng.randint(0, 2 ** 63, (rows, words), dtype=numpy.int64).astype(
        numpy.uint64)
    xnor_popcount.inner_loop(x, w, 1)
    return rounds * rows * words / _best_seconds(
        lambda: xnor_popcount.inner_loop(x, w, rounds))


def _best_seconds(run, repeat=5):
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def tile_ceiling(form, bits=2048, rows=16, rounds=2000):
    """Binary multiply-adds a second of ``form``'s tile on one core with
    its data in L1 (``mr`` rows of ``bits`` bits against ``rows`` weight
    rows, as :mod:`simd_layers` lays them out): the ceiling of the hidden
    layers."""
    mr, nr = simd_kernels.TILE[form]
    row_bytes = 8 * simd_layers.layout_words(bits, form)
    steps = row_bytes // simd_kernels.VECTOR_BYTES[form]

    @numba.njit
    def run(x, w, pops, rounds):
        for _ in range(rounds):
            for c in range(0, rows, nr):
                simd_kernels.tile(form, x.ctypes.data, row_bytes,
                                  w.ctypes.data + c * row_bytes, row_bytes,
                                  steps, pops.ctypes.data + c * 4, rows)

    rng = numpy.random.RandomState(0)
    x, w = (rng.randint(0, 16, (r, row_bytes)).astype(numpy.uint8).view(
        numpy.uint64) for r in (mr, rows))
    pops = numpy.zeros((mr, rows), numpy.int32)
    run(x, w, pops, 1)
    return rounds * mr * rows * bits / _best_seconds(
        lambda: run(x, w, pops, rounds))


def pair_sums_ceiling(pairs=88, rounds=20000):
    """Pixel multiply-adds (both pixels of each pair times units) a second
    of the first layer's pair sums on one core with a chunk's masks in L1
    (``pairs`` pairs an image: MNIST's mean is 88 of 392 pairs not both
    zero)."""
    units = simd_pixels.MASK_UNITS
    rows = simd_pixels.PAIR_CHUNK

    @numba.njit
    def run(masks, index, values, counters, rounds):
        for _ in range(rounds):
            simd_pixels.pair_sums(masks.ctypes.data, index.ctypes.data,
                                  values.ctypes.data, len(index),
                                  counters.ctypes.data)

    rng = numpy.random.RandomState(0)
    masks = rng.randint(0, 2, (rows, 2 * units)).astype(numpy.uint8)
    index = numpy.sort(rng.randint(0, rows, pairs)).astype(numpy.int32)
    values = rng.randint(1, 1 << 16, pairs).astype(numpy.uint16)
    counters = numpy.zeros(units, numpy.uint16)
    run(masks, index, values, counters, 1)
    return rounds * 2 * pairs * units / _best_seconds(
        lambda: run(masks, index, values, counters, rounds))


def gpu_product(size, sync, repeat=5):
    """Seconds of an ``size``^3 binary product (XNOR-popcount) and of the
    float32 cuBLAS product of the same +-1 matrices."""
    cupy = cuda.cupy
    rng = numpy.random.RandomState(0)
    a = rng.choice([-1., 1.], (size, size)).astype(numpy.float32)
    b = rng.choice([-1., 1.], (size, size)).astype(numpy.float32)
    pa, pb = (cupy.asarray(packed_format.pack_signs(m)) for m in (a, b))
    fa, fb = cupy.asarray(a), cupy.asarray(b)
    results = {}
    for name, run in (('xnor', lambda: xnor_popcount.xnor_dot(pa, pb, size)),
                      ('cublas', lambda: fa.dot(fb.T))):
        run()
        samples = []
        for _ in range(repeat):
            sync()
            start = time.perf_counter()
            out = run()
            sync()
            samples.append(time.perf_counter() - start)
        results[name] = (statistics.median(samples), out)
    check = slice(0, 256)
    numpy.testing.assert_array_equal(
        cupy.asnumpy(results['xnor'][1][check, check]),
        cupy.asnumpy(results['cublas'][1][check, check]))
    return results['xnor'][0], results['cublas'][0]


def bench(args):
    device = cli.select_device(args)
    if device.xp is numpy and numba is None:
        raise errors.UsageError(xnor_popcount.NO_NUMBA + '.')
    if args.simd and device.xp is not numpy:
        raise errors.UsageError('--simd chooses CPU kernels; leave it out with '
                             '--gpu or --device.')
    if args.simd:
        try:
            packed_engine.check_simd(args.simd)
        except ValueError as e:
            raise errors.UsageError('{}.'.format(e))
    sync = cli.synchronizer(device)
    network = packed_format.load(args.packed)
    _, _, test = mnist_dataset.load_splits(args.dataset_dir)
    pixels = packed_engine.to_pixels(test._datasets[0], network.sizes[0])
    rows = engines(network, device, args.simd)
    print('Inference, {} MLP ({}), {}; median over rounds\n'.format(
        '-'.join(map(str, network.sizes)), os.path.relpath(args.packed),
        cli.where(device)))
    print('| batch | engine | images / s | x blas | weight bytes | '
          'x smaller than float32 |')
    print('| ---: | --- | ---: | ---: | ---: | ---: |')
    float_bytes = dict((name, size) for name, _, size in rows)['blas']
    for batch in args.batches:
        batch_pixels = numpy.resize(pixels, (batch, pixels.shape[1]))
        runners = [(name, functools.partial(classify, batch_pixels))
                   for name, classify, _ in rows]
        once = median_seconds(runners, 1, settle=SETTLE, warm_seconds=WARM,
                              synchronize=sync)
        calls = int(min(50, max(1, args.seconds / 3 / max(once.values()))))
        medians = median_seconds(runners, 3, calls, settle=SETTLE,
                                 warm_seconds=WARM, synchronize=sync)
        for name, _, size in rows:
            print('| {} | {} | {:.0f} | {:.2f} | {} | {:.1f} |'.format(
                batch, name, batch / medians[name],
                medians['blas'] / medians[name], size, float_bytes / size))
    if args.layers:
        layer_table(network, device, pixels, args.layers, sync, args.simd)
    if device.xp is not numpy:
        size = 8192
        xnor, cublas = gpu_product(size, sync)
        print('\n{0}^3 product of +-1 matrices on the {1}: XNOR-popcount '
              '{2:.2f} ms, cuBLAS float32 {3:.2f} ms ({4:.2f}x)'.format(
                  size, cli.where(device), 1000 * xnor, 1000 * cublas,
                  cublas / xnor))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
