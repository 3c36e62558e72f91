"""What ``bench_packed.py`` times: the packed engines against the float32
BLAS evaluation of the same binarized network and against the Chainer
models, side by side in one process, a batch size at a time
(:func:`time_batch`, :func:`batch_lines`); each layer alone
(:func:`time_layers`, :func:`layer_lines`) beside the ceiling of its inner
loop (:func:`tile_ceiling`, :func:`pair_sums_ceiling`); on a GPU, a large
product of +-1 matrices (:func:`gpu_product`).

Every engine is timed round by round with the others
(:func:`timing.median_seconds`), each after a rest of :data:`SETTLE`
seconds and :data:`WARM` seconds of untimed calls: its weights in cache
and the cores back at speed, as when it runs alone.
"""
import collections
import functools
import math

import numpy

from chainer.backends import cuda

from quantized_net import kernel_cache
from quantized_net.benchmarks.timing import median_seconds
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import format as packed_format
from quantized_net.packed import reference
from quantized_net.packed.kernels import borders
from quantized_net.packed.kernels import cpu_features
from quantized_net.packed.kernels import gpu
from quantized_net.packed.kernels.blocking import (
    MASK_UNITS, PAIR_CHUNK, TILE)
from quantized_net.packed.format import words
from quantized_net.packed.kernels.layouts import (
    VECTOR_BYTES, layout_words, pixel_pairs)
from quantized_net.training import presets

if cpu_features.HAVE_NUMBA:
    from quantized_net.packed.kernels import convolutions
    from quantized_net.packed.kernels import filter_lanes
    from quantized_net.packed.kernels import tap_planes
    from quantized_net.packed.kernels import first_layer
    from quantized_net.packed.kernels import pixel_lanes
    from quantized_net.packed.kernels import position_lanes
    from quantized_net.packed.kernels import tiles

#: Seconds of rest before each engine's calls (BLAS's and OpenMP's idle
#: threads spin for a while after a call), and of untimed calls after it;
#: docs/packed.md says what they were chosen from.
SETTLE, WARM = 0.25, 0.05
#: A row of the table: what ``classify(pixels)`` runs, and the bytes of
#: weights it reads.
Row = collections.namedtuple('Row', 'name classify weight_bytes')


def chainer_row(name, config, device, step=math.inf):
    """A :class:`Row` of the Chainer network that ``config`` builds, with
    its initial weights (the time does not depend on their values),
    ``step`` images at a time (a ConvNet's im2col matrices of a large
    batch would not fit in memory)."""
    model = presets.build_classifier(config).predictor

    def classify(pixels):
        if len(pixels) <= step:
            return reference.chainer_classify(model, pixels)
        return numpy.concatenate([
            reference.chainer_classify(model, pixels[i:i + step])
            for i in range(0, len(pixels), step)])
    model.to_device(device)
    return Row(name, classify, sum(p.array.nbytes for p in model.params()))


class BlasProducts(object):
    """A row's ``classify`` that runs only the BLAS engine's matrix
    products for the pixels it is given (:meth:`engine.BlasEngine.products`,
    the matrices made on the first call with those pixels, untimed in a
    steady state): the baseline of a ConvNet, a lower bound on any float
    evaluation of its multiply-adds, im2col not counted."""

    def __init__(self, engine):
        self.engine = engine
        self._pixels = self._runs = None

    def __call__(self, pixels):
        if pixels is not self._pixels:
            # A pass of the engine's size and the last, shorter one: the
            # products of every pass have their shapes.
            step = min(len(pixels),
                       packed_engine.images_per_pass(self.engine.network))
            passes, rest = divmod(len(pixels), step)
            self._runs = [(self.engine.products(pixels[:step]), passes)]
            if rest:
                self._runs.append((self.engine.products(pixels[:rest]), 1))
            self._pixels = pixels
        for products, times in self._runs:
            for _ in range(times):
                for a, w in products:
                    a.dot(w)


def engine_rows(network, device, simd=None):
    """The rows of the table: ``packed`` (the CPU kernels ``simd``, by
    default the fastest), ``packed, scalar`` beside vector kernels,
    ``blas`` (for a ConvNet its matrix products alone, :class:`BlasProducts`,
    and ``blas engine`` the whole engine), ``chainer, binarized`` and
    ``chainer, float`` (a float network of the same shape)."""
    packed = packed_engine.select(network, device, 'packed', simd)
    rows = [Row('packed', packed.classify, packed.weight_bytes())]
    if packed.simd not in (None, 'scalar'):
        scalar = packed_engine.select(network, device, 'packed', 'scalar')
        rows.append(Row('packed, scalar', scalar.classify,
                        scalar.weight_bytes()))
    blas = packed_engine.select(network, device, 'blas')
    if network.convolutions:
        rows.append(Row('blas', BlasProducts(blas), blas.weight_bytes()))
        rows.append(Row('blas engine', blas.classify, blas.weight_bytes()))
    else:
        rows.append(Row('blas', blas.classify, blas.weight_bytes()))
    config = network.meta['config']
    float_config = dict(presets.PRESETS['float'], unit=config['unit'],
                        layers=config['layers'], **{
                            key: config[key] for key in presets.OPTIONAL
                            if key in config})
    step = packed_engine.images_per_pass(network)
    rows.append(chainer_row('chainer, binarized', config, device, step))
    rows.append(chainer_row('chainer, float', float_config, device, step))
    return rows


def time_batch(rows, pixels, batch, seconds, synchronize=None,
               settle=SETTLE, warm=WARM):
    """``{name: median seconds of a call}`` of each row's ``classify`` on
    ``batch`` images of ``pixels`` (repeated as needed), in about
    ``seconds``: 3 rounds of up to 50 calls."""
    batch_pixels = numpy.resize(pixels, (batch, pixels.shape[1]))
    runners = [(row.name, functools.partial(row.classify, batch_pixels))
               for row in rows]
    once = median_seconds(runners, 1, settle=settle, warm_seconds=warm,
                          synchronize=synchronize)
    calls = int(min(50, max(1, seconds / 3 / max(once.values()))))
    return median_seconds(runners, 3, calls, settle=settle,
                          warm_seconds=warm, synchronize=synchronize)


#: The head of the table of :func:`batch_lines`.
BATCH_HEADER = ['| batch | engine | images / s | x blas | weight bytes | '
                'x smaller than float32 |',
                '| ---: | --- | ---: | ---: | ---: | ---: |']


def batch_lines(rows, batch, medians):
    """The lines of the table for :func:`time_batch`'s ``medians``: images
    a second, the ratio to ``blas``, the bytes of weights and how many
    times smaller than ``blas``'s float32 ones they are."""
    float_bytes = {row.name: row.weight_bytes for row in rows}['blas']
    return ['| {} | {} | {:.0f} | {:.2f} | {} | {:.1f} |'.format(
                batch, row.name, batch / medians[row.name],
                medians['blas'] / medians[row.name], row.weight_bytes,
                float_bytes / row.weight_bytes) for row in rows]


def time_layers(network, device, pixels, simd=None, synchronize=None,
                settle=SETTLE, warm=WARM):
    """``({kind: [median seconds of each layer]}, form)``: each layer of
    the packed engine alone on ``pixels`` (on ``device``), its input
    computed beforehand, and the BLAS engine's: a ConvNet's products alone
    (:meth:`engine.BlasEngine.products`); ``form`` that of the packed
    engine's CPU kernels, or None."""
    times, form = {}, None
    for kind in packed_engine.ENGINES:
        built = packed_engine.select(network, device, kind,
                                     simd if kind == 'packed' else None)
        if kind == 'blas' and network.convolutions:
            runners = [(i, functools.partial(a.dot, w))
                       for i, (a, w) in enumerate(built.products(pixels))]
        else:
            h, runners = pixels, []
            for i, layer in enumerate(built.layers()):
                runners.append((i, functools.partial(layer, h)))
                h = layer(h)
        times[kind] = [seconds for _, seconds in sorted(median_seconds(
            runners, 3, 10, settle=settle, warm_seconds=warm,
            synchronize=synchronize).items())]
        form = form or built.simd
    return times, form


def layer_names(network):
    """Each layer as the tables name it: ``784-2048`` (inputs and units)
    or, for a convolution, ``64C3-P2`` (:meth:`format.PackedNetwork.
    describe`)."""
    names = network.describe().split(' - ')[1:]
    if network.convolutions:
        sizes = network.sizes[len(network.convolutions):]
        return names[:len(network.convolutions)] + [
            '{}-{}'.format(k, n) for k, n in zip(sizes, sizes[1:])]
    sizes = network.sizes
    return ['{}-{}'.format(k, n) for k, n in zip(sizes, sizes[1:])]


def layer_work(network, pixels):
    """Multiply-adds of each layer as the CPU kernels do them: for an
    MLP's first layer, both pixels of each pair that is not both zero,
    times units; for a convolution, its taps times filters at each output
    position."""
    batch = len(pixels)
    sizes = network.sizes
    convolutions = network.convolutions
    if not convolutions:
        first = 2 * numpy.count_nonzero(pixel_pairs(pixels)) * sizes[1]
        return [first] + [batch * k * n for k, n in zip(sizes[1:],
                                                        sizes[2:])]
    work = [batch * conv.taps() * math.prod(conv.conv_shape())
            for conv in convolutions]
    dense = sizes[len(convolutions):]
    return work + [batch * k * n for k, n in zip(dense, dense[1:])]


def ceilings(network, form):
    """The ceiling of each layer on one core, in multiply-adds a second:
    the inner loop of its kernel, measured once for each shape; for an
    MLP's first layer :func:`pair_sums_ceiling`, for a ConvNet's
    :func:`position_lanes_ceiling` or :func:`pixel_lanes_ceiling` where
    its sums fit 16 bits, else :func:`first_convolution_ceiling`, for its
    later convolutions :func:`position_lanes_ceiling` or
    :func:`filter_lanes_ceiling` (in the scalar form :func:`tile_ceiling`
    of its row's bits, its taps' channels), for the others
    :func:`tile_ceiling` of its row's bits."""
    sizes = network.sizes
    convolutions = network.convolutions
    measured = {}

    def tiles(bits):
        if bits not in measured:
            measured[bits] = tile_ceiling(form, bits)
        return measured[bits]
    if not convolutions:
        return [pair_sums_ceiling(form)] + [tiles(k) for k in sizes[1:-1]]
    first = convolutions[0]
    if position_lanes.runs_pixels(first, form):
        rates = [position_lanes_ceiling(first, position_lanes.PIXELS)]
    elif pixel_lanes.runs(first, form):
        rates = [pixel_lanes_ceiling(first, form)]
    else:
        rates = [first_convolution_ceiling(first)]
    for conv in convolutions[1:]:
        if position_lanes.runs(conv, form):
            rates.append(position_lanes_ceiling(conv, position_lanes.BITS))
        elif filter_lanes.runs(form):
            rates.append(filter_lanes_ceiling(conv))
        else:
            rates.append(tiles(conv.taps()))
    return rates + [tiles(k) for k in sizes[len(convolutions):-1]]


def layer_lines(names, batch, times, form=None, work=None, ceiling=None,
                threads=None):
    """The table of :func:`time_layers`' ``times``, as lines: each layer
    (``names``, :func:`layer_names`), its milliseconds, packed and blas,
    their ratio and, on the CPU (``form`` given), the packed layer's
    multiply-adds a second and core (``work`` of :func:`layer_work` on
    ``threads`` threads) beside its ``ceiling`` (:func:`ceilings`)."""
    lines = ['Each layer alone, batch {}{}'.format(batch, (
                ', {} kernels; ceiling: the inner loop on one core, '
                'L1-resident'.format(form)) if form else ''),
             '',
             '| layer | packed ms | blas ms | x blas | G multiply-adds/s '
             'per core | ceiling | of the ceiling |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: |']
    for i, (packed, blas) in enumerate(zip(times['packed'],
                                           times['blas'])):
        rate = ceiling_rate = None
        if form:
            rate = work[i] / packed / threads
            ceiling_rate = ceiling[i]
        lines.append('| {} ({}) | {:.3f} | {:.3f} | {:.2f} | {} | {} | {} |'
                     .format(i + 1, names[i], 1000 * packed,
                             1000 * blas, blas / packed,
                             '{:.1f}'.format(rate / 1e9) if form else '-',
                             '{:.1f}'.format(ceiling_rate / 1e9) if form
                             else '-',
                             '{:.0%}'.format(rate / ceiling_rate) if form
                             else '-'))
    return lines


def layer_table(network, device, pixels, batch, simd=None, synchronize=None,
                settle=SETTLE, warm=WARM):
    """The lines of the table of each layer alone, on ``batch`` images of
    ``pixels`` (repeated as needed): :func:`time_layers`, and on the CPU
    the work and ceilings beside."""
    pixels = device.send(numpy.resize(pixels, (batch, pixels.shape[1])))
    times, form = time_layers(network, device, pixels, simd, synchronize,
                              settle, warm)
    names = layer_names(network)
    if device.xp is not numpy:
        return layer_lines(names, batch, times)
    return layer_lines(names, batch, times, form,
                       layer_work(network, pixels), ceilings(network, form),
                       kernel_cache.threads())


def tile_ceiling(form, bits=2048, rows=16, rounds=2000):
    """Binary multiply-adds a second of ``form``'s tile on one core with
    its data in L1 (``mr`` rows of ``bits`` bits against ``rows`` weight
    rows, laid out as :mod:`layouts` lays them out): the ceiling of the
    hidden layers."""
    mr, nr = TILE[form]
    rows = -(-rows // nr) * nr
    row_bytes = 8 * layout_words(bits, form)
    steps = row_bytes // VECTOR_BYTES[form]

    @kernel_cache.njit  # cached under its sizes and form, its cells
    def run(x, w, counts, rounds):
        for _ in range(rounds):
            for c in range(0, rows, nr):
                tiles.tile(form, x.ctypes.data, row_bytes,
                           w.ctypes.data + c * row_bytes, row_bytes, steps,
                           counts.ctypes.data + c * 4, rows)

    rng = numpy.random.RandomState(0)
    x, w = (rng.randint(0, 16, (r, row_bytes)).astype(numpy.uint8).view(
        numpy.uint64) for r in (mr, rows))
    counts = numpy.zeros((mr, rows), numpy.int32)
    seconds = median_seconds([('tile', lambda: run(x, w, counts, rounds))],
                             5, warmup=1)
    return rounds * mr * rows * bits / seconds['tile']


def filter_lanes_ceiling(conv, rounds=20000):
    """Binary multiply-adds a second of the filter-lanes tile
    (:mod:`filter_lanes`) on one core with its data in L1: rows of
    convolution ``conv``'s words in its planes (:mod:`tap_planes`), bits
    past its taps not counted, against a tile of filters, compared with
    their limits: the ceiling of the convolutions on bits."""
    row_words = len(tap_planes.row_words(conv.in_shape[0], conv.ksize))
    tile_rows, tile_filters = filter_lanes.TILE_ROWS, filter_lanes.TILE_FILTERS
    rng = numpy.random.RandomState(0)
    x = rng.randint(0, 2 ** 63, (tile_rows, row_words),
                    dtype=numpy.int64).view(numpy.uint64)
    w = rng.randint(0, 2 ** 63, (row_words, tile_filters),
                    dtype=numpy.int64).view(numpy.uint64)
    rows = numpy.arange(tile_rows, dtype=numpy.int64) * row_words * 8
    offsets = numpy.arange(row_words, dtype=numpy.int64) * 8
    limits = numpy.full(tile_filters, row_words * 32, numpy.int64)
    row_limits = numpy.full(tile_rows, limits.ctypes.data, numpy.int64)
    bits = numpy.zeros(tile_rows, numpy.uint32)

    @kernel_cache.njit  # cached under its sizes, its cells
    def run(x, w, rows, offsets, row_limits, bits, rounds):
        for _ in range(rounds):
            filter_lanes.tile(x.ctypes.data, rows.ctypes.data,
                              offsets.ctypes.data, w.ctypes.data,
                              tile_filters * 8, row_words,
                              row_limits.ctypes.data, bits.ctypes.data)
    seconds = median_seconds(
        [('tile', lambda: run(x, w, rows, offsets, row_limits, bits,
                              rounds))], 5, warmup=1)
    return rounds * tile_rows * tile_filters * conv.taps() / seconds['tile']


def position_lanes_ceiling(conv, kind, rounds=20000):
    """Multiply-adds a second of the tile across the positions' lanes
    (:mod:`position_lanes`) of ``kind`` on one core with its data in L1:
    the first tile of convolution ``conv`` (one vector of positions where
    the layer has no more) on random bits or pixels, against a group of
    filters, compared with their limits."""
    rng = numpy.random.RandomState(0)
    n = position_lanes.TILE_FILTERS
    weights = packed_format.pack_signs(rng.choice([-1., 1.], (
        n, conv.taps())))
    conv = conv._replace(filters=n)
    if kind == position_lanes.PIXELS:
        tables = position_lanes.pixel_signs(weights, conv)
        offsets = position_lanes.pair_offsets(conv)
        x = position_lanes.pixel_planes(rng.randint(1, 256, (
            1, conv.in_shape[0] * conv.in_shape[1] * conv.in_shape[2])
        ).astype(numpy.uint8), conv)
    else:
        tables = position_lanes.filter_tables(weights, conv)
        offsets = position_lanes.tap_offsets(conv)
        x = rng.randint(0, 256, (1, position_lanes.plane_count(
            conv.in_shape[0]), position_lanes.plane_length(conv))).astype(
                numpy.uint8)
    limits = numpy.zeros((n, position_lanes.POSITIONS), numpy.int16)
    bits = numpy.zeros(position_lanes.POSITIONS, numpy.uint32)
    steps = len(offsets)
    vectors = (position_lanes.VECTORS if position_lanes.flat_positions(conv)
               >= position_lanes.POSITIONS else 1)

    @kernel_cache.njit  # cached under its sizes, its cells
    def run(x, tables, offsets, limits, bits, rounds):
        for _ in range(rounds):
            position_lanes.tile(kind, vectors, x.ctypes.data,
                                offsets.ctypes.data, steps,
                                tables.ctypes.data, limits.ctypes.data,
                                limits.strides[0], bits.ctypes.data)
    seconds = median_seconds(
        [('tile', lambda: run(x, tables, offsets, limits, bits, rounds))],
        5, warmup=1)
    return (rounds * vectors * position_lanes.LANES * n * conv.taps() /
            seconds['tile'])


def pixel_lanes_ceiling(conv, form, rounds=20000):
    """Multiply-adds a second of the first convolution's tile across the
    lanes in ``form`` (:mod:`pixel_lanes`) on one core with its data in
    L1: the pixels of 4 positions, none blank, against a tile of filters,
    compared with their bounds."""
    taps, rows = conv.taps(), pixel_lanes.TILE_ROWS
    rng = numpy.random.RandomState(0)
    signs = packed_format.pack_signs(rng.choice([-1., 1.], (
        pixel_lanes.TILE_FILTERS, taps)))
    w = pixel_lanes.filter_signs(signs, conv._replace(
        filters=pixel_lanes.TILE_FILTERS), form)
    offsets = pixel_lanes.tap_offsets(conv, form)
    # 4 positions side by side, one a padded image's width apart.
    _, height, width = conv.in_shape
    x = rng.randint(1, 256, conv.in_shape[0] * (height + 2 * conv.pad) * (
        width + 2 * conv.pad + pixel_lanes.SLACK) + rows).astype(numpy.uint8)
    positions = numpy.arange(rows, dtype=numpy.int64)
    bounds = numpy.zeros(pixel_lanes.TILE_FILTERS, numpy.int16)
    row_bounds = numpy.full(rows, bounds.ctypes.data, numpy.int64)
    bits = numpy.zeros(rows, numpy.uint32)
    kind = pixel_lanes.tile_kind(form)
    steps = len(offsets)

    @kernel_cache.njit  # cached under its sizes, its cells
    def run(x, w, positions, offsets, row_bounds, bits, rounds):
        for _ in range(rounds):
            filter_lanes.lane_tile(
                kind, x.ctypes.data, positions.ctypes.data,
                offsets.ctypes.data, w.ctypes.data, w.strides[0], steps,
                row_bounds.ctypes.data, bits.ctypes.data)
    seconds = median_seconds(
        [('tile', lambda: run(x, w, positions, offsets, row_bounds, bits,
                              rounds))], 5, warmup=1)
    return rounds * rows * pixel_lanes.TILE_FILTERS * taps / seconds['tile']


def first_convolution_ceiling(conv, rounds=200):
    """Multiply-adds a second of the first convolution's kernel
    (:func:`convolutions.first_convolution_kernel`) on one core, on an
    image of ``conv``'s channels and filters small enough (16 x 16) that
    it and the filters stay in L1."""
    small = packed_format.Convolution(
        (conv.in_shape[0], 16, 16), conv.filters, conv.ksize, conv.stride,
        conv.pad, 0)
    rng = numpy.random.RandomState(0)
    values = rng.randint(1, 256, (1,) + small.in_shape).astype(
        numpy.float32)
    signs = packed_format.pack_signs(rng.choice([-1., 1.], (
        small.filters, small.taps())))
    filters = convolutions.first_filters(signs, small)
    classes, inside = borders.tap_classes(small)
    limits = convolutions.first_limits(
        signs, numpy.zeros(small.filters, numpy.int32), small, inside,
        (1, 0))
    flips = numpy.zeros(words(small.filters), numpy.uint64)
    blank = numpy.zeros((len(inside), len(flips)), numpy.uint64)
    _, out_h, out_w = small.conv_shape()
    out = numpy.empty((1, out_h, out_w, len(flips)), numpy.uint64)

    def run():
        for _ in range(rounds):
            convolutions.first_convolution_kernel(
                values, filters, limits, classes, blank, flips,
                small.stride, small.pad, out)
    with kernel_cache.calling_thread_only():  # one core's rate
        seconds = median_seconds([('first', run)], 5, warmup=1)
    return rounds * small.taps() * math.prod(small.conv_shape()) / seconds[
        'first']


def pair_sums_ceiling(form, pairs=88, rounds=20000):
    """Pixel multiply-adds (both pixels of each pair times units) a second
    of ``form``'s pair sums of the first layer on one core, a chunk's
    masks in L1 (``pairs`` pairs an image: MNIST's mean is 88 of 392 pairs
    not both zero)."""
    @kernel_cache.njit  # cached under its form, its cell
    def run(masks, index, values, counters, rounds):
        for _ in range(rounds):
            first_layer.pair_sums(form, masks.ctypes.data, index.ctypes.data,
                                  values.ctypes.data, len(index),
                                  counters.ctypes.data)

    rng = numpy.random.RandomState(0)
    masks = rng.randint(0, 2, (PAIR_CHUNK, 2 * MASK_UNITS)).astype(
        numpy.uint8)
    index = numpy.sort(rng.randint(0, PAIR_CHUNK, pairs)).astype(
        numpy.int32)
    values = rng.randint(1, 1 << 16, pairs).astype(numpy.uint16)
    counters = numpy.zeros(MASK_UNITS, numpy.uint16)
    seconds = median_seconds([('pairs', lambda: run(
        masks, index, values, counters, rounds))], 5, warmup=1)
    return rounds * 2 * pairs * MASK_UNITS / seconds['pairs']


def gpu_product(size, synchronize, rounds=5):
    """Median seconds of a ``size``^3 binary product (XNOR-popcount) and
    of the float32 cuBLAS product of the same +-1 matrices, which must
    agree."""
    cupy = cuda.cupy
    rng = numpy.random.RandomState(0)
    a = rng.choice([-1., 1.], (size, size)).astype(numpy.float32)
    b = rng.choice([-1., 1.], (size, size)).astype(numpy.float32)
    pa, pb = (cupy.asarray(packed_format.pack_signs(m)) for m in (a, b))
    fa, fb = cupy.asarray(a), cupy.asarray(b)
    products = [('xnor', lambda: gpu.xnor_dot(pa, pb, size)),
                ('cublas', lambda: fa.dot(fb.T))]
    check = slice(0, 256)
    numpy.testing.assert_array_equal(
        *[cupy.asnumpy(run()[check, check]) for _, run in products])
    seconds = median_seconds(products, rounds, warmup=1,
                             synchronize=synchronize)
    return seconds['xnor'], seconds['cublas']
