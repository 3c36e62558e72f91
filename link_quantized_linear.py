"""QuantizedLinear: the link that holds a quantized linear layer's parameters."""
import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
from chainer import links
from chainer import utils

import function_quantized_linear


class QuantizedLinear(links.Linear):
    """Linear layer computing :func:`~function_quantized_linear.quantized_linear`.

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

    Attributes:
        W (~chainer.Parameter): Weight of shape ``(out_size, in_size)``.
        b (~chainer.Parameter): Bias of shape ``(out_size,)``, or ``None``.
    """

    def forward(self, x):
        if self.W.array is None:
            self._initialize_params(utils.size_of_shape(x.shape[1:]))
        return function_quantized_linear.quantized_linear(x, self.W, self.b)
