"""What ``bench.py`` times: one training iteration of a quantized
network, of the same network in float, and of the matrix products beneath
both; for the MLP of the seed table and for the MNIST ConvNet.

Quantization is elementwise work beside three matrix products per layer;
these runners put a number on its share. Every runner is built in one
process, with the same batch, and timed round by round with the others
(:func:`time_steps`), so that a ratio between two of them is the result.
"""
import math
import statistics

import numpy

from chainer.optimizers import adam

from quantized_net.benchmarks import timing
from quantized_net.quantization import kernels as quantization_kernels
from quantized_net.training import datasets, presets
from quantized_net.training import trainer as training_trainer

QUANTIZERS_NONE = {role: 'none' for role in presets.QUANTIZER_KEYS}
QUANTIZERS_SEED = {role: 'seed' for role in presets.QUANTIZER_KEYS}


def configurations(unit):
    """``[(name, configuration)]`` of the MLP: the ``float`` and ``seed``
    presets, and the bnn-style network (sign weights, sign hard-tanh
    units), each with two hidden layers of ``unit`` units. The first is
    the float one."""
    def sized(preset, **changes):
        return dict(presets.PRESETS[preset], preset=preset, unit=unit,
                    layers=2, **changes)
    return [
        ('float', sized('float')),
        ('seed', sized('seed')),
        ('bnn-style', sized('float', weight_quant='sign', act_quant='sign',
                            activation='htanh')),
    ]


def convnet_configurations(width):
    """``[(name, configuration)]`` of the MNIST ConvNet at ``width``: the
    ``bnn-conv`` preset without quantizers (``float``), with the original
    suite's ``seed`` quantizer in every role (``seed-style``), and as it is
    (``binarized``: sign weights and units, 8-bit input). The first is the
    float one."""
    preset = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  width=width)
    return [
        ('float', dict(preset, **QUANTIZERS_NONE)),
        ('seed-style', dict(preset, **QUANTIZERS_SEED)),
        ('binarized', preset),
    ]


class Trainer(object):
    """One model and optimizer; :meth:`step` is one training iteration
    (forward, backward, Adam update, WeightClip) on one batch.

    Args:
        config (dict): The configuration (:mod:`presets`) of the model.
        x, t: The batch, on ``device``.
        device: A Chainer device.
        kernels (str): The CPU forms of the quantizers
            (:func:`~quantized_net.quantization.kernels.using_cpu_kernels`)
            during a step; the ones in use by default.
        fused (bool): Whether the update is the project's fused Adam,
            which clips in its pass, or Chainer's own and the clipping as
            an optimizer hook.
    """

    def __init__(self, config, x, t, device, kernels=None, fused=True):
        numpy.random.seed(0)
        self.model = presets.build_classifier(config)
        self.model.to_device(device)
        self.optimizer = presets.build_optimizer(self.model, config)
        if not fused:
            # Chainer's own update, then the clipping as an optimizer
            # hook: fused_adam's rule only overrides the update.
            for param in self.model.params():
                param.update_rule.__class__ = adam.AdamRule
            self.optimizer.add_hook(self.optimizer.clip)
        self.x, self.t = x, t
        self.kernels = kernels or quantization_kernels.cpu_kernels()
        self.type_checks = training_trainer.TypesCheckedOnce()

    def forward_backward(self):
        """The loss of the batch and the parameters' gradients; the
        functions' argument types checked the first time, as training
        checks them."""
        with quantization_kernels.using_cpu_kernels(self.kernels), \
                self.type_checks.scope():
            self.model.cleargrads()
            loss = self.model(self.x, self.t)
            loss.backward()

    def update(self):
        """The optimizer's update from the gradients, and its hooks."""
        self.optimizer.update()

    def step(self):
        self.forward_backward()
        self.update()


class Floor(object):
    """The matrix products of one training iteration, and nothing else:
    in each layer of weights the output ``x W^T`` and the weight gradient
    ``gy^T x``, and in each layer but the first, whose input needs no
    gradient, the input gradient ``gy W``. A convolution's are those of
    its im2col form (its columns, ``x``, one row a position of an image:
    as Chainer's CPU convolution multiplies; the columns' making, not a
    product, is not counted).

    Args:
        layers (list): The network's :class:`net.Layer` list
            (:func:`presets.network_layers`).
        batchsize (int): Images in a batch.
        xp: numpy or cupy.

    Attributes:
        products (list): The ``(a, b)`` pairs that :meth:`step` multiplies.
    """

    def __init__(self, layers, batchsize, xp):
        rng = numpy.random.RandomState(0)
        self.products = []
        for i, layer in enumerate(layers):
            rows = batchsize * math.prod(layer.computed[1:])
            n_out, n_in = layer.weights[0], math.prod(layer.weights[1:])
            x, W, gy = (xp.asarray(rng.rand(*shape).astype(numpy.float32))
                        for shape in ((rows, n_in), (n_out, n_in),
                                      (rows, n_out)))
            self.products += [(x, W.T), (gy.T, x)] + ([(gy, W)] if i else [])

    def step(self):
        for a, b in self.products:
            a.dot(b)


def runners(configs, batchsize, device, reference=False):
    """``[(name, runner)]``, the rows of ``bench.py``'s table in order:
    a :class:`Trainer` of each of ``configs`` (:func:`configurations` or
    :func:`convnet_configurations`) on one random batch, then the
    :class:`Floor` of their network. With ``reference``, on the CPU, also
    the second configuration with the NumPy and with the reference forms
    of the quantizers, and the first (float) with Chainer's Adam update
    and the clipping as a hook."""
    rng = numpy.random.RandomState(0)
    (float_name, float_config), (quantized_name, quantized_config) = \
        configs[:2]
    x = device.xp.asarray(rng.rand(
        batchsize, *(datasets.image_shape(float_config)
                     if presets.architecture(float_config) else
                     (datasets.input_size(float_config),))).astype(
        numpy.float32))
    t = device.xp.asarray(rng.randint(0, presets.N_OUT, batchsize).astype(
        numpy.int32))
    rows = [(name, Trainer(config, x, t, device))
            for name, config in configs]
    if reference and device.xp is numpy:
        for kernels in ('numpy', 'reference'):
            rows.append(('{}, {} kernels'.format(quantized_name, kernels),
                         Trainer(quantized_config, x, t, device, kernels)))
        rows.append(("{}, Chainer's Adam".format(float_name),
                     Trainer(float_config, x, t, device, fused=False)))
    rows.append(('floor', Floor(presets.network_layers(float_config),
                                batchsize, device.xp)))
    return rows


def time_steps(runners, rounds, warmup, synchronize=None, calls=1):
    """Times the runners' steps side by side
    (:func:`~quantized_net.benchmarks.timing.round_seconds`).

    Args:
        runners (list): ``(name, runner)`` pairs, ``'float'`` and
            ``'floor'`` among them.
        rounds (int): Timed rounds.
        warmup (int): Untimed rounds before them.
        synchronize (callable): Waits for the device's queued work.
        calls (int): Timed steps of each runner in a round, back to back:
            the round's time is their median.

    Returns:
        list: ``(name, seconds, x float, x floor)`` for each runner in
        order: the median seconds of a step, and its ratios to float's
        and to the floor's in the same rounds
        (:func:`~quantized_net.benchmarks.timing.ratio_spread`: median,
        low and high quartile).
    """
    samples = timing.round_seconds(
        [(name, runner.step) for name, runner in runners], rounds,
        calls=calls, warmup=warmup, synchronize=synchronize)
    return [(name, statistics.median(s for calls in samples[name]
                                     for s in calls),
             timing.ratio_spread(samples[name], samples['float']),
             timing.ratio_spread(samples[name], samples['floor']))
            for name, _ in runners]
