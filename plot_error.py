#!/usr/bin/env python3
"""Training, validation and test error against epochs, from a run's log.

    ./plot_error.py result                     # writes result/error.png
    ./plot_error.py result -o error.svg --line 1.40 "paper, BNN (Torch7)"

Works on a finished run and on one still training. The epoch the run
reports (the best validation epoch, the model ``model_best.npz`` holds,
where the run held out validation images, else the last) is marked with
its test error; each --line draws a reference error in %.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse

from quantized_net import cli
from quantized_net.training import error_curves

PROG = 'plot_error.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Plot the error curves of a training run')
    parser.add_argument('result', help='Result directory (--out of '
                        'train_mnist.py)')
    parser.add_argument('--out', '-o', default=None,
                        help='Figure to write; .png, .svg or .pdf '
                        '(default: RESULT/{})'.format(
                            error_curves.FIGURE_FILE))
    parser.add_argument('--line', nargs=2, action='append', default=[],
                        metavar=('ERROR', 'LABEL'),
                        help='Draw a reference error in %% (repeatable)')
    parser.add_argument('--title', default=None, help='Figure title')
    args = cli.parse(parser, argv)
    try:
        lines = error_curves.reference_lines(args.line)
    except ValueError as e:
        parser.error(str(e))
    return args, lines


def main(argv=None):
    args, lines = parse_args(argv)
    cli.run(PROG, lambda: error_curves.plot_run(args.result, args.out,
                                                lines, args.title))


if __name__ == '__main__':
    main()
