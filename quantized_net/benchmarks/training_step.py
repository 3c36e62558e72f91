"""What ``bench.py`` times: one training iteration of the quantized MLP,
of the float MLP, and of the matrix products beneath both.

Quantization is elementwise work beside three matrix products per layer;
these runners put a number on its share. Every runner is built in one
process, with the same batch, and timed round by round with the others
(:func:`time_steps`), so that a ratio between two of them is the result.
"""
import statistics

import numpy

from chainer.optimizers import adam

from quantized_net.benchmarks import timing
from quantized_net.quantization import kernels as quantization_kernels
from quantized_net.training import presets


def configurations(unit):
    """``[(name, configuration)]``: the ``float`` and ``seed`` presets, and
    the bnn-style network (sign weights, sign hard-tanh units), each with
    two hidden layers of ``unit`` units."""
    def sized(preset, **changes):
        return dict(presets.PRESETS[preset], preset=preset, unit=unit,
                    layers=2, **changes)
    return [
        ('float', sized('float')),
        ('seed', sized('seed')),
        ('bnn-style', sized('float', weight_quant='sign', act_quant='sign',
                            activation='htanh')),
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

    def forward_backward(self):
        """The loss of the batch and the parameters' gradients."""
        with quantization_kernels.using_cpu_kernels(self.kernels):
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
    """The matrix products of one training iteration of the MLP, and
    nothing else: in each layer the output ``x W^T`` and the weight
    gradient ``gy^T x``, and in each layer but the first, whose input needs
    no gradient, the input gradient ``gy W``.

    Attributes:
        products (list): The ``(a, b)`` pairs that :meth:`step` multiplies.
    """

    def __init__(self, unit, batchsize, xp, layers=2):
        rng = numpy.random.RandomState(0)
        sizes = [presets.N_IN] + [unit] * layers + [presets.N_OUT]
        self.products = []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            x, W, gy = (xp.asarray(rng.rand(*shape).astype(numpy.float32))
                        for shape in ((batchsize, n_in), (n_out, n_in),
                                      (batchsize, n_out)))
            self.products += [(x, W.T), (gy.T, x)] + ([(gy, W)] if i else [])

    def step(self):
        for a, b in self.products:
            a.dot(b)


def runners(unit, batchsize, device, reference=False):
    """``[(name, runner)]``, the rows of ``bench.py``'s table in order:
    a :class:`Trainer` of each of :func:`configurations` on one random
    batch, then the :class:`Floor`. With ``reference``, on the CPU, also
    the seed configuration with the NumPy and with the reference forms of
    the quantizers, and float with Chainer's Adam update."""
    rng = numpy.random.RandomState(0)
    x = device.xp.asarray(rng.rand(batchsize, presets.N_IN).astype(
        numpy.float32))
    t = device.xp.asarray(rng.randint(0, presets.N_OUT, batchsize).astype(
        numpy.int32))
    configs = configurations(unit)
    rows = [(name, Trainer(config, x, t, device))
            for name, config in configs]
    if reference and device.xp is numpy:
        config = dict(configs)
        for kernels in ('numpy', 'reference'):
            rows.append(('seed, {} kernels'.format(kernels),
                         Trainer(config['seed'], x, t, device, kernels)))
        rows.append(("float, Chainer's Adam",
                     Trainer(config['float'], x, t, device, fused=False)))
    rows.append(('floor', Floor(unit, batchsize, device.xp)))
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
