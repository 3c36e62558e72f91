"""QuantizedConvolution2D: the link holding a quantized convolution's
parameters."""
import quantized_net  # noqa: F401  (before chainer: NumPy 2)
from chainer import links

import function_quantized_convolution_2d
from quantized_net.quantization import quantizers


class QuantizedConvolution2D(links.Convolution2D):
    """2-D convolution layer computing
    :func:`~function_quantized_convolution_2d.quantized_convolution_2d`.

    As :class:`~link_quantized_linear.QuantizedLinear`, the filters stay
    real-valued (the optimizer updates them and
    :class:`~weight_clip.WeightClip` keeps them in ``[-1, 1]``); only the
    computation sees their quantized values.

    Args:
        in_channels (int or None): Input channels; ``None`` defers them to
            the first forward pass.
        out_channels (int): Output channels (filters).
        ksize (int or pair of ints): Filter height and width.
        stride (int or pair of ints): Stride of filter applications.
        pad (int or pair of ints): Zero padding of each spatial border.
        nobias (bool): If ``True``, the layer has no bias.
        initialW: Filter initializer; the default draws from
            :math:`N(0, 1/\\mathrm{fan\\_in})` (LeCun normal), as Chainer's
            convolution does.
        initial_bias: Bias initializer; the default is 0.
        input_quant, weight_quant, grad_quant (str or quantizers.Quantizer):
            Quantizer specs of the input, the filters and the output
            gradient; the original's ``seed`` by default.

    Attributes:
        W (~chainer.Parameter): Filters of shape
            ``(out_channels, in_channels, kH, kW)``.
        b (~chainer.Parameter): Bias of shape ``(out_channels,)``, or
            ``None``.
    """

    def __init__(self, in_channels, out_channels, ksize, stride=1, pad=0,
                 nobias=False, initialW=None, initial_bias=None,
                 input_quant='seed', weight_quant='seed', grad_quant='seed'):
        super(QuantizedConvolution2D, self).__init__(
            in_channels, out_channels, ksize, stride=stride, pad=pad,
            nobias=nobias, initialW=initialW, initial_bias=initial_bias)
        self.input_quant = quantizers.parse(input_quant)
        self.weight_quant = quantizers.parse(weight_quant)
        self.grad_quant = quantizers.parse(grad_quant)

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(x.shape[1])
        return function_quantized_convolution_2d.quantized_convolution_2d(
            x, self.W, self.b, self.stride, self.pad, self.input_quant,
            self.weight_quant, self.grad_quant)
