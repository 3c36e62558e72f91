"""qst: a quantized activation with its straight-through estimator."""
import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer import function_node
import chainer.functions as F
from chainer.utils import type_check

from quantized_net.quantization import kernels
from quantized_net.quantization import quantizers


class QuantizedStraightThrough(function_node.FunctionNode):
    """Quantized activation with a straight-through estimator.

    Forward: the quantizer's activation map
    :math:`q_a` (:meth:`quantizers.Quantizer.activation`; for the original's
    ``seed``, ``LogQuant(64 x, 64) / 4096``, see :class:`quantizers.Seed`):

    .. math::

        y = q_a(x)

    Backward: the straight-through estimator with cancellation of
    Hubara et al. (2016), the gradient passes where ``|x| <= 1``:

    .. math::

        g_x = g_y \\cdot 1_{|x| \\le 1}

    With ``rectified``, the rectifier that follows the quantizer in the
    original's network is this function's too, ``y = relu(q_a(x))``,
    :math:`g_x = g_y \\cdot 1_{y > 0} \\cdot 1_{|x| \\le 1}`: the bits of
    Chainer's ``relu`` after the quantizer, in one function of the graph
    and one pass each way (on the GPU one launch) where there were two.

    Args:
        quantizer (quantizers.Quantizer): The quantizer.
        rectified (bool): Rectify its output.
    """

    def __init__(self, quantizer, rectified=False):
        self.quantizer = quantizer
        self.rectified = rectified

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('x',))
        x_type, = in_types
        type_check.expect(x_type.dtype == numpy.float32)

    def forward(self, inputs):
        self.retain_inputs((0,))
        if self.rectified:
            self.retain_outputs((0,))
        x, = inputs
        return self.quantizer.activation(x, self.rectified),

    def backward(self, indexes, grad_outputs):
        x, = self.get_retained_inputs()
        y = self.get_retained_outputs()[0].array if self.rectified else None
        return StraightThroughGradient(x.array, y).apply(grad_outputs)


class StraightThroughGradient(function_node.FunctionNode):
    """The straight-through estimator's gradient with cancellation, in one
    pass (:func:`~quantized_net.quantization.kernels.\
straight_through_gradient`):

    .. math::

        g_x = g_y \\cdot 1_{|x| \\le 1}

    taken as a select, not a product: a product would keep a NaN ``gy``,
    and turn an infinite one into NaN, where the gradient is cancelled,
    and would flush a subnormal ``gy`` on the GPU. Given the rectified
    output ``y``, Chainer's ``relu`` gradient first, in the same pass
    (:func:`~quantized_net.quantization.kernels.\
rectified_straight_through_gradient`). Linear in ``gy``, its own gradient
    is itself with the same ``x`` and ``y``.

    Args:
        x (:ref:`ndarray`): The quantizer's input, which the mask is of.
        y (:ref:`ndarray`): The rectified output, or None.
    """

    def __init__(self, x, y=None):
        self.x = x
        self.y = y

    def check_type_forward(self, in_types):
        type_check._argname(in_types, ('gy',))
        gy_type, = in_types
        type_check.expect(gy_type.dtype == numpy.float32,
                          gy_type.shape == self.x.shape)

    def forward(self, inputs):
        gy, = inputs
        if self.y is None:
            return kernels.straight_through_gradient(gy, self.x),
        return kernels.rectified_straight_through_gradient(
            gy, self.x, self.y),

    def backward(self, indexes, grad_outputs):
        return StraightThroughGradient(self.x, self.y).apply(grad_outputs)


def qst(x, quantizer='seed', rectified=False):
    """Quantized activation, by default the original suite's.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float32 input of
            any shape (a batch-normalised pre-activation in ``net.py``).
        quantizer (str or quantizers.Quantizer): Quantizer spec; ``'none'``
            returns ``x`` itself, with no cancellation of the gradient.
        rectified (bool): ``relu(qst(x, quantizer))``, the bits of
            Chainer's ``relu`` after it, as one function
            (:class:`QuantizedStraightThrough`); with ``'none'``, Chainer's
            ``relu`` of ``x``.

    Returns:
        ~chainer.Variable: The quantized activation, same shape; its
        gradient is ``gy * (|x| <= 1)`` (rectified, ``gy * (y > 0) *
        (|x| <= 1)``).
    """
    quantizer = quantizers.parse(quantizer)
    if isinstance(quantizer, quantizers.Identity):
        x = chainer.as_variable(x)
        return F.relu(x) if rectified else x
    y, = QuantizedStraightThrough(quantizer, rectified).apply((x,))
    return y
