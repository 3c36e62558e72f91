"""The trained Chainer model on the packed engines' 8-bit pixels: what
they are compared against (``infer_packed.py --compare``, the Chainer rows
of ``bench_packed.py``, the tests)."""
import numpy

import chainer
from chainer.backends import cuda

from quantized_net.training import mnist


def chainer_classify(predictor, pixels):
    """The classes a Chainer MLP gives ``uint8`` pixels, fed as
    ``chainer.datasets.get_mnist`` would feed them (scaled to [0, 1]), on
    the predictor's device; a NumPy array."""
    x = predictor.device.send(mnist.scaled(pixels))
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        return cuda.to_cpu(predictor(x).array.argmax(axis=1))


def chainer_labels(model, pixels, batchsize):
    """:func:`chainer_classify` of a trained classifier, a batch at a
    time."""
    return numpy.concatenate([
        chainer_classify(model.predictor, pixels[start:start + batchsize])
        for start in range(0, len(pixels), batchsize)])
