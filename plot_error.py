#!/usr/bin/env python3
"""Training, validation and test error against epochs, from a run's log.

    ./plot_error.py result                     # writes result/error.png
    ./plot_error.py result -o error.svg --line 1.40 "paper, BNN (Torch7)"

Works on a finished run and on one still training. The epoch of the best
validation error (the model ``model_best.npz`` holds) is marked with its
test error; each --line draws a reference error in %.
"""
import argparse
import os

from quantized_net import cli
from quantized_net.training import error_curves
from quantized_net.training import result_dir
from quantized_net import errors

PROG = 'plot_error.py'
FIGURE_FILE = 'error.png'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Plot the error curves of a training run')
    parser.add_argument('result', help='Result directory (--out of '
                        'train_mnist.py)')
    parser.add_argument('--out', '-o', default=None,
                        help='Figure to write; .png, .svg or .pdf '
                        '(default: RESULT/{})'.format(FIGURE_FILE))
    parser.add_argument('--line', nargs=2, action='append', default=[],
                        metavar=('ERROR', 'LABEL'),
                        help='Draw a reference error in %% (repeatable)')
    parser.add_argument('--title', default=None, help='Figure title')
    args = cli.parse(parser, argv)
    try:
        args.line = [(float(value), label) for value, label in args.line]
    except ValueError:
        parser.error('--line takes an error in % and a label, got {}'
                     .format(args.line))
    if any(not 0 < value <= 100 for value, _ in args.line):
        parser.error('--line errors must be in (0, 100] %')
    return args


def plot(args):
    try:
        log = result_dir.read_log(args.result)
    except OSError as e:
        raise errors.UsageError('cannot read the log of {}: {}'.format(
            args.result, e.strerror or e))
    except ValueError as e:
        raise errors.UsageError('{} is not a LogReport log ({})'.format(
            os.path.join(args.result, result_dir.LOG_FILE), e))
    series = error_curves.error_series(log)
    best = error_curves.best_validation(log)
    out = args.out or os.path.join(args.result, FIGURE_FILE)
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise errors.UsageError('cannot write {}: its directory does not '
                             'exist'.format(out))
    try:
        error_curves.draw(series, out, args.line, best, args.title)
    except ImportError:
        raise errors.UsageError('plotting needs matplotlib: pip install '
                             'matplotlib')
    except ValueError as e:  # a format matplotlib does not write
        raise errors.UsageError('cannot write {}: {}'.format(out, e))
    print('wrote {}: {} epochs'.format(out, len(log)))
    if best is not None:
        test = error_curves.error(best, 'test')
        print('best validation error {:.2f}% at epoch {}; test error there '
              '{}'.format(error_curves.error(best, 'validation'),
                          best['epoch'], 'not logged' if test is None else
                          '{:.2f}%'.format(test)))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: plot(args))


if __name__ == '__main__':
    main()
