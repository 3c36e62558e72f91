"""quantized_linear: a linear layer on log-quantized weights and inputs."""
import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer import function_node
import chainer.functions
from chainer.utils import type_check

import quantizers


class QuantizedGradient(function_node.FunctionNode):
    """Quantizes a gradient on its way down; straight-through itself.

    .. math::

        y = \\mathrm{clip}(\\mathrm{AP2}(x), -1, 1), \\qquad g_x = g_y
    """

    def forward(self, inputs):
        x, = inputs
        return quantizers.seed_quant(x),

    def backward(self, indexes, grad_outputs):
        return grad_outputs


class QuantizedLinearFunction(function_node.FunctionNode):
    """Linear function of the original suite.

    With :math:`q(v) = \\mathrm{LogQuant}(64 v, 64) / 64 =
    \\mathrm{clip}(\\mathrm{AP2}(v), -1, 1)` (see :mod:`quantizers`), the
    original's ``LogQuant(64 x, 64) @ LogQuant(64 W, 64).T / 4096 + b`` is

    .. math::

        y = q(x)\\, q(W)^\\top + b

    and its backward quantizes the output gradient too:

    .. math::

        g_x = q(g_y)\\, q(W), \\qquad
        g_W = q(g_y)^\\top q(x), \\qquad
        g_b = \\textstyle\\sum_n g_{y,n}

    The quantized ``x`` and ``W`` are computed once in forward and reused by
    backward.
    """

    def check_type_forward(self, in_types):
        n_in = in_types.size()
        type_check.expect(2 <= n_in, n_in <= 3)
        x_type, w_type = in_types[:2]
        type_check._argname((x_type, w_type), ('x', 'W'))
        type_check.expect(
            x_type.dtype == numpy.float32,
            w_type.dtype == numpy.float32,
            x_type.ndim == 2,
            w_type.ndim == 2,
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

    def forward(self, inputs):
        x, W = inputs[:2]
        self._xq = quantizers.seed_quant(x)
        self._Wq = quantizers.seed_quant(W)
        y = self._xq.dot(self._Wq.T)
        if len(inputs) == 3:
            y += inputs[2]
        return y,

    def backward(self, indexes, grad_outputs):
        gy, = grad_outputs
        gq, = QuantizedGradient().apply((gy,))
        ret = []
        if 0 in indexes:
            ret.append(chainer.functions.matmul(gq, self._Wq))
        if 1 in indexes:
            ret.append(chainer.functions.matmul(gq, self._xq, transa=True))
        if 2 in indexes:
            ret.append(chainer.functions.sum(gy, axis=0))
        return ret


def quantized_linear(x, W, b=None):
    """Linear function on log-quantized weights and inputs.

    See :class:`QuantizedLinearFunction` for the formulas.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float32 input of
            shape ``(N, ...)``; dimensions after the first are flattened, so
            their product must equal ``W.shape[1]``.
        W (:class:`~chainer.Variable` or :ref:`ndarray`): float32 weight of
            shape ``(M, K)``.
        b (:class:`~chainer.Variable` or :ref:`ndarray`): Optional float32
            bias of shape ``(M,)``.

    Returns:
        ~chainer.Variable: Output of shape ``(N, M)``.
    """
    if x.ndim > 2:
        x = chainer.functions.reshape(x, (x.shape[0], -1))
    args = (x, W) if b is None else (x, W, b)
    y, = QuantizedLinearFunction().apply(args)
    return y
