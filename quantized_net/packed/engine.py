"""Running a packed binarized MLP: images to classes.

An engine evaluates a :class:`format.PackedNetwork` on one device with one
set of kernels; :func:`select` picks the engine that runs a network where
it is asked to, as Larq Compute Engine picks its kernels for the machine.
Every hidden value is an exact integer, so every engine computes the same
function, whatever the device or the batch size. The engines, by
``kind``:

``packed``
    XNOR and popcount on the packed bits. On the CPU, numba kernels of one
    form (:mod:`kernels.cpu_features`): :class:`Avx512Engine`,
    :class:`Avx2Engine`, or :class:`PortableEngine`, which runs on any
    CPU; on a GPU, CuPy raw kernels (:class:`GpuEngine`).
``blas``
    Float32 matrix products of +-1 matrices, NumPy's or CuPy's
    (:class:`BlasEngine`): exact too, every partial sum an integer below
    2**24; the baseline ``bench_packed.py`` measures the packed engines
    against.

Each engine gives its layers one by one (:meth:`Engine.layers`), and the
dot products of the last layer (:meth:`Engine.dots`), from which the
logits follow as the trained model computes them
(:func:`last_layer_logits`).
"""
import collections
import math

import numpy

import chainer
from chainer.backends import cuda
from chainer.utils import conv as chainer_conv

from quantized_net import kernel_cache
from quantized_net.packed import format as packed_format
from quantized_net.training.mnist import PIXEL_MAX
from quantized_net.packed.kernels import borders
from quantized_net.packed.kernels import cpu_features
from quantized_net.packed.kernels import gpu
from quantized_net.packed.kernels import layouts

if cpu_features.HAVE_NUMBA:
    from quantized_net.packed.kernels import convnet as convnet_cpu
    from quantized_net.packed.kernels import convolutions as convolutions_cpu
    from quantized_net.packed.kernels import filter_lanes
    from quantized_net.packed.kernels import first_layer
    from quantized_net.packed.kernels import hidden_layers
    from quantized_net.packed.kernels import network as cpu_network
    from quantized_net.packed.kernels import pixel_lanes
    from quantized_net.packed.kernels import position_lanes
    from quantized_net.packed.kernels import tap_planes
    from quantized_net.packed.kernels import thresholds

#: The kinds of engine.
ENGINES = ('packed', 'blas')

#: A convolution across the filter lanes (:func:`filter_lanes.convolution`):
#: its filters' words transposed, its planes' word offsets and its classes'
#: limits, or for the first convolution its filters' int16 signs, its taps'
#: offsets and its classes' bounds (:mod:`pixel_lanes`); or, ``positions``
#: true, across the output positions' lanes
#: (:func:`position_lanes.convolution`): its filters' tables, its byte
#: planes' offsets and its positions' limits.
Lanes = collections.namedtuple('Lanes', 'filters offsets limits positions',
                               defaults=(False,))


def to_pixels(images, n_in):
    """``images`` as ``uint8`` ``(N, n_in)`` pixels.

    Accepts ``uint8`` images, or floats in [0, 1] that are multiples of
    1/255 (as ``chainer.datasets.get_mnist`` gives them), of any shape
    with ``n_in`` values per image.

    Raises:
        ValueError: The images are not of ``n_in`` values each, or not
            8-bit pixels.
    """
    images = numpy.asarray(images)
    if images.ndim < 1 or images.size != len(images) * n_in:
        raise ValueError('images of shape {} do not hold {} values each'
                         .format(images.shape, n_in))
    images = images.reshape(len(images), n_in)
    if images.dtype == numpy.uint8:
        return images
    if images.dtype.kind not in 'fiu':
        raise ValueError('images must be numbers, got {}'.format(
            images.dtype))
    scaled = images * PIXEL_MAX if images.dtype.kind == 'f' else images
    pixels = numpy.rint(scaled)
    if not (numpy.all((pixels >= 0) & (pixels <= PIXEL_MAX))
            and numpy.all(numpy.abs(scaled - pixels) <= 1e-3)):
        raise ValueError(
            'the packed network takes 8-bit images: uint8 0-255, or floats '
            'in [0, 1] that are multiples of 1/255')
    return pixels.astype(numpy.uint8)


def logits_of(d, bias, mean, inv_std, gamma, beta):
    """``((d + bias - mean) * inv_std) * gamma + beta`` in float32, in
    this order: NumPy's or CuPy's arrays, or compiled by numba."""
    y = d.astype(numpy.float32) + bias
    y -= mean
    y *= inv_std
    y = y * gamma
    y += beta
    return y


#: :func:`logits_of` compiled: for a batch of one, five NumPy calls take
#: several times as long as the compiled loop. numba rounds each float32
#: operation as NumPy does (no contraction into an FMA).
logits_kernel = (kernel_cache.njit(logits_of) if cpu_features.HAVE_NUMBA
                 else None)


def last_layer_logits(last, d):
    """The logits from the last layer's integer dot products ``d``
    ``(images, classes)``: the float32 operations of Chainer's CPU code, in
    its order, so that they round as the trained model's do."""
    logits = logits_kernel if logits_kernel and isinstance(
        d, numpy.ndarray) else logits_of
    return logits(d, last['bias'], last['mean'], last['inv_std'],
                  last['gamma'], last['beta'])


class Engine(object):
    """A packed network ready to classify on one device.

    Args:
        network (format.PackedNetwork): What ``format.load`` returned.
        device (chainer.backend.Device): Where to run (default: CPU).

    Attributes:
        kind (str): One of :data:`ENGINES`.
        simd (str): The form of the CPU kernels (one of
            :data:`cpu_features.FORMS`), or None.
    """
    kind = None
    simd = None

    def __init__(self, network, device=None):
        self.network = network
        self.device = device or chainer.get_device('@numpy')
        self._layers = None

    def layers(self):
        """The network as one function a layer, each from the previous
        layer's output to its own: the first takes the pixels as the
        device's ``uint8`` array ``(N, n_in)``, the last gives the integer
        dot products of the output layer."""
        raise NotImplementedError

    def weight_bytes(self):
        """Bytes of the weights the engine reads: the packed bits."""
        return self.network.weight_bytes()

    def dots(self, pixels):
        """The last layer's integer dot products for ``uint8`` pixels
        ``(N, n_in)``, as an int32 NumPy array."""
        step = images_per_pass(self.network)
        if len(pixels) > step:
            return numpy.concatenate([self.dots(pixels[i:i + step])
                                      for i in range(0, len(pixels), step)])
        h = self.device.send(numpy.ascontiguousarray(pixels))
        if self._layers is None:  # built once, not for every batch
            self._layers = self.layers()
        for layer in self._layers:
            h = layer(h)
        return cuda.to_cpu(h).astype(numpy.int32, copy=False)

    def logits(self, images):
        """float32 ``(N, classes)`` logits of ``images`` (see
        :func:`to_pixels` for what images may be)."""
        pixels = to_pixels(images, self.network.sizes[0])
        return last_layer_logits(self.network.last, self.dots(pixels))

    def classify(self, images):
        """The class of each image: the first index of its largest logit,
        as ``argmax`` chooses in the Chainer model."""
        return self.logits(images).argmax(axis=1)


def pooled_max(d, pool):
    """The ``pool`` x ``pool`` max-pooling of ``(N, C, H, W)`` sums at
    stride ``pool`` over whole windows (Chainer's ``cover_all=False``):
    the leftover rows and columns are dropped."""
    n, c, h, w = d.shape
    h, w = h // pool, w // pool
    windows = d[:, :, :h * pool, :w * pool].reshape(n, c, h, pool, w, pool)
    return windows.max(axis=(3, 5))


#: Bytes of the largest im2col matrix of a ConvNet's pass: a larger batch
#: is run this many images at a time, as the matrices of 10000 images
#: would not fit in memory.
COLUMN_BYTES = 2 ** 26


def images_per_pass(network):
    """How many images an engine runs ``network`` on at once: any number
    for an MLP, for a ConvNet as many as keep each convolution's float32
    im2col matrix within :data:`COLUMN_BYTES`."""
    per_image = max([4 * conv.taps() * math.prod(conv.conv_shape()[1:])
                     for conv in network.convolutions], default=0)
    return max(1, COLUMN_BYTES // per_image) if per_image else math.inf


def convolution_columns(xp, h, conv):
    """Chainer's zero-padded im2col matrix of convolution ``conv`` of the
    values ``h``: a row of ``taps`` values per output position, ``(N *
    height * width, taps)``, rows in image, row, column order."""
    h = h.reshape((len(h),) + conv.in_shape)
    im2col = (chainer_conv.im2col_cpu if xp is numpy
              else chainer_conv.im2col_gpu)
    columns = im2col(h, conv.ksize, conv.ksize, conv.stride, conv.stride,
                     conv.pad, conv.pad)
    n, _, _, _, out_h, out_w = columns.shape
    return columns.transpose(0, 4, 5, 1, 2, 3).reshape(n * out_h * out_w,
                                                       -1)


def convolution_sums(xp, h, w, conv):
    """The integer sums ``(N, filters, height, width)`` of convolution
    ``conv`` of the +-1 or pixel values ``h``, pooled: float32 products of
    the im2col matrix (:func:`convolution_columns`) with the filters ``w``
    ``(taps, filters)``, exact below 2**24."""
    _, out_h, out_w = conv.conv_shape()
    d = convolution_columns(xp, h, conv).dot(w).reshape(
        len(h), out_h, out_w, -1).transpose(0, 3, 1, 2)
    return pooled_max(d, conv.pool) if conv.pool else d


def pixel_map(network):
    """``(a, b)``: the first layer takes ``a p + b`` of pixel ``p``, the
    pixel itself for an MLP, :data:`format.PIXEL_VALUES` for a ConvNet."""
    return (packed_format.PIXEL_VALUES[network.meta['input']['value']]
            if network.convolutions else (1, 0))


def pixel_values(network, pixels):
    """The first layer's float32 inputs (:func:`pixel_map`)."""
    xp = chainer.backend.get_array_module(pixels)
    a, b = pixel_map(network)
    return pixels.astype(xp.float32) * xp.float32(a) + xp.float32(b)


def fully_connected_rows(network):
    """The packed rows of the fully connected layers, input to output: the
    file's, but for the first after a ConvNet's convolutions, whose inputs
    the engines hold as the last convolution's output lies, each pixel's
    channels together (:func:`layouts.channels_last`)."""
    convolutions = network.convolutions
    rows = network.weights[len(convolutions):]
    if not convolutions:
        return list(rows)
    channels, height, width = convolutions[-1].out_shape()
    return [layouts.channels_last(rows[0], channels, height * width)] + \
        list(rows[1:])


class BlasEngine(Engine):
    """The network as float32 products of +-1 matrices, with NumPy's or
    CuPy's BLAS; each hidden layer's output is +1 where
    :func:`format.unit_fires`, else -1. A convolution is the product of
    its zero-padded im2col matrix (Chainer's) with the filters, pooled."""
    kind = 'blas'

    def __init__(self, network, device=None):
        super(BlasEngine, self).__init__(network, device)
        send = self.device.send
        self.weights = [send(network.signs(i).T.copy())
                        for i in range(len(network.sizes) - 1)]
        self.thresholds = [send(t) for t in network.thresholds]
        self.flips = [send(f) for f in network.flips]

    def weight_bytes(self):
        """Bytes of the float32 matrices."""
        return sum(w.nbytes for w in self.weights)

    def products(self, pixels):
        """The matrices the network multiplies for ``pixels``: ``[(a,
        w)]``, a layer's inputs (for a convolution its im2col matrix) and
        its weights, whose product ``a.dot(w)`` is all the layer's
        multiply-adds."""
        convolutions = self.network.convolutions
        h = self.device.send(numpy.ascontiguousarray(pixels))
        products = []
        for i, layer in enumerate(self.layers()):
            a = h if i else pixel_values(self.network, h)
            if i < len(convolutions):
                a = convolution_columns(self.device.xp, a, convolutions[i])
            products.append((a.reshape(len(a), -1), self.weights[i]))
            h = layer(h)
        return products

    def layers(self):
        xp = self.device.xp
        convolutions = self.network.convolutions

        def sums(i):
            if i < len(convolutions):
                return lambda h: convolution_sums(
                    xp, h, self.weights[i], convolutions[i])
            n = self.network.sizes[i]
            return lambda h: h.reshape(len(h), n).dot(self.weights[i])

        def hidden(i):
            d = sums(i)
            t, f = self.thresholds[i], self.flips[i]
            if i < len(convolutions):  # per filter, over its positions
                t, f = t[:, None, None], f[:, None, None]
            return lambda h: xp.where(packed_format.unit_fires(d(h), t, f),
                                      xp.float32(1), xp.float32(-1))
        first = hidden(0)
        last = len(self.weights) - 1
        return ([lambda pixels: first(pixel_values(self.network, pixels))] +
                [hidden(i) for i in range(1, last)] + [sums(last)])


class GpuEngine(Engine):
    """XNOR-popcount on a GPU, with the CuPy raw kernels of
    :mod:`kernels.gpu`, on the packed rows as the file holds them; a
    ConvNet's convolutions on rows of taps, each position's channels
    together (:func:`layouts.channels_last`), corrected for the border
    (:mod:`kernels.borders`)."""
    kind = 'packed'

    def __init__(self, network, device):
        super(GpuEngine, self).__init__(network, device)
        send = self.device.send
        self.thresholds = [send(t) for t in network.thresholds]
        self.flips = [send(f) for f in network.flips]
        convolutions = network.convolutions
        if not convolutions:
            self.weights = [send(w) for w in network.weights]
            return
        first = convolutions[0]
        self.values = pixel_map(network)
        self.first_signs = send(network.signs(0).astype(numpy.int8))
        self.weights = [None]
        self.offsets = [send(numpy.zeros((1, first.filters), numpy.int32))]
        self.classes = [send(numpy.zeros(
            math.prod(first.conv_shape()[1:]), numpy.int32))]
        for i, conv in enumerate(convolutions[1:], 1):
            rows = layouts.channels_last(network.weights[i],
                                         conv.in_shape[0], conv.ksize ** 2)
            classes, inside = borders.tap_classes(conv)
            self.weights.append(send(rows))
            self.offsets.append(send(borders.offsets(
                network.weights[i], conv, inside).astype(numpy.int32)))
            self.classes.append(send(classes))
        self.weights += [send(rows) for rows in fully_connected_rows(network)]

    def layers(self):
        sizes = self.network.sizes
        convolutions = self.network.convolutions
        n_conv = len(convolutions)

        def hidden(i):
            return lambda h: gpu.sign_layer(
                h.reshape(len(h), -1), self.weights[i], sizes[i],
                self.thresholds[i], self.flips[i])

        def convolution(i):
            conv = convolutions[i]

            def layer(h):
                if i == 0:
                    d = gpu.pixel_convolution(h, self.values,
                                              self.first_signs, conv)
                else:  # k = 0: d is -2 popcount, the offsets add the rest
                    d = gpu.xnor_dot(gpu.bit_columns(h, conv),
                                     self.weights[i], 0)
                return gpu.convolution_bits(
                    d, self.offsets[i], self.classes[i], self.thresholds[i],
                    self.flips[i], len(h), conv.conv_shape(), conv.pool or 1)
            return layer
        if n_conv:
            first = [convolution(i) for i in range(n_conv)]
        else:
            first = [lambda pixels: gpu.first_layer(
                pixels, self.weights[0], self.thresholds[0], self.flips[0])]
        return (first +
                [hidden(i) for i in range(len(first), len(sizes) - 2)] +
                [lambda h: gpu.xnor_dot(h.reshape(len(h), -1),
                                        self.weights[-1], sizes[-2])])


class CpuEngine(Engine):
    """XNOR-popcount on the CPU with the numba kernels of one form,
    :attr:`simd`, in its layout (:mod:`kernels.layouts`): the first layer
    by pixel pairs (:mod:`kernels.first_layer`), the hidden and last
    layers by popcount tiles (:mod:`kernels.hidden_layers`), and
    :meth:`dots` as one compiled call (:mod:`kernels.network`)."""
    kind = 'packed'

    def __init__(self, network):
        super(CpuEngine, self).__init__(network)
        if network.convolutions:
            self._prepare_convnet()
            return
        sizes, form = network.sizes, self.simd
        self.masks = layouts.pixel_masks(network.weights[0], sizes[0])
        self.first_limits = thresholds.pixel_limits(network.thresholds[0])
        self.flips = network.flips
        #: The hidden layers' after the first, then the last layer's.
        self.weights = [layouts.weights(w, n, form) for w, n in zip(
            network.weights[1:], sizes[2:])]
        self.limits = [thresholds.pop_limits(t, k) for t, k in zip(
            network.thresholds[1:], sizes[1:])]

    def _prepare_convnet(self):
        """A ConvNet's layers: the first convolution on the pixels, across
        the positions' lanes in the avx2 form where its stride is 1
        (:mod:`kernels.position_lanes`), else across the filters' integer
        lanes (:mod:`kernels.pixel_lanes`; by float32 vectors in the
        scalar form or where its sums are too wide), each border class with
        its limits; every later one on the bits, in the avx2 form across
        the positions' lanes where they run, else across the filters
        (:mod:`kernels.filter_lanes`) or, in the scalar form,
        by the popcount tiles (:mod:`kernels.convolutions`); and the
        fully connected layers as an MLP's, the first of them on
        the last convolution's bits as they lie, each pixel's channels
        together."""
        network, form = self.network, self.simd
        convolutions = network.convolutions
        first = convolutions[0]
        self.first_classes, inside = borders.tap_classes(first)
        self.first_limits = convolutions_cpu.first_limits(
            network.weights[0], network.thresholds[0], first, inside,
            pixel_map(network))
        self.flips = network.flips
        self.flip_words = [convolutions_cpu.flip_words(f)
                           for f in network.flips[:len(convolutions)]]
        # The first convolution across the positions' lanes
        # (kernels.position_lanes) where they run, else across integer
        # lanes of filters (kernels.pixel_lanes), or None where its sums
        # are too wide or the form is the scalar reference: then its
        # float32 kernel's filters and blank words, its outputs flipped
        # after pooling, not before.
        if position_lanes.runs_pixels(first, form):
            self.first_lanes = Lanes(
                position_lanes.pixel_signs(network.weights[0], first),
                position_lanes.pair_offsets(first),
                position_lanes.pixel_limits(self.first_limits,
                                            self.first_classes, first),
                positions=True)
        elif pixel_lanes.runs(first, form):
            self.first_lanes = Lanes(
                pixel_lanes.filter_signs(network.weights[0], first, form),
                pixel_lanes.tap_offsets(first, form),
                pixel_lanes.bounds(self.first_limits, first.filters))
        else:
            self.first_lanes = None
        if not self.first_lanes:
            self.first_filters = convolutions_cpu.first_filters(
                network.weights[0], first)
            self.first_unpooled_flips = self.flip_words[0] * numpy.uint64(
                not first.pool)
            self.first_blank = convolutions_cpu.blank_words(
                self.first_limits, self.first_unpooled_flips)
        # Per convolution after the first: its filters, offsets and limits
        # across the positions' lanes (kernels.position_lanes) where they
        # run, else across the filters' (kernels.filter_lanes), or None in
        # the scalar reference form; the tiles' weights only where None.
        self.weights, self.limits, self.classes = [], [], []
        # For a batch of one, a layer of few positions runs across the
        # filters (position_lanes.MIN_POSITIONS): its lanes there.
        self.lanes, one_image_lanes = [], []
        for i, conv in enumerate(convolutions[1:], 1):
            classes, inside = borders.tap_classes(conv)
            limits = borders.class_limits(
                network.weights[i], network.thresholds[i], conv, inside)
            lanes = one_image = None
            if position_lanes.runs(conv, form):
                lanes = Lanes(
                    position_lanes.filter_tables(network.weights[i], conv),
                    position_lanes.tap_offsets(conv),
                    position_lanes.position_limits(limits, classes, conv),
                    positions=True)
                if position_lanes.runs(conv, form, images=1):
                    one_image = lanes
            if one_image is None and filter_lanes.runs(form):
                one_image = Lanes(filter_lanes.transposed(
                    tap_planes.filter_words(network.weights[i], conv),
                    conv.filters), tap_planes.word_offsets(conv),
                    filter_lanes.lane_limits(limits))
            lanes = lanes or one_image
            self.lanes.append(lanes)
            one_image_lanes.append(one_image)
            self.weights.append(None if lanes else layouts.weights(
                layouts.channels_last(network.weights[i], conv.in_shape[0],
                                      conv.ksize ** 2, aligned=False),
                conv.filters, form))
            self.limits.append(limits)
            self.classes.append(classes)
        self.weights += [layouts.weights(rows, len(rows), form)
                         for rows in fully_connected_rows(network)]
        self.limits += [thresholds.pop_limits(t, k) for t, k in zip(
            network.thresholds[len(convolutions):],
            network.sizes[len(convolutions):])]
        # The whole ConvNet in one compiled call, where every convolution
        # runs across the lanes (kernels.convnet), and for a batch of one
        # image with its own lanes where they differ; else None.
        n, sizes = len(convolutions), network.sizes

        def compiled(lanes):
            return convnet_cpu.Dots(
                convolutions, [self.first_lanes] + lanes,
                [self.first_classes] + self.classes, self.flip_words,
                self.weights[n - 1:], self.limits[n - 1:],
                network.flips[n:], sizes[-2], sizes[-1], form) if (
                    convnet_cpu.runs(convolutions,
                                     [self.first_lanes] + lanes)) else None
        self.compiled = compiled(self.lanes)
        self.compiled_one = (
            self.compiled if all(a is b for a, b in zip(one_image_lanes,
                                                        self.lanes))
            else compiled(one_image_lanes))

    def _convnet_layers(self):
        network, form = self.network, self.simd
        convolutions = network.convolutions
        first = convolutions[0]

        def across_lanes(x, i, lanes, classes, kind):
            # The lanes pool 2 x 2 as they count; other windows pool after.
            conv = convolutions[i]
            fused = 2 if conv.pool == 2 else 0
            flips = self.flip_words[i] * numpy.uint64(
                not conv.pool or fused > 0)
            if lanes.positions:
                out = position_lanes.convolution(
                    x, conv, lanes.filters, lanes.offsets, lanes.limits,
                    flips, fused, kind)
            else:
                out = filter_lanes.convolution(
                    x, conv, lanes.filters, lanes.offsets, lanes.limits,
                    classes, flips, fused, kind)
            if conv.pool and not fused:
                out = convolutions_cpu.pooled(out, conv.pool,
                                              self.flip_words[i])
            return out

        def pixels_layer(pixels):
            if self.first_lanes and self.first_lanes.positions:
                return across_lanes(
                    position_lanes.pixel_planes(pixels, first), 0,
                    self.first_lanes, self.first_classes,
                    position_lanes.PIXELS)
            if self.first_lanes:
                return across_lanes(pixel_lanes.padded(pixels, first), 0,
                                    self.first_lanes, self.first_classes,
                                    pixel_lanes.tile_kind(form))
            h = convolutions_cpu.first_convolution(
                pixels, self.first_filters, self.first_limits,
                self.first_classes, self.first_blank,
                self.first_unpooled_flips, first)
            if first.pool:
                h = convolutions_cpu.pooled(h, first.pool,
                                            self.flip_words[0])
            return h

        def convolution(i):
            conv = convolutions[i]
            weights = self.weights[i - 1]
            no_flips = numpy.zeros(conv.filters, numpy.bool_)

            lanes = self.lanes[i - 1]

            def layer(h):
                if lanes:
                    planes = (position_lanes.byte_planes if lanes.positions
                              else tap_planes.planes)
                    return across_lanes(planes(h, conv), i, lanes,
                                        self.classes[i - 1],
                                        position_lanes.BITS if
                                        lanes.positions else
                                        filter_lanes.BITS)
                _, out_h, out_w = conv.conv_shape()
                out = hidden_layers.sign_layer(
                    convolutions_cpu.columns(h, conv, form), weights,
                    self.limits[i - 1],
                    no_flips if conv.pool else self.flips[i], form,
                    classes=self.classes[i - 1], plain=True)
                out = out.reshape(len(h), out_h, out_w, -1)
                if conv.pool:
                    out = convolutions_cpu.pooled(out, conv.pool,
                                                  self.flip_words[i])
                return out
            return layer

        def dense(i, flat):
            j = i - 1  # self.weights and self.limits skip the first layer

            def layer(h):
                if flat:
                    h = layouts.layout(h.reshape(
                        len(h), math.prod(h.shape[1:])), form)
                if i == len(network.weights) - 1:
                    return hidden_layers.dot(h, self.weights[j],
                                             network.sizes[i],
                                             network.sizes[i + 1], form)
                return hidden_layers.sign_layer(h, self.weights[j],
                                                self.limits[j],
                                                self.flips[i], form)
            return layer
        n_conv = len(convolutions)
        return ([pixels_layer] +
                [convolution(i) for i in range(1, n_conv)] +
                [dense(i, i == n_conv)
                 for i in range(n_conv, len(network.weights))])

    def layers(self):
        if self.network.convolutions:
            return self._convnet_layers()
        sizes, form = self.network.sizes, self.simd

        def hidden(i):
            return lambda h: hidden_layers.sign_layer(
                h, self.weights[i], self.limits[i], self.flips[i + 1], form)
        return ([lambda pixels: first_layer.first_layer(
                    pixels, self.masks, self.first_limits, self.flips[0],
                    form)] +
                [hidden(i) for i in range(len(self.limits))] +
                [lambda h: hidden_layers.dot(h, self.weights[-1], sizes[-2],
                                             sizes[-1], form)])

    def dots(self, pixels):
        convolutions = self.network.convolutions
        sizes = self.network.sizes
        if convolutions and self.compiled:
            if len(pixels) == 1:
                return self.compiled_one(pixels)
            return self.compiled(pixels)
        if convolutions:
            return super(CpuEngine, self).dots(pixels)
        return cpu_network.dots(
            numpy.ascontiguousarray(pixels), self.masks, self.first_limits,
            self.flips[0], self.weights, self.limits, self.flips[1:],
            sizes[-2], sizes[-1], self.simd)


class Avx512Engine(CpuEngine):
    """:class:`CpuEngine` with AVX-512 VPOPCNTDQ tiles."""
    simd = 'avx512'


class Avx2Engine(CpuEngine):
    """:class:`CpuEngine` with AVX2 nibble-lookup tiles."""
    simd = 'avx2'


class PortableEngine(CpuEngine):
    """:class:`CpuEngine` with LLVM's generic popcount and arithmetic: any
    CPU numba compiles for."""
    simd = 'scalar'


#: The CPU's packed engines by the form of their kernels.
CPU_ENGINES = {engine.simd: engine
               for engine in (Avx512Engine, Avx2Engine, PortableEngine)}


def select(network, device=None, kind='packed', simd=None):
    """The engine of ``kind`` that runs ``network`` on ``device``.

    Args:
        network (format.PackedNetwork): What ``format.load`` returned.
        device (chainer.backend.Device): Where to run (default: CPU).
        kind (str): One of :data:`ENGINES`.
        simd (str): For the CPU's packed engine, the form of its kernels
            (one of :data:`cpu_features.FORMS` this CPU runs); default: the
            fastest this CPU runs.

    Returns:
        Engine: :class:`BlasEngine`, :class:`GpuEngine` or one of
        :data:`CPU_ENGINES`.

    Raises:
        ValueError: An unknown ``kind``, or a ``simd`` this CPU does not
            run or that the engine has no use for.
        RuntimeError: The CPU's packed engine without numba.
    """
    if kind not in ENGINES:
        raise ValueError('engine must be one of {}, got {!r}'.format(
            ENGINES, kind))
    device = device or chainer.get_device('@numpy')
    on_cpu = device.xp is numpy
    if simd is not None and not (kind == 'packed' and on_cpu):
        raise ValueError("simd chooses the kernels of the CPU's packed "
                         'engine, not of the {} engine on {}'.format(
                             kind, device))
    if kind == 'blas':
        return BlasEngine(network, device)
    if not on_cpu:
        return GpuEngine(network, device)
    if not cpu_features.HAVE_NUMBA:
        raise RuntimeError(cpu_features.NO_NUMBA)
    simd = simd or cpu_features.best_form()
    cpu_features.check_form(simd)
    return CPU_ENGINES[simd](network)
