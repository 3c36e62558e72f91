"""Running a packed binarized MLP: images to classes.

:class:`Engine` evaluates a :class:`packed_format.PackedNetwork` on one
device. Every hidden value is an exact integer, so the result does not
depend on the device or the batch size. Two engines compute the same
function:

``packed``
    XNOR and popcount on 64-bit words (:mod:`xnor_popcount`); on a CPU
    with AVX2 or AVX-512 VPOPCNTDQ, a vector register at a time
    (:mod:`simd_layers`).
``blas``
    Float32 matrix products of +-1 matrices (exact too: every partial sum
    is an integer below 2**24); the baseline ``bench_packed.py`` measures
    the packed engine against.

:func:`chainer_classify` feeds the same 8-bit pixels to the trained
Chainer model, to compare against.
"""
import numpy

import chainer
from chainer.backends import cuda

from quantized_net import kernel_cache
from quantized_net.packed import format as packed_format
from quantized_net.packed.format import PIXEL_MAX
from quantized_net.packed.kernels import simd_layers
from quantized_net.packed.kernels import xnor_popcount

ENGINES = ('packed', 'blas')


def to_pixels(images, n_in):
    """``images`` as ``uint8`` ``(N, n_in)`` pixels.

    Accepts ``uint8`` images, or floats in [0, 1] that are multiples of
    1/255 (as ``chainer.datasets.get_mnist`` gives them), of any shape
    with ``n_in`` values per image.
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


def _logits(d, bias, mean, inv_std, gamma, beta):
    # NumPy's or CuPy's arrays, or compiled by numba: the same operations.
    y = d.astype(numpy.float32) + bias
    y -= mean
    y *= inv_std
    y = y * gamma
    y += beta
    return y


# Five NumPy calls on a batch of one take 7 us, an eighth of its time with
# the vector kernels; compiled, they take 1.8 us. numba rounds each float32
# operation as NumPy does (no contraction into an FMA).
_compiled_logits = (kernel_cache.njit(_logits)
                    if xnor_popcount.numba else None)


def last_layer_logits(last, d):
    """The logits from the last layer's integer dot products ``d``
    ``(images, classes)``: the float32 operations of Chainer's CPU code, in
    its order, so that they round as the trained model's do."""
    logits = _compiled_logits if _compiled_logits and isinstance(
        d, numpy.ndarray) else _logits
    return logits(d, last['bias'], last['mean'], last['inv_std'],
                  last['gamma'], last['beta'])


def check_simd(simd):
    """ValueError unless this CPU runs the packed engine's kernels ``simd``
    (one of :data:`simd_layers.FORMS`, or ``'scalar'``)."""
    runnable = simd_layers.runnable_forms() + ['scalar']
    if simd not in runnable:
        raise ValueError('this CPU cannot run the {} kernels; it runs: {}'
                         .format(simd, ', '.join(runnable)))


class Engine(object):
    """A packed network ready to classify on one device.

    Args:
        network (packed_format.PackedNetwork): What ``load`` returned.
        engine (str): ``'packed'`` (XNOR-popcount) or ``'blas'`` (the same
            network with float32 +-1 matrices).
        device (chainer.backend.Device): Where to run (default: CPU).
        simd (str): On the CPU, the packed engine's vector form (one of
            :data:`simd_layers.FORMS` the CPU runs, or ``'scalar'``);
            default: the fastest this CPU runs (:attr:`simd` says which).
    """

    def __init__(self, network, engine='packed', device=None, simd=None):
        if engine not in ENGINES:
            raise ValueError('engine must be one of {}, got {!r}'.format(
                ENGINES, engine))
        self.network = network
        self.engine = engine
        self.device = device or chainer.get_device('@numpy')
        self.xp = self.device.xp
        n = len(network.sizes) - 1
        self.masks = None
        self.simd = None
        if engine == 'packed' and self.xp is numpy:
            self.simd = simd or simd_layers.best_form() or 'scalar'
            check_simd(self.simd)
        if engine == 'packed':
            self.weights = [self.device.send(w) for w in network.weights]
            if self.simd == 'scalar':
                self.masks = xnor_popcount.first_layer_masks(
                    network.weights[0], network.sizes[0])
            elif self.simd:
                self._prepare_simd()
        else:
            self.weights = [self.device.send(network.signs(i).T.copy())
                            for i in range(n)]
        self.thresholds = [self.device.send(t) for t in network.thresholds]
        self.flips = [self.device.send(f) for f in network.flips]
        self._layers = None

    def _prepare_simd(self):
        network, form = self.network, self.simd
        sizes = network.sizes
        self.pixel_masks = simd_layers.pixel_masks(network.weights[0],
                                                   sizes[0])
        self.simd_weights = [None] + [
            simd_layers.weights(network.weights[i], sizes[i + 1], form)
            for i in range(1, len(sizes) - 1)]
        self.limits = [simd_layers.pixel_limits(network.thresholds[0])] + [
            xnor_popcount.pop_limits(t, sizes[i])
            for i, t in enumerate(network.thresholds) if i]

    def _simd_layers(self):
        sizes, form = self.network.sizes, self.simd

        def first(pixels):
            return simd_layers.first_layer(pixels, self.pixel_masks,
                                           self.limits[0], self.flips[0],
                                           form)

        def hidden(i):
            return lambda h: simd_layers.sign_layer(
                h, self.simd_weights[i], self.limits[i], self.flips[i], form)
        return ([first] + [hidden(i) for i in range(1, len(sizes) - 2)] +
                [lambda h: simd_layers.dot(h, self.simd_weights[-1],
                                           sizes[-2], sizes[-1], form)])

    def layers(self):
        """The network as one function a layer, each from the previous
        layer's output to its own; the first takes the pixels as the
        device's ``uint8`` array, the last gives the integer dot products
        of the output layer."""
        if self.simd not in (None, 'scalar'):
            return self._simd_layers()
        xp, sizes = self.xp, self.network.sizes
        if self.engine == 'blas':
            def hidden(w, t, f):
                return lambda h: xp.where(
                    packed_format.unit_fires(h.dot(w), t, f),
                    xp.float32(1), xp.float32(-1))
            first = hidden(self.weights[0], self.thresholds[0],
                           self.flips[0])
            return ([lambda pixels: first(pixels.astype(xp.float32))] +
                    [hidden(w, t, f) for w, t, f in zip(
                        self.weights[1:], self.thresholds[1:],
                        self.flips[1:])] +
                    [lambda h: h.dot(self.weights[-1])])

        def hidden(i):
            return lambda h: xnor_popcount.sign_layer(
                h, self.weights[i], sizes[i], self.thresholds[i],
                self.flips[i])
        return ([lambda pixels: xnor_popcount.first_layer(
                    pixels, self.weights[0], self.thresholds[0],
                    self.flips[0], self.masks)] +
                [hidden(i) for i in range(1, len(sizes) - 2)] +
                [lambda h: xnor_popcount.xnor_dot(h, self.weights[-1],
                                                  sizes[-2])])

    def dots(self, pixels):
        """The last layer's integer dot products for ``uint8`` pixels
        ``(N, n_in)``, as an int32 NumPy array."""
        h = numpy.ascontiguousarray(pixels)
        if self.xp is not numpy:
            h = self.device.send(h)
        if self.simd not in (None, 'scalar'):
            sizes = self.network.sizes
            return simd_layers.network(
                h, self.pixel_masks, self.limits, self.flips,
                self.simd_weights[1:], sizes[-2], sizes[-1], self.simd)
        if self._layers is None:  # built once: a batch of one is ~100 us
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


def chainer_classify(predictor, pixels):
    """The classes a Chainer MLP gives ``uint8`` pixels, fed as
    ``chainer.datasets.get_mnist`` would feed them, on the predictor's
    device; a NumPy array."""
    x = pixels.astype(numpy.float32)
    x *= 1. / PIXEL_MAX
    x = predictor.device.send(x)
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return cuda.to_cpu(predictor(x).array.argmax(axis=1))


def chainer_labels(model, pixels, batchsize):
    """:func:`chainer_classify` of a trained classifier, a batch at a
    time."""
    return numpy.concatenate([
        chainer_classify(model.predictor, pixels[start:start + batchsize])
        for start in range(0, len(pixels), batchsize)])
