#!/usr/bin/env python3
"""Training speed of a quantized network against the same network in
float and the matrix-product floor, measured side by side in one process.

    ./bench.py                   # CPU, the MLP: 2 x 1000 units, batch 100
    ./bench.py --reference       # also the NumPy and the slow reference forms,
                                 # and float with Chainer's (unfused) Adam
    ./bench.py --gpu 0
    ./bench.py --breakdown       # also where each iteration's time goes
    ./bench.py --convnet --width 0.25 --rounds 10 --calls 2
                                 # the MNIST ConvNet (bnn-conv's) instead

Each timed round runs --calls training iterations (forward, backward, Adam
update, WeightClip) of every configuration in turn, so that all of them see
the same machine state, and takes each one's median; the first of a
configuration's calls follows another's and finds the caches and threads as
that one left them. The table gives the median over the rounds. "floor" is the
bare matrix products of one iteration (three per layer, two for the first,
whose input needs no gradient). A ratio is taken round by round, each
step against float's or the floor's of the same round, and printed as its
median over the rounds with the low and high quartiles beside it. The
quantizer table times the quantizers alone on a 1000 x 1000 float32
matrix.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse

import numpy

from quantized_net import cli
from quantized_net.benchmarks import breakdown
from quantized_net.benchmarks import quantizer_speed
from quantized_net.benchmarks import training_step
from quantized_net.quantization import kernels
from quantized_net.training import heap
from quantized_net.training import presets

PROG = 'bench.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split(
        '\n')[0])
    parser.add_argument('--unit', '-u', type=cli.int_at_least(1),
                        default=1000, help='Units of each hidden layer of '
                                           'the MLP')
    parser.add_argument('--convnet', action='store_true',
                        help="Time the MNIST ConvNet (the bnn-conv "
                             "preset's) in float, with the seed quantizer "
                             "and binarized, instead of the MLP")
    parser.add_argument('--width', type=cli.positive_float, default=1.0,
                        help="Scale the ConvNet's filters and units by "
                             "this")
    parser.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                        default=100)
    parser.add_argument('--rounds', type=cli.int_at_least(1), default=30,
                        help='Timed rounds (after --warmup untimed ones)')
    parser.add_argument('--calls', type=cli.int_at_least(1), default=5,
                        help='Timed steps of each configuration in a round, '
                             'back to back; the round takes their median')
    parser.add_argument('--warmup', type=cli.int_at_least(0), default=5)
    cli.add_device_flags(parser)
    parser.add_argument('--reference', action='store_true',
                        help='Also time the seed network with the NumPy '
                             'kernels and with the log quantizer in its '
                             'log2/rint/exp2 form, and float with '
                             "Chainer's Adam update")
    parser.add_argument('--breakdown', action='store_true',
                        help="Also time each part of every configuration's "
                             "iteration: matrix products, quantizers, batch "
                             "normalisation, ..., Chainer's graph")
    args = cli.parse(parser, argv)
    for _, config in configurations(args):
        try:
            presets.check_config(config)
        except ValueError as e:
            parser.error(str(e))
    return args


def configurations(args):
    """The configurations the flags ask to time, float's first."""
    if args.convnet:
        return training_step.convnet_configurations(args.width)
    return training_step.configurations(args.unit)


def network_name(args):
    if args.convnet:
        return 'MNIST ConvNet {} x {:g} wide'.format(
            presets.ARCHITECTURES['mnist'], args.width)
    return '784-{0}-{0}-10 MLP'.format(args.unit)


def bench(args):
    device = cli.select_device(args)
    heap.keep_freed_memory()  # as training does (session.Training)
    synchronize = cli.synchronizer(device)
    configs = configurations(args)
    runners = training_step.runners(configs, args.batchsize, device,
                                    args.reference)
    rows = training_step.time_steps(runners, args.rounds, args.warmup,
                                    synchronize, args.calls)
    where = cli.where(device) if device.xp is not numpy else \
        'CPU, {} kernels'.format(kernels.cpu_kernels())
    title = '{}, batch {}, {}; {} rounds of {} calls'.format(
        network_name(args), args.batchsize, where, args.rounds, args.calls)
    print('Training iteration, {}\n'.format(title))
    print('| configuration | ms / iteration | x float | quartiles | x floor '
          '| quartiles |')
    print('| --- | ---: | ---: | ---: | ---: | ---: |')
    for name, seconds, x_float, x_floor in rows:
        print('| {} | {:.2f} | {:.3f} | {:.3f}-{:.3f} | {:.3f} | '
              '{:.3f}-{:.3f} |'.format(name, 1000 * seconds, *x_float,
                                       *x_floor))
    if args.breakdown:
        print_breakdown([(name, dict(runners)[name]) for name, _ in configs],
                        title, args, synchronize)
    print('\nQuantizer on a 1000 x 1000 float32 matrix\n')
    print('| quantizer | kernels | ms | elements / s |')
    print('| --- | --- | ---: | ---: |')
    for spec, kernel_set, ms, rate in quantizer_speed.quantizer_rates(
            device.xp, synchronize):
        print('| {} | {} | {:.3f} | {:.3g} |'.format(
            spec, kernel_set, ms, rate))


def print_breakdown(trainers, title, args, synchronize):
    names = [name for name, _ in trainers]
    parts, others = breakdown.time_parts(trainers, args.rounds, args.warmup,
                                         synchronize, args.calls)
    print('\nWhere an iteration goes, {}\n'.format(title))
    print('| part | ' + ' | '.join('{} ms | share'.format(name)
                                   for name in names) + ' |')
    print('| --- |' + ' ---: | ---: |' * len(names))
    for part in breakdown.PARTS + ('iteration',):
        cells = []
        for name in names:
            step = sum(parts[name].values())
            seconds = step if part == 'iteration' else parts[name][part]
            cells.append('{:.3f} | {:.1%}'.format(
                1000 * seconds, seconds / step))
        print('| {} | {} |'.format(part, ' | '.join(cells)))
    print('\nother functions: {}'.format(', '.join(others) or 'none'))
    memory = breakdown.update_against_memory(trainers[0][1], args.rounds,
                                             args.warmup)
    if memory:
        update, floor, moved = memory
        print('\nThe {} update against its memory traffic: {:.3f} ms; '
              'the same loads and stores ({:.1f} MB) with an add each, '
              '{:.3f} ms ({:.1f} GB/s)'.format(
                  names[0], 1000 * update, moved / 1e6, 1000 * floor,
                  moved / floor / 1e9))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: bench(args))


if __name__ == '__main__':
    main()
