#!/usr/bin/env python3
"""Classifies images with a packed binarized MLP (written by export.py).

    ./infer_packed.py result/model.packed.npz            # MNIST test set
    ./infer_packed.py model.packed.npz --gpu 0           # CuPy raw kernels
    ./infer_packed.py model.packed.npz --compare result  # against Chainer
    ./infer_packed.py model.packed.npz --images digits-idx3-ubyte.gz

The network runs on 1-bit weights and activations: XNOR and popcount on
64-bit words (``xnor_popcount.py``), with batch normalisation and sign
folded into integer thresholds. Every hidden value is an exact integer, so
the result does not depend on the device or the batch size. ``--engine
blas`` evaluates the same network with float32 matrix products of +-1
matrices instead (exact too: every partial sum is an integer below 2**24):
the baseline ``bench_packed.py`` measures the packed engine against.
"""
import argparse
import sys
import time

import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer.backends import cuda

import mnist_dataset
import packed_format
from packed_format import PIXEL_MAX
from train_mnist import (UsageError, _int_at_least, add_device_flags,
                         resolve_device_flags, select_device)
import xnor_popcount

PROG = 'infer_packed.py'
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


class Engine(object):
    """A packed network ready to classify on one device.

    Args:
        network (packed_format.PackedNetwork): What ``load`` returned.
        engine (str): ``'packed'`` (XNOR-popcount) or ``'blas'`` (the same
            network with float32 +-1 matrices).
        device (chainer.backend.Device): Where to run (default: CPU).
    """

    def __init__(self, network, engine='packed', device=None):
        if engine not in ENGINES:
            raise ValueError('engine must be one of {}, got {!r}'.format(
                ENGINES, engine))
        self.network = network
        self.engine = engine
        self.device = device or chainer.get_device('@numpy')
        self.xp = self.device.xp
        n = len(network.sizes) - 1
        if engine == 'packed':
            self.weights = [self.device.send(w) for w in network.weights]
            if self.xp is numpy:
                self.masks = xnor_popcount.first_layer_masks(
                    network.weights[0], network.sizes[0])
        else:
            self.weights = [self.device.send(network.signs(i).T.copy())
                            for i in range(n)]
        self.thresholds = [self.device.send(t) for t in network.thresholds]
        self.flips = [self.device.send(f) for f in network.flips]

    def dots(self, pixels):
        """The last layer's integer dot products for ``uint8`` pixels
        ``(N, n_in)``, as an int32 NumPy array."""
        xp = self.xp
        pixels = self.device.send(numpy.ascontiguousarray(pixels))
        sizes = self.network.sizes
        if self.engine == 'blas':
            h = pixels.astype(xp.float32)
            for w, t, f in zip(self.weights, self.thresholds, self.flips):
                h = xp.where((h.dot(w) >= t) != f, xp.float32(1),
                             xp.float32(-1))
            d = h.dot(self.weights[-1])
        else:
            h = xnor_popcount.first_layer(
                pixels, self.weights[0], self.thresholds[0], self.flips[0],
                getattr(self, 'masks', None))
            for i in range(1, len(sizes) - 2):
                h = xnor_popcount.sign_layer(
                    h, self.weights[i], sizes[i], self.thresholds[i],
                    self.flips[i])
            d = xnor_popcount.xnor_dot(h, self.weights[-1], sizes[-2])
        return cuda.to_cpu(d).astype(numpy.int32)

    def logits(self, images):
        """float32 ``(N, classes)`` logits of ``images`` (see
        :func:`to_pixels` for what images may be)."""
        pixels = to_pixels(images, self.network.sizes[0])
        return packed_format.last_layer_logits(self.network.last,
                                               self.dots(pixels))

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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Classify images with a packed binarized '
                               'MLP (XNOR-popcount)')
    parser.add_argument('packed', help='File written by export.py')
    parser.add_argument('--images', default=None,
                        help='IDX image file (.gz or raw) to classify '
                             'instead of the MNIST test set')
    parser.add_argument('--labels', default=None,
                        help='IDX label file for --images; without it the '
                             'predicted labels are printed, one a line')
    parser.add_argument('--dataset-dir', default=None,
                        help='Directory with the four MNIST IDX files')
    parser.add_argument('--engine', choices=ENGINES, default='packed',
                        help='packed: XNOR-popcount; blas: float32 products '
                             'of +-1 matrices (default: packed)')
    parser.add_argument('--batchsize', '-b', type=_int_at_least(1),
                        default=10000,
                        help='Number of images classified at a time')
    parser.add_argument('--compare', metavar='RESULT', default=None,
                        help='Output directory of train_mnist.py: count the '
                             'images whose label differs from the Chainer '
                             'model\'s')
    add_device_flags(parser)
    args = parser.parse_args(argv)
    resolve_device_flags(parser, args)
    return args


def load_images(args):
    """``(pixels, labels or None, description)`` that ``args`` ask for."""
    try:
        if args.images:
            pixels = mnist_dataset.read_images(args.images)
            labels = (mnist_dataset.read_labels(args.labels)
                      if args.labels else None)
            if labels is not None and len(labels) != len(pixels):
                raise UsageError('{} holds {} images but {} holds {} labels.'
                                 .format(args.images, len(pixels),
                                         args.labels, len(labels)))
            return pixels, labels, args.images
        if args.labels:
            raise UsageError('--labels needs --images.')
        _, test = mnist_dataset.get_mnist(args.dataset_dir)
    except mnist_dataset.DatasetError as e:
        raise UsageError(str(e))
    x, t = test._datasets
    return to_pixels(x, x.shape[1]), t, 'the MNIST test set'


def main(argv=None):
    args = parse_args(argv)
    try:
        device = select_device(args.device, args.device_flag)
        if device.xp is numpy and args.engine == 'packed' and \
                xnor_popcount.numba is None:
            raise UsageError(xnor_popcount.NO_NUMBA + '.')
        network = packed_format.load(args.packed)
        pixels, labels, source = load_images(args)
        if pixels.shape[1] != network.sizes[0]:
            raise UsageError('{} has {} values an image; {} takes {}.'.format(
                source, pixels.shape[1], args.packed, network.sizes[0]))
        model = None
        if args.compare:
            from evaluate import load_model
            model, _ = load_model(args.compare)
    except packed_format.PackedFormatError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    except UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    device.use()
    engine = Engine(network, args.engine, device)
    engine.classify(pixels[:1])  # compiles the kernels before timing
    start = time.perf_counter()
    predicted = numpy.concatenate([
        engine.classify(pixels[i:i + args.batchsize])
        for i in range(0, len(pixels), args.batchsize)])
    seconds = time.perf_counter() - start
    where = 'GPU' if device.xp is not numpy else 'CPU'
    if labels is None:
        print('\n'.join(map(str, predicted)))
        return
    accuracy = float((predicted == labels).mean())
    print('{}: {} engine on the {}'.format(args.packed, args.engine, where))
    print('test accuracy: {:.4f}  test error: {:.2f}%  ({} images from {}, '
          '{:.0f} images/s)'.format(accuracy, 100 * (1 - accuracy),
                                    len(pixels), source,
                                    len(pixels) / seconds))
    if model is not None:
        reference = chainer_labels(model, pixels, 1000)
        print('Chainer model in {}: test accuracy {:.4f}; {} of {} labels '
              'differ from the packed network\'s'.format(
                  args.compare, float((reference == labels).mean()),
                  int((reference != predicted).sum()), len(pixels)))


if __name__ == '__main__':
    main()
