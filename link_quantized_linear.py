"""QuantizedLinear: the link holding a quantized linear layer's parameters."""
import quantized_net  # noqa: F401  (before chainer: NumPy 2)
from chainer import links
from chainer import utils

import function_quantized_linear
from quantized_net.quantization import quantizers


class QuantizedLinear(links.Linear):
    """Linear layer computing
    :func:`~function_quantized_linear.quantized_linear`.

    The parameters stay real-valued (the optimizer updates them and
    :class:`~weight_clip.WeightClip` keeps them in ``[-1, 1]``); only the
    computation sees their quantized values.

    Args:
        in_size (int or None): Input dimension; ``None`` defers it to the
            first forward pass.
        out_size (int): Output dimension.
        nobias (bool): If ``True``, the layer has no bias.
        initialW: Weight initializer; the default draws from
            :math:`N(0, 1/\\mathrm{in\\_size})` (LeCun normal), as the
            original.
        initial_bias: Bias initializer; the default is 0.
        input_quant, weight_quant, grad_quant (str or quantizers.Quantizer):
            Quantizer specs of the input, the weight and the output gradient;
            the original's ``seed`` by default.

    Attributes:
        W (~chainer.Parameter): Weight of shape ``(out_size, in_size)``.
        b (~chainer.Parameter): Bias of shape ``(out_size,)``, or ``None``.
    """

    def __init__(self, in_size, out_size=None, nobias=False, initialW=None,
                 initial_bias=None, input_quant='seed', weight_quant='seed',
                 grad_quant='seed'):
        super(QuantizedLinear, self).__init__(
            in_size, out_size, nobias=nobias, initialW=initialW,
            initial_bias=initial_bias)
        self.input_quant = quantizers.parse(input_quant)
        self.weight_quant = quantizers.parse(weight_quant)
        self.grad_quant = quantizers.parse(grad_quant)

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(utils.size_of_shape(x.shape[1:]))
        return function_quantized_linear.quantized_linear(
            x, self.W, self.b, self.input_quant, self.weight_quant,
            self.grad_quant)
