"""The networks: the original suite's quantized MLP for MNIST, and the
paper's quantized ConvNets."""
import collections
import math

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
import chainer
import chainer.functions as F

from link_quantized_convolution_2d import QuantizedConvolution2D
from link_quantized_linear import QuantizedLinear
from qst import qst
from quantized_net.quantization import quantizers
from quantized_net.training.batch_normalization import (
    BatchNormalization, HardTanh, Relu)
from quantized_net.training.max_pooling import max_pooling_2d

ACTIVATIONS = ('relu', 'htanh')
NO_QUANT = quantizers.Identity()


class QuantizedNetwork(chainer.Chain):
    """What the networks share: the input map and the hidden layers'
    quantized activation, each with its dropout.

    Args:
        activation (str): ``'relu'`` (``relu(q_a(x))``, the original's) or
            ``'htanh'`` (``q_a(clip(x, -1, 1))``).
        act_quant (str or quantizers.Quantizer): Quantizer of every hidden
            activation.
        input_dropout (float): Dropout ratio on the input.
        dropout (float): Dropout ratio after each hidden activation.
        centered_input (bool): Map inputs from [0, 1] to [-1, 1] first.
    """

    def __init__(self, activation, act_quant, input_dropout, dropout,
                 centered_input):
        super(QuantizedNetwork, self).__init__()
        if activation not in ACTIVATIONS:
            raise ValueError('activation must be one of {}, got {!r}'.format(
                ACTIVATIONS, activation))
        self.activation = activation
        self.act_quant = quantizers.parse(act_quant)
        self.input_dropout = input_dropout
        self.dropout = dropout
        self.centered_input = centered_input

    def take_input(self, x):
        """The input as the first layer takes it."""
        h = x
        if self.centered_input:
            h = h * 2 - 1
        if self.input_dropout:
            h = F.dropout(h, self.input_dropout)
        return h

    def activate(self, h, bn=None):
        """A hidden layer's quantized activation of its sums ``h``,
        normalised by ``bn`` first where given (else ``h`` is normalised
        already). With the project's ``bn``, the activation's elementwise
        first step (the hard tanh, or the rectifier where no quantizer
        precedes it) runs in the normalisation's pass: the same values
        (:class:`~quantized_net.training.batch_normalization.BatchNormalization`;
        another link, such as ChainerMN's, which replaces it, then the
        activation). A rectifier after the quantizer runs in the
        quantizer's function (``qst(..., rectified=True)``).
        """
        if self.activation == 'relu' and not isinstance(
                self.act_quant, quantizers.Identity):
            h = qst(h if bn is None else bn(h), self.act_quant,
                    rectified=True)
            return self._dropped_out(h)
        first = Relu() if self.activation == 'relu' else HardTanh(-1., 1.)
        if isinstance(bn, BatchNormalization):
            h = bn(h, activation=first)
        else:
            h = first(h if bn is None else bn(h))
        return self._dropped_out(qst(h, self.act_quant))

    def _dropped_out(self, h):
        if self.dropout:
            h = F.dropout(h, self.dropout)
        return h


class MnistMLP(QuantizedNetwork):
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
        super(MnistMLP, self).__init__(activation, act_quant, input_dropout,
                                       dropout, centered_input)
        self.n_layers = n_layers
        input_quant, weight_quant, grad_quant = (
            quantizers.parse(q) for q in (input_quant, weight_quant,
                                          grad_quant))
        sizes = [n_in] + [n_units] * n_layers + [n_out]
        with self.init_scope():
            for i in range(1, n_layers + 2):
                setattr(self, 'l{}'.format(i), QuantizedLinear(
                    sizes[i - 1], sizes[i], initialW=initialW,
                    input_quant=input_quant if i == 1 else NO_QUANT,
                    weight_quant=weight_quant, grad_quant=grad_quant))
                setattr(self, 'b{}'.format(i), BatchNormalization(
                    sizes[i], eps=bn_eps, decay=bn_decay))

    def layers(self):
        """``[(QuantizedLinear, BatchNormalization)]``, input to output."""
        return [(getattr(self, 'l{}'.format(i)),
                 getattr(self, 'b{}'.format(i)))
                for i in range(1, self.n_layers + 2)]

    def linear_layers(self):
        """The quantized linear layers, input to output."""
        return [linear for linear, _ in self.layers()]

    def weight_layers(self):
        """The layers of weights, input to output: its linear layers."""
        return self.linear_layers()

    def forward(self, x):
        h = self.take_input(x)
        *hidden, (last, last_bn) = self.layers()
        for linear, bn in hidden:
            h = self.activate(linear(h), bn)
        return last_bn(last(h))


#: The paper's ConvNets, layer by layer, as written there: ``NCk`` a
#: convolution of ``N`` filters of ``k x k`` (stride 1, padded to keep the
#: size), ``P2`` a 2 x 2 max-pooling, ``NFC`` a fully connected layer of
#: ``N`` units; the classifier layer is added after the last.
ARCHITECTURES = {
    # Hubara et al. (2016), CIFAR-10 (the authors' cifar10.py).
    'cifar10': '128C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-1024FC-1024FC',
    # The same with half the filters, for SVHN (the authors' svhn.py).
    'svhn': '64C3-64C3-P2-128C3-128C3-P2-256C3-256C3-P2-1024FC-1024FC',
    # For MNIST's 28 x 28 digits: two stages of the same kind, small
    # enough for a 2-core CPU to train in hours.
    'mnist': '64C3-64C3-P2-128C3-128C3-P2-512FC',
}


def parse_architecture(text, width=1.0):
    """The layers of an architecture written as :data:`ARCHITECTURES`'s
    are: ``[('conv', filters, k) | ('pool', k) | ('fc', units)]``, with
    every filter and unit count scaled by ``width`` (rounded, at least 1).

    Raises:
        ValueError: ``text`` is not such an architecture; the message
            names the part.
    """
    layers = []
    for part in text.split('-'):
        kind = ('pool' if part[:1] == 'P' else 'fc' if part.endswith('FC')
                else 'conv' if 'C' in part else None)
        numbers = part[1:] if kind == 'pool' else part[:-2] if \
            kind == 'fc' else part.split('C')
        if kind is None or not all(n.isdigit() and int(n) > 0 for n in (
                numbers if kind == 'conv' else [numbers])):
            raise ValueError('{!r} is not a layer (NCk, Pk or NFC)'.format(
                part))
        if kind == 'pool':
            layers.append(('pool', int(numbers)))
            continue
        size = max(1, int(round(int(numbers[0] if kind == 'conv' else
                                    numbers) * width)))
        layers.append(('conv', size, int(numbers[1])) if kind == 'conv'
                      else ('fc', size))
    if not layers or layers[0][0] == 'pool':
        raise ValueError('{!r} does not start with a layer of weights'
                         .format(text))
    if any(a[0] == 'fc' and b[0] != 'fc' for a, b in zip(layers,
                                                          layers[1:])):
        raise ValueError('{!r} has a convolution or pooling after a fully '
                         'connected layer'.format(text))
    return layers


class Layer(collections.namedtuple(
        'Layer', ('weights', 'pool', 'computed', 'output'))):
    """A layer of weights of a network, as its sizes alone give it.

    Attributes:
        weights (tuple): The weights' shape: a convolution's
            ``(filters, channels, k, k)``, a fully connected layer's
            ``(units, inputs)``.
        pool (int): The max-pooling size after it, or 0.
        computed (tuple): What it computes for one image, before pooling:
            ``(filters, height, width)`` or ``(units,)``; each value one
            dot product of ``prod(weights[1:])`` terms.
        output (tuple): What it passes on for one image, after pooling.
    """


def conv_net_layers(in_shape, architecture, n_out, width=1.0):
    """The :class:`Layer` of each layer of weights of a :class:`ConvNet`,
    input to output, the classifier last. Found from the sizes alone,
    nothing built: pooling rounds down (as the authors' Lasagne pooling
    with ``ignore_border`` does, and :class:`ConvNet` pools).

    Raises:
        ValueError: The architecture is malformed, or pools an image of
            ``in_shape`` down to nothing.
    """
    shape = tuple(in_shape)
    layers = []
    for layer in parse_architecture(architecture, width) + [('fc', n_out)]:
        if layer[0] == 'pool':
            if layers[-1].pool:
                raise ValueError('{!r} pools twice in a row'.format(
                    architecture))
            pool = layer[1]
            shape = (shape[0],) + tuple(s // pool for s in shape[1:])
            if min(shape[1:]) < 1:
                raise ValueError('{!r} pools a {}x{} image down to '
                                 'nothing'.format(architecture,
                                                  *in_shape[1:]))
            layers[-1] = layers[-1]._replace(pool=pool, output=shape)
        elif layer[0] == 'conv':
            _, filters, k = layer
            weights = (filters, shape[0], k, k)
            shape = (filters,) + tuple(s + 2 * (k // 2) - k + 1
                                       for s in shape[1:])
            layers.append(Layer(weights, 0, shape, shape))
        else:
            weights = (layer[1], math.prod(shape))
            shape = (layer[1],)
            layers.append(Layer(weights, 0, shape, shape))
    return layers


def mlp_layers(n_in, n_units, n_out, n_layers):
    """The :class:`Layer` of each layer of an :class:`MnistMLP`, input to
    output."""
    sizes = [n_in] + [n_units] * n_layers + [n_out]
    return [Layer((out_size, in_size), 0, (out_size,), (out_size,))
            for in_size, out_size in zip(sizes[:-1], sizes[1:])]


class ConvNet(QuantizedNetwork):
    """A quantized ConvNet after the authors' BinaryNet code: each layer of
    weights is a quantized convolution (or, after the last convolution, a
    quantized fully connected layer), then the 2 x 2 max-pooling that
    follows it in the architecture, batch normalisation and the quantized
    activation; the classifier layer is batch-normalised too.

    .. math::

        h_{l} = q_a(\\mathrm{clip}(\\mathrm{BN}_l(
            \\mathrm{pool}(\\mathrm{QC}_l(h_{l-1}))), -1, 1))

    The order is theirs (Lasagne's ``Conv2DLayer``, ``MaxPool2DLayer``,
    ``BatchNormLayer``, ``NonlinearityLayer``): pooling the convolution's
    sums before normalising them. Convolutions pad with zeros
    (:class:`~function_quantized_convolution_2d.QuantizedConvolution2DFunction`
    says what that is in the +-1 domain).

    Args:
        in_shape (tuple): ``(channels, height, width)`` of an image; the
            input may come flat, ``(N, C * H * W)``.
        architecture (str): Layers as :data:`ARCHITECTURES` writes them.
        n_out (int): Number of classes.
        width (float): Scales every filter and unit count.
        input_quant, weight_quant, act_quant, grad_quant, activation,
            input_dropout, dropout, centered_input, bn_eps, bn_decay,
            initialW: As :class:`MnistMLP`'s.
    """

    def __init__(self, in_shape, architecture, n_out, width=1.0,
                 input_quant='none', weight_quant='sign', act_quant='sign',
                 grad_quant='none', activation='htanh', input_dropout=0.0,
                 dropout=0.0, centered_input=True, bn_eps=1e-4,
                 bn_decay=0.9, initialW=None):
        super(ConvNet, self).__init__(activation, act_quant, input_dropout,
                                      dropout, centered_input)
        self.in_shape = tuple(in_shape)
        input_quant, weight_quant, grad_quant = (
            quantizers.parse(q) for q in (input_quant, weight_quant,
                                          grad_quant))
        layers = conv_net_layers(in_shape, architecture, n_out, width)
        self.pooling = [layer.pool for layer in layers]
        with self.init_scope():
            for i, shape in enumerate(
                    [layer.weights for layer in layers], 1):
                quants = dict(input_quant=input_quant if i == 1 else
                              NO_QUANT, weight_quant=weight_quant,
                              grad_quant=grad_quant)
                if len(shape) == 4:
                    link = QuantizedConvolution2D(
                        shape[1], shape[0], shape[2], pad=shape[2] // 2,
                        initialW=initialW, **quants)
                else:
                    link = QuantizedLinear(shape[1], shape[0],
                                           initialW=initialW, **quants)
                setattr(self, 'l{}'.format(i), link)
                setattr(self, 'b{}'.format(i), BatchNormalization(
                    shape[0], eps=bn_eps, decay=bn_decay))

    def layers(self):
        """``[(weights link, BatchNormalization, pooling size or 0)]``,
        input to output."""
        return [(getattr(self, 'l{}'.format(i)),
                 getattr(self, 'b{}'.format(i)), pool)
                for i, pool in enumerate(self.pooling, 1)]

    def weight_layers(self):
        """The quantized convolution and linear layers, input to output."""
        return [link for link, _, _ in self.layers()]

    def forward(self, x):
        h = self.take_input(F.reshape(x, (x.shape[0],) + self.in_shape))
        *hidden, (last, last_bn, _) = self.layers()
        for link, bn, pool in hidden:
            h = link(h)
            if pool:
                h = max_pooling_2d(h, pool, stride=pool, cover_all=False)
            h = self.activate(h, bn)
        return last_bn(last(h))
