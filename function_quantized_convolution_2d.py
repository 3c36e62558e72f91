"""quantized_convolution_2d: a 2-D convolution on quantized inputs and
weights, the convolutional counterpart of quantized_linear."""
import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
from chainer.backends import intel64
from chainer.functions.connection import convolution_2d
from chainer.functions.connection import deconvolution_2d

import function_quantized_linear
from quantized_net.quantization import quantizers
from quantized_net.training import columns


def _columns_apply(node, arrays):
    """Whether the CPU convolution ``node`` on ``arrays`` takes its columns
    from :mod:`~quantized_net.training.columns`: NumPy float32 arrays, no
    groups, no dilation, no ``cover_all``, no iDeep, numba."""
    return (columns.AVAILABLE and node.groups == 1 and
            (node.dy, node.dx) == (1, 1) and
            not getattr(node, 'cover_all', False) and
            not intel64.should_use_ideep('>=auto') and
            all(isinstance(a, numpy.ndarray) and a.dtype == numpy.float32
                for a in arrays))


class QuantizedConvolution2DFunction(convolution_2d.Convolution2DFunction):
    """2-D convolution on quantized inputs and weights.

    With quantizers :math:`q_x, q_W, q_g` for inputs, weights and output
    gradients, and :math:`*` Chainer's convolution (cross-correlation, with
    the given stride and zero padding),

    .. math::

        y = q_x(x) * q_W(W) + b

    and the backward quantizes the output gradient, passing straight
    through the quantizers of ``x`` and ``W``, as
    :class:`~function_quantized_linear.QuantizedLinearFunction` does:

    .. math::

        g_x = q_g(g_y) \\star q_W(W), \\qquad
        g_W = q_g(g_y) \\star q_x(x), \\qquad
        g_b = \\textstyle\\sum_{n, i, j} g_{y, n, :, i, j}

    (:math:`\\star` the transposed convolutions Chainer's own backward
    computes). The border is zero, as Chainer pads: with ``sign`` inputs a
    padded position adds nothing to a sum of +-1 products, a third value
    beside +-1 that a packed engine reproduces by counting, per output
    position, the inputs that fall outside the image.

    On the CPU the columns of the input are made in one pass
    (:mod:`~quantized_net.training.columns`) and multiplied as Chainer
    multiplies its own: the same products of the same matrices, laid out
    the same, so the same bits as Chainer's convolution, in a quarter less
    time for the MNIST ConvNet's iteration (docs/speed.md).

    :math:`q_x(x)` and :math:`q_W(W)` are computed once, in ``forward``,
    and kept on the node for backward (``x`` and ``W`` are not retained):
    quantizing again would cost a second pass and, with ``stochastic``,
    draw other values than the forward used.

    Args:
        input_quant, weight_quant, grad_quant (quantizers.Quantizer): The
            quantizers of ``x``, ``W`` and the output gradient.
        stride (int or pair of ints): Stride of filter applications.
        pad (int or pair of ints): Zero padding of each spatial border.
    """

    def __init__(self, input_quant, weight_quant, grad_quant, stride=1,
                 pad=0):
        super(QuantizedConvolution2DFunction, self).__init__(stride, pad)
        self.input_quant = input_quant
        self.weight_quant = weight_quant
        self.grad_quant = grad_quant

    def check_type_forward(self, in_types):
        function_quantized_linear.check_operand_types(in_types, 4)

    def forward(self, inputs):
        x, W = inputs[:2]
        self.x_shape = x.shape
        self.xq = self.input_quant(x)
        self.Wq = self.weight_quant(W)
        # Chainer's forward (CPU or GPU, cuDNN where it may) on the
        # quantized arrays; it retains x and W, which backward never reads.
        y, = super(QuantizedConvolution2DFunction, self).forward(
            (self.xq, self.Wq) + tuple(inputs[2:]))
        self.retain_inputs(())
        return y,

    def forward_cpu(self, inputs):
        if not _columns_apply(self, inputs):
            return super(QuantizedConvolution2DFunction, self).forward_cpu(
                inputs)
        # Chainer's _forward_cpu_core, with the columns made at once.
        self.retain_inputs((0, 1))
        x, W = inputs[:2]
        kh, kw = W.shape[2:]
        col = columns.im2col(x, kh, kw, self.sy, self.sx, self.ph, self.pw)
        # The filters' gradient multiplies the same columns: it takes
        # them where they are still there (ColumnsGradW).
        self.columns = x, columns.stamp(col)
        y = numpy.tensordot(col, W, ((1, 2, 3), (1, 2, 3))).astype(
            x.dtype, copy=False)
        if len(inputs) == 3:
            y += inputs[2]
        return numpy.rollaxis(y, 3, 1),

    def backward(self, indexes, grad_outputs):
        gy, = grad_outputs
        gq = function_quantized_linear.quantize_gradient(gy, self.grad_quant)
        ret = []
        if 0 in indexes:
            gx, = ColumnsDeconvolution2D(
                stride=(self.sy, self.sx), pad=(self.ph, self.pw),
                outsize=self.x_shape[2:]).apply((gq, self.Wq))
            ret.append(gx)
        if 1 in indexes:
            gW, = ColumnsGradW(
                self, self.Wq.shape, self.Wq.dtype, None).apply(
                    (self.xq, gq))
            ret.append(gW)
        if 2 in indexes:
            ret.append(chainer.functions.sum(gy, axis=(0, 2, 3)))
        return ret


class ColumnsGradW(convolution_2d.Convolution2DGradW):
    """Chainer's gradient of a convolution's filters, ``gW = gy \\star x``,
    its CPU columns made at once (:func:`~quantized_net.training.columns.\
im2col`): the same product, the same bits. Where the convolution
    ``conv2d`` made the columns of this ``x`` in its forward and they are
    still there (:func:`~quantized_net.training.columns.kept`), it
    multiplies those: making them is a pass over as many bytes as the
    product writes. (An ``x`` changed in place between the forward and
    the backward, which Chainer's backward would read changed, gives here
    the gradient of what the forward computed.)"""

    def __init__(self, conv2d, w_shape, w_dtype, w_layout):
        super(ColumnsGradW, self).__init__(conv2d, w_shape, w_dtype,
                                           w_layout)
        self.conv2d = conv2d

    def forward_cpu(self, inputs):
        if not _columns_apply(self, inputs):
            return super(ColumnsGradW, self).forward_cpu(inputs)
        self.retain_inputs((0, 1))
        x, gy = inputs
        # As Chainer's: NumPy's tensordot refuses such a gy.
        if (not (gy.flags.c_contiguous or gy.flags.f_contiguous) and
                1 in gy.shape):
            gy = numpy.ascontiguousarray(gy)
        made = getattr(self.conv2d, 'columns', None)
        col = columns.kept(made[1]) if made and made[0] is x else None
        if col is None:
            col = columns.im2col(x, self.kh, self.kw, self.sy, self.sx,
                                 self.ph, self.pw)
        return numpy.tensordot(gy, col, ((0, 2, 3), (0, 4, 5))).astype(
            self.W_dtype, copy=False),


class ColumnsDeconvolution2D(deconvolution_2d.Deconvolution2DFunction):
    """Chainer's transposed convolution, the gradient of a convolution's
    input, its CPU columns added back at once
    (:func:`~quantized_net.training.columns.col2im`): the same sums in the
    same order, the same bits. Without a bias; ``outsize`` given."""

    def forward_cpu(self, inputs):
        if len(inputs) != 2 or not _columns_apply(self, inputs):
            return super(ColumnsDeconvolution2D, self).forward_cpu(inputs)
        self.retain_inputs((0, 1))
        x, W = inputs
        gcol = numpy.tensordot(W, x, (0, 1)).astype(x.dtype, copy=False)
        return columns.col2im(gcol, self.sy, self.sx, self.ph, self.pw,
                              self.outh, self.outw),


def quantized_convolution_2d(x, W, b=None, stride=1, pad=0,
                             input_quant='seed', weight_quant='seed',
                             grad_quant='seed'):
    """2-D convolution on quantized inputs and weights.

    See :class:`QuantizedConvolution2DFunction` for the formulas. The
    quantizer defaults are the original suite's log quantizer, as
    :func:`~function_quantized_linear.quantized_linear`'s.

    Args:
        x (:class:`~chainer.Variable` or :ref:`ndarray`): float32 input of
            shape ``(N, C, H, W)``.
        W (:class:`~chainer.Variable` or :ref:`ndarray`): float32 filters
            of shape ``(M, C, kH, kW)``.
        b (:class:`~chainer.Variable` or :ref:`ndarray`): Optional float32
            bias of shape ``(M,)``.
        stride (int or pair of ints): Stride of filter applications.
        pad (int or pair of ints): Zero padding of each spatial border.
        input_quant, weight_quant, grad_quant (str or quantizers.Quantizer):
            Quantizer specs of ``x``, ``W`` and the output gradient.

    Returns:
        ~chainer.Variable: Output of shape ``(N, M, H', W')``, with
        :math:`H' = (H + 2 p_h - k_H) / s_y + 1` (rounded down), and so for
        :math:`W'`.
    """
    args = (x, W) if b is None else (x, W, b)
    y, = QuantizedConvolution2DFunction(
        quantizers.parse(input_quant), quantizers.parse(weight_quant),
        quantizers.parse(grad_quant), stride, pad).apply(args)
    return y
