"""A run's configuration: the named ones, the rules every one keeps, and
the model and optimizer one describes.

A configuration is a plain dict of JSON values (it is saved in each result
directory, see :mod:`result_dir`, and rebuilt from there); its quantizers
are canonical specs (:func:`quantizers.parse`), turned into quantizer
objects once, by :func:`build_classifier`. This module is where the
training part reaches the original's model (``net.py``, ``weight_clip.py``
and, through them, the quantized linear link). The flags that set a
configuration are :mod:`flags`'. The presets:

``seed``
    The original suite, exactly: log quantizer (``seed``) on inputs,
    weights, activations and gradients, relu, 2 x 1000 units, softmax
    cross-entropy, Adam (alpha 0.001), every parameter clipped to [-1, 1],
    trained on 60000 images and validated on the 10000 test images.
``float``
    The same MLP and training with every quantizer ``none``: the baseline.
``bnn``
    The binarized MLP of Hubara et al. (2016), after the authors' Theano
    MNIST recipe: binary (``sign``) weights and hard-tanh binary activations,
    3 x 4096 units, batch normalisation after every layer (eps 1e-4,
    running-average factor 0.1), dropout 0.2 on the input and 0.5 on hidden
    layers, inputs in [-1, 1], squared hinge loss, Adam with alpha from
    0.003 decayed exponentially to 3e-7 over the run, each weight matrix's
    step scaled by Glorot's factor, weights drawn from U(-1, 1) and clipped
    to [-1, 1], 50000 training and 10000 validation images, batch 100,
    1000 epochs.
"""
import math

import chainer.functions as F
import chainer.links as L
from chainer import initializers

from quantized_net.training import datasets
from quantized_net.training import fused_adam
import net
from quantized_net.quantization import quantizers
from weight_clip import WeightClip

N_IN = 784
N_OUT = datasets.N_CLASSES

_SEED = {
    'input_quant': 'seed', 'weight_quant': 'seed', 'act_quant': 'seed',
    'grad_quant': 'seed', 'activation': 'relu', 'layers': 2, 'unit': 1000,
    'epoch': 20, 'batchsize': 100, 'loss': 'softmax', 'lr': 0.001,
    'lr_final': None, 'input_dropout': 0.0, 'dropout': 0.0,
    'centered_input': False, 'bn_eps': 2e-5, 'init': 'lecun',
    'glorot_lr_scale': False, 'clip': 'all', 'validation': 0,
}

PRESETS = {
    'seed': _SEED,
    'float': dict(_SEED, input_quant='none', weight_quant='none',
                  act_quant='none', grad_quant='none'),
    'bnn': dict(
        _SEED, input_quant='none', weight_quant='sign', act_quant='sign',
        grad_quant='none', activation='htanh', layers=3, unit=4096,
        epoch=1000, loss='squared_hinge', lr=0.003, lr_final=3e-7,
        input_dropout=0.2, dropout=0.5, centered_input=True, bn_eps=1e-4,
        init='uniform', glorot_lr_scale=True, clip='weights',
        validation=10000),
}
# The binarized ConvNet of the paper's recipe (the bnn preset's, without
# dropout and at the authors' ConvNets' alpha of 0.001: at 0.003 the
# first epochs' validation accuracy swings with the rounding of the sums),
# on MNIST's digits. Its weights move too fast for batch normalisation's
# running averages to follow: it evaluates with the statistics of the
# current weights over 50 training batches (population_statistics).
PRESETS['bnn-conv'] = dict(
    PRESETS['bnn'], architecture='mnist', width=1.0, input_dropout=0.0,
    dropout=0.0, epoch=100, lr=0.001, lr_final=1e-6, bn_batches=50)

# The paper's ConvNets on their data sets, as the authors' cifar10.py and
# svhn.py train them: batches of 50, Adam's alpha from 0.001 decayed to
# 3e-7 over 500 epochs (CIFAR-10) or to 3e-6 over 200 (SVHN), the last
# 5000 training images (CIFAR-10) or 6000 of train and extra (SVHN, see
# svhn.py) held out.
PRESETS['cifar10'] = dict(
    PRESETS['bnn-conv'], architecture='cifar10', dataset='cifar10',
    epoch=500, batchsize=50, lr=0.001, lr_final=3e-7, validation=5000)
PRESETS['svhn'] = dict(
    PRESETS['bnn-conv'], architecture='svhn', dataset='svhn', epoch=200,
    batchsize=50, lr=0.001, lr_final=3e-6, validation=6000)

#: Keys a configuration may lack (those recorded before the keys existed
#: do), and what a missing one means: an MLP, at its full width, that
#: evaluates with batch normalisation's running averages.
OPTIONAL = {'architecture': None, 'width': 1.0,
            'dataset': datasets.DEFAULT, 'bn_batches': 0}
#: The widest scaling of a network --width may ask for.
MAX_WIDTH = 64.0
#: The most batches batch normalisation's statistics may be recomputed
#: over before each evaluation (see :mod:`population_statistics`).
MAX_BN_BATCHES = 10 ** 6

ACTIVATIONS = net.ACTIVATIONS
#: The ConvNets a configuration may name, by name.
ARCHITECTURES = net.ARCHITECTURES
LOSSES = ('softmax', 'squared_hinge')
QUANTIZER_KEYS = ('input_quant', 'weight_quant', 'act_quant', 'grad_quant')


#: Ranges a configuration must keep to: what fits a machine's memory and
#: time (the paper's widest network has 4096 units).
LIMITS = {'unit': (1, 8192), 'layers': (1, 32), 'epoch': (1, 10 ** 6),
          'batchsize': (1, 10 ** 6), 'validation': (0, 10 ** 6)}
#: The most parameters a configuration may have: 1 GiB of float32
#: weights, about 4 GiB to train with Adam's two moments and the gradients.
#: The bnn preset (3 x 4096 units) has about 37 million, 4 x 8192 units
#: about 209 million.
MAX_PARAMETERS = 2 ** 28
_CHOICES = {'activation': ACTIVATIONS, 'loss': LOSSES,
            'init': ('lecun', 'uniform'), 'clip': ('all', 'weights'),
            'preset': tuple(PRESETS)}


def _check(condition, key, value, wanted):
    if not condition:
        raise ValueError('{} is {!r}; it must be {}'.format(
            key, value, wanted))


def with_defaults(config):
    """``config`` with the :data:`OPTIONAL` keys it lacks, a new dict."""
    return dict(OPTIONAL, **config)


def architecture(config):
    """The layers of the ConvNet ``config`` describes, written as
    :data:`net.ARCHITECTURES` writes them (a name there stands for its
    layers); None for an MLP."""
    name = with_defaults(config)['architecture']
    return ARCHITECTURES.get(name, name)


def hidden_units(config):
    """The units of each hidden layer of the MLP ``config`` describes:
    ``unit`` scaled by ``width`` (rounded, at least 1)."""
    return max(1, int(round(config['unit'] * with_defaults(config)[
        'width'])))


def network_layers(config):
    """The layers of weights of the network ``config`` describes, input to
    output, each a :class:`net.Layer` (its weights' shape, its pooling,
    what it computes and passes on per image); found from the sizes alone,
    nothing built.

    Raises:
        ValueError: The architecture is malformed.
    """
    written = architecture(config)
    if written is not None:
        return net.conv_net_layers(datasets.image_shape(config), written,
                                   N_OUT, with_defaults(config)['width'])
    return net.mlp_layers(datasets.input_size(config), hidden_units(config),
                          N_OUT, config['layers'])


def layer_shapes(config):
    """The shapes of the weights of the network ``config`` describes,
    input to output: ``(out_size, in_size)`` of a weight matrix,
    ``(filters, channels, k, k)`` of a convolution's (see
    :func:`network_layers`)."""
    return [layer.weights for layer in network_layers(config)]


def parameter_count(config):
    """The number of parameters of the network ``config`` describes (each
    layer's weights and bias, and its batch normalisation's scale and
    shift), counted from the sizes alone, nothing built."""
    count = 0
    for shape in layer_shapes(config):
        weights = 1
        for size in shape:
            weights *= size
        count += weights + 3 * shape[0]
    return count


def check_config(config):
    """Raises ValueError, naming the key, unless ``config`` is a complete
    configuration with every value of the right type and in range, and a
    network of at most :data:`MAX_PARAMETERS` parameters: what is checked
    before a model is built from a file or from flags, so that nothing is
    allocated for a configuration that cannot be trained."""
    if not isinstance(config, dict):
        raise ValueError('the configuration is not a JSON object')
    missing = sorted((set(_SEED) | {'preset'}) - set(config))
    if missing:
        raise ValueError('it lacks {}'.format(', '.join(missing)))
    for key, (low, high) in LIMITS.items():
        value = config[key]
        _check(type(value) is int and low <= value <= high, key, value,
               'an integer from {} to {}'.format(low, high))
    for key, choices in _CHOICES.items():
        _check(config.get(key, choices[0]) in choices, key, config.get(key),
               'one of {}'.format(', '.join(choices)))
    for key in QUANTIZER_KEYS:
        try:
            quantizers.parse(config[key])
        except ValueError as e:
            raise ValueError('{}: {}'.format(key, e))
    for key in ('lr', 'lr_final', 'bn_eps'):
        value = config[key]
        if key == 'lr_final' and value is None:
            continue
        _check(isinstance(value, (int, float)) and not isinstance(
            value, bool) and 0 < value < math.inf, key, value,
            'a finite positive number')
    for key in ('input_dropout', 'dropout'):
        value = config[key]
        _check(isinstance(value, (int, float)) and 0 <= value < 1, key,
               value, 'a ratio in [0, 1)')
    for key in ('centered_input', 'glorot_lr_scale'):
        _check(isinstance(config[key], bool), key, config[key],
               'true or false')
    bn_batches = with_defaults(config)['bn_batches']
    _check(type(bn_batches) is int and 0 <= bn_batches <= MAX_BN_BATCHES,
           'bn_batches', bn_batches,
           'an integer from 0 to {}'.format(MAX_BN_BATCHES))
    width = with_defaults(config)['width']
    _check(isinstance(width, (int, float)) and not isinstance(width, bool)
           and 0 < width <= MAX_WIDTH, 'width', width,
           'a number in (0, {:g}]'.format(MAX_WIDTH))
    _check(datasets.name(config) in datasets.DATASETS, 'dataset',
           datasets.name(config), 'one of {}'.format(', '.join(sorted(
               datasets.DATASETS))))
    layers = architecture(config)
    _check(layers is None or isinstance(layers, str), 'architecture',
           layers, 'the name or the layers of a ConvNet')
    try:
        count = parameter_count(config)
    except ValueError as e:
        raise ValueError('architecture: {}'.format(e))
    if count > MAX_PARAMETERS:
        raise ValueError(
            'a network of {} has {} parameters, more than {} (what 1 GiB of '
            'float32 holds); give fewer --unit or --layers, or a smaller '
            '--width'.format(
                layers if layers else '{} x {} units'.format(
                    config['layers'], hidden_units(config)),
                count, MAX_PARAMETERS))


def differences(config, other, ignore=()):
    """The keys, sorted, whose values differ between two configurations (a
    key that one lacks differs), leaving out those in ``ignore``: what
    decides whether a run may continue or stand for another."""
    config, other = with_defaults(config), with_defaults(other)
    return sorted(key for key in set(config) | set(other)
                  if key not in ignore and config.get(key) != other.get(key))


def squared_hinge(y, t):
    """Mean over examples and classes of ``max(0, 1 - t_k y_k)**2``, with
    ``t_k = +1`` for the true class and -1 for the others."""
    return F.hinge(y, t, norm='L2') / y.shape[1]


def build_classifier(config):
    """The :class:`~chainer.links.Classifier` described by ``config``."""
    init = {'lecun': None, 'uniform': initializers.Uniform(1.0)}[
        config['init']]
    options = dict(
        activation=config['activation'],
        input_dropout=config['input_dropout'], dropout=config['dropout'],
        centered_input=config['centered_input'], bn_eps=config['bn_eps'],
        initialW=init, **{role: quantizers.parse(config[role])
                          for role in QUANTIZER_KEYS})
    layers = architecture(config)
    if layers is None:
        predictor = net.MnistMLP(datasets.input_size(config),
                                 hidden_units(config), N_OUT,
                                 n_layers=config['layers'], **options)
    else:
        predictor = net.ConvNet(datasets.image_shape(config), layers, N_OUT,
                                width=with_defaults(config)['width'],
                                **options)
    lossfun = {'softmax': F.softmax_cross_entropy,
               'squared_hinge': squared_hinge}[config['loss']]
    return L.Classifier(predictor, lossfun=lossfun)


def build_optimizer(model, config):
    """Adam for ``model`` with the configuration's clipping and step scales."""
    # Keeps the real-valued parameters in [-1, 1] after every update, in
    # the update's pass.
    optimizer = fused_adam.Adam(clip=WeightClip(
        param_names=None if config['clip'] == 'all' else ('W',)),
        alpha=config['lr'])
    optimizer.setup(model)
    if config['glorot_lr_scale']:
        # BinaryConnect's per-layer learning rate: each weight matrix moves
        # 1 / sqrt(1.5 / (fan_in + fan_out)) times faster (Adam's eta);
        # a filter's fans count its receptive field, as Glorot's do.
        for link in model.predictor.weight_layers():
            out_size, in_size = link.W.shape[:2]
            field = link.W.size // (out_size * in_size)
            link.W.update_rule.hyperparam.eta = 1 / math.sqrt(
                1.5 / ((in_size + out_size) * field))
    return optimizer


def lr_decay_rate(config):
    """Per-epoch factor taking alpha from ``lr`` to ``lr_final`` over the
    run, or None for a constant alpha."""
    if not config['lr_final']:
        return None
    return (config['lr_final'] / config['lr']) ** (1.0 / config['epoch'])
