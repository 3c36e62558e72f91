"""The network of the original suite: a quantized MLP for MNIST."""
import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
import chainer.functions as F
import chainer.links as L

from link_quantized_linear import QuantizedLinear
from qst import qst
from quantized_net.quantization import quantizers

ACTIVATIONS = ('relu', 'htanh')
NO_QUANT = quantizers.Identity()


class MnistMLP(chainer.Chain):
    """``n_in - n_units x n_layers - n_out`` MLP; by default the original's.

    Each hidden layer is a quantized linear layer, batch normalisation and a
    quantized activation; the output layer is batch-normalised too. With the
    defaults (two hidden layers, the original's ``seed`` quantizer
    everywhere, ``relu``):

    .. math::

        h_1 &= \\mathrm{relu}(\\mathrm{qst}(
            \\mathrm{BN}_1(\\mathrm{QL}_1(x)))) \\\\
        h_2 &= \\mathrm{relu}(\\mathrm{qst}(
            \\mathrm{BN}_2(\\mathrm{QL}_2(h_1)))) \\\\
        y &= \\mathrm{BN}_3(\\mathrm{QL}_3(h_2))

    The logits are batch-normalised too, which bounds how confident the
    softmax can get: the training loss settles near 0.32 rather than 0.

    With ``activation='htanh'`` a hidden layer computes
    :math:`q_a(\\mathrm{clip}(\\mathrm{BN}(\\mathrm{QL}(h)), -1, 1))` instead,
    the hard-tanh units of Hubara et al. (binary tanh with ``sign``).

    Args:
        n_in (int): Input size (784 for MNIST).
        n_units (int): Units in each hidden layer.
        n_out (int): Number of classes.
        n_layers (int): Number of hidden layers.
        input_quant (str or quantizers.Quantizer): Quantizer of the
            network's input (the first layer's); hidden layers take the
            quantized activations as they are.
        weight_quant (str or quantizers.Quantizer): Quantizer of every
            weight matrix.
        act_quant (str or quantizers.Quantizer): Quantizer of every hidden
            activation.
        grad_quant (str or quantizers.Quantizer): Quantizer of the gradient
            at every linear output.
        activation (str): ``'relu'`` (``relu(q_a(x))``, the original's) or
            ``'htanh'`` (``q_a(clip(x, -1, 1))``).
        input_dropout (float): Dropout ratio on the input.
        dropout (float): Dropout ratio after each hidden activation.
        centered_input (bool): Map inputs from [0, 1] to [-1, 1] first.
        bn_eps (float): Batch normalisation epsilon.
        bn_decay (float): Batch normalisation running-average decay.
        initialW: Weight initializer (default: N(0, 1/in_size)).
    """

    def __init__(self, n_in, n_units, n_out, n_layers=2, input_quant='seed',
                 weight_quant='seed', act_quant='seed', grad_quant='seed',
                 activation='relu', input_dropout=0.0, dropout=0.0,
                 centered_input=False, bn_eps=2e-5, bn_decay=0.9,
                 initialW=None):
        super(MnistMLP, self).__init__()
        if activation not in ACTIVATIONS:
            raise ValueError('activation must be one of {}, got {!r}'.format(
                ACTIVATIONS, activation))
        self.n_layers = n_layers
        input_quant, weight_quant, act_quant, grad_quant = (
            quantizers.parse(q) for q in (input_quant, weight_quant,
                                          act_quant, grad_quant))
        self.act_quant = act_quant
        self.activation = activation
        self.input_dropout = input_dropout
        self.dropout = dropout
        self.centered_input = centered_input
        sizes = [n_in] + [n_units] * n_layers + [n_out]
        with self.init_scope():
            for i in range(1, n_layers + 2):
                setattr(self, 'l{}'.format(i), QuantizedLinear(
                    sizes[i - 1], sizes[i], initialW=initialW,
                    input_quant=input_quant if i == 1 else NO_QUANT,
                    weight_quant=weight_quant, grad_quant=grad_quant))
                setattr(self, 'b{}'.format(i), L.BatchNormalization(
                    sizes[i], eps=bn_eps, decay=bn_decay))

    def layers(self):
        """``[(QuantizedLinear, BatchNormalization)]``, input to output."""
        return [(getattr(self, 'l{}'.format(i)),
                 getattr(self, 'b{}'.format(i)))
                for i in range(1, self.n_layers + 2)]

    def linear_layers(self):
        """The quantized linear layers, input to output."""
        return [linear for linear, _ in self.layers()]

    def forward(self, x):
        h = x
        if self.centered_input:
            h = h * 2 - 1
        if self.input_dropout:
            h = F.dropout(h, self.input_dropout)
        *hidden, (last, last_bn) = self.layers()
        for linear, bn in hidden:
            h = bn(linear(h))
            if self.activation == 'relu':
                h = F.relu(qst(h, self.act_quant))
            else:
                h = qst(F.clip(h, -1., 1.), self.act_quant)
            if self.dropout:
                h = F.dropout(h, self.dropout)
        return last_bn(last(h))
