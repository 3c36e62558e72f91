"""qst: the quantized activation of the original suite, with its STE."""
import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
from chainer import function_node
from chainer.utils import type_check

import quantizers


class QuantizedStraightThrough(function_node.FunctionNode):
    """Log-quantized activation with a straight-through estimator.

    Forward, as the original: ``LogQuant(64 x, 64) / 4096``, i.e.

    .. math::

        y = \\frac{1}{64}\\,\\mathrm{clip}(\\mathrm{AP2}(x), -1, 1)

    Backward: the straight-through estimator with cancellation of
    Hubara et al. (2016), the gradient passes where ``|x| <= 1``:

    .. math::

        g_x = g_y \\cdot 1_{|x| \\le 1}
    """

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x',))
        x_type, = in_types
        type_check.expect(x_type.dtype == numpy.float32)

    def forward(self, inputs):
        self.retain_inputs((0,))
        x, = inputs
        y = quantizers.seed_quant(x)
        y *= numpy.float32(1.0 / quantizers.SEED_SCALE)
        return y,

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        gy, = grad_outputs
        xp = x.xp
        passes = (xp.abs(x.array) <= 1).astype(gy.dtype)
        return gy * passes,


def qst(x):
    """Quantized activation of the original suite.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float32 input of
            any shape (a batch-normalised pre-activation in ``net.py``).

    Returns:
        ~chainer.Variable: ``LogQuant(64 x, 64) / 4096``, same shape; its
        gradient is ``gy * (|x| <= 1)``.
    """
    y, = QuantizedStraightThrough().apply((x,))
    return y
