#!/usr/bin/env python3
"""Training speed of the quantized MLP against the float MLP and the
matrix-product floor, measured side by side in one process.

    ./bench.py                   # CPU, 2 x 1000 units, batch 100
    ./bench.py --reference       # also the NumPy and the slow reference forms,
                                 # and float with Chainer's (unfused) Adam
    ./bench.py --gpu 0

Each timed round runs one training iteration (forward, backward, Adam update,
WeightClip) of every configuration in turn, so that all of them see the same
machine state; the table gives the median over the rounds. "floor" is the
bare matrix products of one iteration (three per layer, two for the first,
whose input needs no gradient). The second table times the quantizers alone
on a 1000 x 1000 float32 matrix.
"""
import argparse
import statistics
import time

import numpy

import quantized_net  # noqa: F401  (before chainer: NumPy 2)
from chainer.optimizers import adam

from quantized_net import cli
from quantized_net.training import presets
from quantized_net.quantization import kernels as quantizer_kernels
from quantized_net.quantization import quantizers

PROG = 'bench.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(
        '\n')[0])
    parser.add_argument('--unit', '-u', type=cli.int_at_least(1),
                        default=1000)
    parser.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                        default=100)
    parser.add_argument('--rounds', type=cli.int_at_least(1), default=30,
                        help='Timed rounds (after --warmup untimed ones)')
    parser.add_argument('--warmup', type=cli.int_at_least(0), default=5)
    cli.add_device_flags(parser)
    parser.add_argument('--reference', action='store_true',
                        help='Also time the seed preset with the NumPy '
                             'kernels and with the log quantizer in its '
                             'log2/rint/exp2 form, and float with '
                             "Chainer's Adam update")
    return cli.parse(parser, argv)


def configurations(unit):
    """name -> configuration: the presets at the same size, and the
    bnn-style network (sign weights, sign hard-tanh units) of that size."""
    def sized(preset, **changes):
        return dict(presets.PRESETS[preset], preset=preset, unit=unit,
                    layers=2, **changes)
    return [
        ('float', sized('float'), None),
        ('seed', sized('seed'), None),
        ('bnn-style', sized('float', weight_quant='sign', act_quant='sign',
                            activation='htanh'), None),
    ]


class Trainer(object):
    """One model and optimizer; ``step()`` is one training iteration."""

    def __init__(self, config, x, t, device, kernels=None, fused=True):
        numpy.random.seed(0)
        self.model = presets.build_classifier(config)
        self.model.to_device(device)
        self.optimizer = presets.build_optimizer(self.model, config)
        if not fused:
            # Chainer's own update: fused_adam's rule only overrides it.
            for param in self.model.params():
                param.update_rule.__class__ = adam.AdamRule
        self.x, self.t = x, t
        self.kernels = kernels

    def step(self):
        with quantizer_kernels.using_cpu_kernels(
                self.kernels or quantizer_kernels.cpu_kernels()):
            self.model.cleargrads()
            loss = self.model(self.x, self.t)
            loss.backward()
            self.optimizer.update()


class Floor(object):
    """The matrix products of one iteration, and nothing else."""

    def __init__(self, unit, batchsize, xp):
        rng = numpy.random.RandomState(0)
        sizes = [784, unit, unit, 10]
        self.layers = [
            (xp.asarray(rng.rand(batchsize, n_in).astype(numpy.float32)),
             xp.asarray(rng.rand(n_out, n_in).astype(numpy.float32)),
             xp.asarray(rng.rand(batchsize, n_out).astype(numpy.float32)))
            for n_in, n_out in zip(sizes, sizes[1:])]

    def step(self):
        for i, (x, W, gy) in enumerate(self.layers):
            x.dot(W.T)
            gy.T.dot(x)
            if i:
                gy.dot(W)


def time_rounds(runners, rounds, warmup, synchronize):
    times = {name: [] for name, _ in runners}
    for round_ in range(warmup + rounds):
        for name, runner in runners:
            synchronize()
            start = time.perf_counter()
            runner.step()
            synchronize()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def quantizer_rates(xp, synchronize, repeat=20):
    """``[(quantizer, kernels, ms, elements/s)]`` on a 1000 x 1000 matrix."""
    x = xp.asarray(numpy.random.RandomState(1).randn(1000, 1000).astype(
        numpy.float32) * numpy.float32(0.05))
    if xp is numpy:
        kernel_sets = list(quantizer_kernels.usable_cpu_kernels())
    else:
        kernel_sets = ['cupy']
    rows = []
    for spec in ('seed', 'sign', 'linear:2', 'log:4'):
        quantizer = quantizers.parse(spec)
        for kernels in kernel_sets:
            with quantizer_kernels.using_cpu_kernels(
                    kernels if xp is numpy else
                    quantizer_kernels.cpu_kernels()):
                quantizer(x)
                samples = []
                for _ in range(repeat):
                    synchronize()
                    start = time.perf_counter()
                    quantizer(x)
                    synchronize()
                    samples.append(time.perf_counter() - start)
            seconds = statistics.median(samples)
            rows.append((spec, kernels, 1000 * seconds, x.size / seconds))
    return rows


def bench(args):
    device = cli.select_device(args)
    synchronize = cli.synchronizer(device)
    xp = device.xp
    rng = numpy.random.RandomState(0)
    x = xp.asarray(rng.rand(args.batchsize, 784).astype(numpy.float32))
    t = xp.asarray(rng.randint(0, 10, args.batchsize).astype(numpy.int32))
    runners = [(name, Trainer(config, x, t, device, kernels))
               for name, config, kernels in configurations(args.unit)]
    if args.reference and xp is numpy:
        seed = configurations(args.unit)[1][1]
        for kernels in ('numpy', 'reference'):
            runners.append(('seed, {} kernels'.format(kernels),
                            Trainer(seed, x, t, device, kernels)))
        runners.append(("float, Chainer's Adam", Trainer(
            configurations(args.unit)[0][1], x, t, device, fused=False)))
    runners.append(('floor', Floor(args.unit, args.batchsize, xp)))
    medians = time_rounds(runners, args.rounds, args.warmup, synchronize)

    where = cli.where(device) if xp is not numpy else \
        'CPU, {} kernels'.format(quantizer_kernels.cpu_kernels())
    print('Training iteration, 784-{0}-{0}-10 MLP, batch {1}, {2}; median '
          'of {3} rounds\n'.format(args.unit, args.batchsize, where,
                                   args.rounds))
    print('| configuration | ms / iteration | x float | x floor |')
    print('| --- | ---: | ---: | ---: |')
    for name, _ in runners:
        print('| {} | {:.2f} | {:.2f} | {:.2f} |'.format(
            name, 1000 * medians[name], medians[name] / medians['float'],
            medians[name] / medians['floor']))
    print('\nQuantizer on a 1000 x 1000 float32 matrix\n')
    print('| quantizer | kernels | ms | elements / s |')
    print('| --- | --- | ---: | ---: |')
    for spec, kernels, ms, rate in quantizer_rates(xp, synchronize):
        print('| {} | {} | {:.3f} | {:.3g} |'.format(
            spec, kernels, ms, rate))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
