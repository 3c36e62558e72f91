"""quantized_linear: a linear layer on log-quantized weights and inputs."""
import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer import function_node
import chainer.functions
from chainer.utils import type_check

from quantized_net.quantization import quantizers
from quantized_net.training import binary_products


class QuantizedGradient(function_node.FunctionNode):
    """Quantizes a gradient on its way down; straight-through itself.

    .. math::

        y = q_g(x), \\qquad g_x = g_y
    """

    def __init__(self, quantizer):
        self.quantizer = quantizer

    def forward(self, inputs):
        x, = inputs
        return self.quantizer(x),

    def backward(self, indexes, grad_outputs):
        return grad_outputs


def quantize_gradient(gy, grad_quant):
    """The output gradient ``gy`` quantized by ``grad_quant`` on its way
    down, as a differentiable operation (no node where it is ``none``)."""
    if isinstance(grad_quant, quantizers.Identity):
        return gy
    gq, = QuantizedGradient(grad_quant).apply((gy,))
    return gq


def check_operand_types(in_types, ndim):
    """The type checks of ``(x, W[, b])`` of a quantized layer whose
    input and weight have ``ndim`` dimensions: float32, ``x``'s second
    axis matching ``W``'s, a bias of one value per output."""
    n_in = in_types.size()
    type_check.expect(2 <= n_in, n_in <= 3)
    x_type, w_type = in_types[:2]
    type_check._argname((x_type, w_type), ('x', 'W'))
    type_check.expect(
        x_type.dtype == numpy.float32,
        w_type.dtype == numpy.float32,
        x_type.ndim == ndim,
        w_type.ndim == ndim,
        x_type.shape[1] == w_type.shape[1],
    )
    if type_check.eval(n_in) == 3:
        b_type = in_types[2]
        type_check._argname((b_type,), ('b',))
        type_check.expect(
            b_type.dtype == x_type.dtype,
            b_type.ndim == 1,
            b_type.shape[0] == w_type.shape[0],
        )


class QuantizedLinearFunction(function_node.FunctionNode):
    """Linear function on quantized inputs and weights.

    With quantizers :math:`q_x, q_W, q_g` for inputs, weights and output
    gradients,

    .. math::

        y = q_x(x)\\, q_W(W)^\\top + b

    and the backward quantizes the output gradient too, passing straight
    through the quantizers of ``x`` and ``W``:

    .. math::

        g_x = q_g(g_y)\\, q_W(W), \\qquad
        g_W = q_g(g_y)^\\top q_x(x), \\qquad
        g_b = \\textstyle\\sum_n g_{y,n}

    With the original's quantizer for all three (``seed``, see
    :class:`quantizers.Seed`) this is the original's linear layer and its
    backward. On the CPU, where both quantized operands hold only +1 and
    -1 (sign units into sign weights), the forward product is taken from
    their bits (:mod:`~quantized_net.training.binary_products`): the same
    values, at a fraction of the cost.

    Backward needs :math:`q_x(x)` and :math:`q_W(W)`, which are neither
    inputs nor outputs of this node, so ``forward`` keeps them on the node
    rather than retaining ``x`` and ``W``: quantizing again in backward
    would cost a second pass of each quantizer and, with ``stochastic``,
    draw other values than the forward used. They are freed with the node,
    as retained arrays are.

    Args:
        input_quant, weight_quant, grad_quant (quantizers.Quantizer): The
            quantizers of ``x``, ``W`` and the output gradient.
    """

    def __init__(self, input_quant, weight_quant, grad_quant):
        self.input_quant = input_quant
        self.weight_quant = weight_quant
        self.grad_quant = grad_quant

    def check_type_forward(self, in_types):
        check_operand_types(in_types, 2)

    def forward(self, inputs):
        x, W = inputs[:2]
        self.xq = self.input_quant(x)
        self.Wq = self.weight_quant(W)
        # Of +-1 operands, the same values from their bits.
        y = binary_products.product(self.xq, self.Wq)
        if y is None:
            y = self.xq.dot(self.Wq.T)
        if len(inputs) == 3:
            y += inputs[2]
        return y,

    def backward(self, indexes, grad_outputs):
        gy, = grad_outputs
        gq = quantize_gradient(gy, self.grad_quant)
        ret = []
        if 0 in indexes:
            ret.append(chainer.functions.matmul(gq, self.Wq))
        if 1 in indexes:
            ret.append(chainer.functions.matmul(gq, self.xq, transa=True))
        if 2 in indexes:
            ret.append(chainer.functions.sum(gy, axis=0))
        return ret


def quantized_linear(x, W, b=None, input_quant='seed', weight_quant='seed',
                     grad_quant='seed'):
    """Linear function on quantized inputs and weights.

    See :class:`QuantizedLinearFunction` for the formulas. The defaults are
    the original suite's log quantizer for all three.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float32 input of
            shape ``(N, ...)``; dimensions after the first are flattened, so
            their product must equal ``W.shape[1]``.
        W (:class:`~chainer.Variable` or :ref:`ndarray`): float32 weight of
            shape ``(M, K)``.
        b (:class:`~chainer.Variable` or :ref:`ndarray`): Optional float32
            bias of shape ``(M,)``.
        input_quant, weight_quant, grad_quant (str or quantizers.Quantizer):
            Quantizer specs of ``x``, ``W`` and the output gradient.

    Returns:
        ~chainer.Variable: Output of shape ``(N, M)``.
    """
    if x.ndim > 2:
        x = chainer.functions.reshape(x, (x.shape[0], -1))
    args = (x, W) if b is None else (x, W, b)
    y, = QuantizedLinearFunction(
        quantizers.parse(input_quant), quantizers.parse(weight_quant),
        quantizers.parse(grad_quant)).apply(args)
    return y
