#!/usr/bin/env python3
"""Summarises a network: per layer of weights, the precision of its input,
its output shape, its parameters by bit width, their memory and its
multiply-adds by precision; then the model's size at its quantized widths
against float32, and the share of its multiply-adds that is binary.

    ./summary.py result                       # the run in result/args.json
    ./summary.py --preset bnn-conv --width 0.25   # a configuration
    ./summary.py --preset bnn --json

Nothing is built or trained: the counts come from the layer sizes alone.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse

from quantized_net import cli
from quantized_net.training import flags
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import summary

PROG = 'summary.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Layers, parameters, size and multiply-adds '
                               'of a quantized network')
    parser.add_argument('result', nargs='?', default=None,
                        help='Output directory of train_mnist.py (holding '
                             '{}); without it, the configuration the flags '
                             'give'.format(result_dir.ARGS_FILE))
    parser.add_argument('--json', action='store_true',
                        help='Print the summary as JSON')
    flags.add_config_flags(parser)
    # None: no --preset given, which a result directory needs.
    parser.set_defaults(preset=None)
    args = cli.parse(parser, argv)
    given = [flags.flag(key) for key in ('preset',) + flags.CONFIG_FLAGS
             if getattr(args, key, None) is not None]
    if args.result is not None and given:
        parser.error('give a result directory or a configuration ({}), '
                     'not both'.format(', '.join(given)))
    args.config = None
    if args.result is None:
        args.preset = args.preset or 'seed'
        args.config = flags.config_from_args(args)
        try:
            presets.check_config(args.config)
        except ValueError as e:
            parser.error(str(e))
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: summary.print_summary(
        args.config or summary.recorded_config(args.result), args.json))


if __name__ == '__main__':
    main()
