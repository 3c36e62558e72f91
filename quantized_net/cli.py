"""What every script's command line shares.

* :class:`errors.UsageError`, the argument types (:func:`int_at_least`,
  :func:`positive_float`, :func:`ratio`, :func:`quantizer_spec`);
* ``--gpu/-g`` and ``--device/-d`` (:func:`add_device_flags`), one spelling
  for every script that can run on a GPU, and :func:`select_device`, which
  checks that the device asked for exists and gives benchmarks their
  synchronizer;
* ``--dataset-dir`` (:func:`add_dataset_flag`);
* the result directory and ``--best`` of the commands that read a trained
  model (:func:`add_model_flags`, :func:`add_best_flag`);
* :func:`run`, the exit wrapper: the project's errors (usage, data set,
  packed file, result directory) end the script with one line,
  ``PROG: error: message``, and exit status 1, and Ctrl-C and SIGTERM
  with one line and 130 or 143; never a traceback.
"""
import argparse
import importlib.util
import math
import sys

import chainer
from chainer.backends import cuda

from quantized_net.quantization import quantizers
from quantized_net.training import result_dir
from quantized_net import errors
from quantized_net import signals

NO_CUPY = (
    '{} asks for a GPU, but CuPy is not installed. Install the CuPy wheel '
    'for your CUDA version (pip install cupy-cuda12x for CUDA 12, '
    'cupy-cuda13x for CUDA 13), or leave out --gpu/--device to run on '
    'the CPU.')
CUPY_WITHOUT_CUDA = (
    '{} asks for a GPU, but CuPy cannot load CUDA ({}); install the CUDA '
    'driver and the libraries CuPy needs, or leave out --gpu/--device to '
    'run on the CPU.')


def int_at_least(low, high=None):
    """Argument type: an integer ``>= low`` (and ``<= high``, if given)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                'expected an integer, got {!r}'.format(text))
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(
                'must be an integer from {} to {}, got {}'.format(
                    low, high, value))
        if value < low:
            raise argparse.ArgumentTypeError(
                'must be at least {}, got {}'.format(low, value))
        return value
    parse.__name__ = 'integer'  # argparse names the type in errors
    return parse


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def positive_float(text):
    """Argument type: a finite number ``> 0``."""
    value = _number(text)
    if value is None or not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(
            'expected a finite positive number, got {!r}'.format(text))
    return value


def ratio(text):
    """Argument type: a number in ``[0, 1)``."""
    value = _number(text)
    if value is None or not 0 <= value < 1:
        raise argparse.ArgumentTypeError(
            'expected a ratio in [0, 1), got {!r}'.format(text))
    return value


def quantizer_spec(text):
    """Argument type: a quantizer spec (see :data:`quantizers.SPEC_FORMS`),
    parsed here once and returned in its canonical form."""
    try:
        return quantizers.parse(text).spec
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e))


quantizer_spec.__name__ = 'quantizer'


def add_dataset_flag(parser, dataset='mnist', environment='MNIST_DIR'):
    """``--dataset-dir``: where the files of ``dataset`` are (by default,
    the directory the variable ``environment`` names)."""
    parser.add_argument('--dataset-dir', default=None,
                        help='Directory with the {} files (see '
                             'docs/datasets.md); default: ${}, else a '
                             'verified download cached in Chainer\'s dataset '
                             'root'.format(dataset, environment))


def add_model_flags(parser):
    """The positional result directory of the commands that read a trained
    model, and ``--best`` to read its best-validation model instead."""
    parser.add_argument('result', help='Output directory of train_mnist.py '
                                       '(holding {} and {})'.format(
                                           result_dir.ARGS_FILE,
                                           result_dir.MODEL_FILE))
    add_best_flag(parser, 'Read {}, the model of the epoch with the best '
                          'validation accuracy, instead of {}'.format(
                              result_dir.BEST_MODEL_FILE,
                              result_dir.MODEL_FILE))


def add_best_flag(parser, help_text):
    """``--best``: ``args.model_file`` names the best-validation model
    (``model_best.npz``) instead of ``model.npz``."""
    parser.add_argument('--best', dest='model_file', action='store_const',
                        const=result_dir.BEST_MODEL_FILE,
                        default=result_dir.MODEL_FILE, help=help_text)


def add_device_flags(parser):
    """``--device/-d`` and ``--gpu/-g``, as in Chainer's examples; read
    them back with :func:`parse` and :func:`select_device`."""
    parser.add_argument('--device', '-d', default=None,
                        help='Chainer device specifier: @numpy, @cupy:0, '
                             'or an integer (negative for the CPU)')
    parser.add_argument('--gpu', '-g', type=int_at_least(-1), default=-1,
                        help='GPU ID (-1 for the CPU); same as '
                             '--device @cupy:ID')


def parse(parser, argv=None):
    """``parser.parse_args(argv)``, with the rule that argparse cannot
    express: ``--device`` and ``--gpu`` are not given together."""
    args = parser.parse_args(argv)
    if getattr(args, 'device', None) is not None and \
            getattr(args, 'gpu', -1) != -1:
        parser.error('give either --device or --gpu, not both')
    return args


def device_flag(args):
    """The device flag as the user gave it: ``'--gpu 0'`` or
    ``'--device @cupy:1'``."""
    if args.device is None:
        return '--gpu {}'.format(args.gpu)
    return '--device {}'.format(args.device)


def device_spec(args):
    """The Chainer device specifier that ``--device`` or ``--gpu`` give."""
    return args.gpu if args.device is None else args.device


def wants_gpu(spec):
    """Whether the device specifier ``spec`` names a CUDA GPU."""
    text = str(spec)
    return text.startswith('@cupy') or text.isdigit()


def select_device(args):
    """The Chainer device that ``--device`` or ``--gpu`` ask for, made
    current (see :func:`get_device`)."""
    return get_device(device_spec(args), device_flag(args))


def get_device(spec, flag):
    """The Chainer device of specifier ``spec``, made current;
    errors.UsageError says what is wrong (no CuPy, no such GPU, a malformed
    specifier), naming ``flag`` (the flag as given, see
    :func:`device_flag`)."""
    if wants_gpu(spec) and not cuda.available:
        if importlib.util.find_spec('cupy') is None:
            raise errors.UsageError(NO_CUPY.format(flag))
        raise errors.UsageError(CUPY_WITHOUT_CUDA.format(flag, str(
            getattr(cuda, '_resolution_error', '')).split(': ')[0]))
    try:
        device = chainer.get_device(spec)
    except (RuntimeError, ValueError) as e:
        raise errors.UsageError('invalid device {!r}: {}'.format(
            spec, ' '.join(str(e).split())))
    if device.xp is cuda.cupy:
        try:
            count = cuda.cupy.cuda.runtime.getDeviceCount()
        except cuda.cupy.cuda.runtime.CUDARuntimeError as e:
            raise errors.UsageError(
                'CuPy is installed but finds no usable CUDA GPU ({}); check '
                'the driver, or run on the CPU.'.format(e))
        if device.device.id >= count:
            raise errors.UsageError(
                'there is no CUDA GPU {} ({} found).'.format(
                    device.device.id, count))
    device.use()
    return device


def synchronizer(device):
    """A function that waits until ``device`` has done its queued work:
    what a benchmark calls before reading the clock."""
    if device.xp is cuda.cupy:
        return device.device.synchronize
    return lambda: None


def where(device):
    """``'CPU'`` or ``'GPU n'``, for reports."""
    if device.xp is cuda.cupy:
        return 'GPU {}'.format(device.device.id)
    return 'CPU'


def run(prog, main, interrupted=None, report_signals=True):
    """Calls ``main()`` and ends the script as a user expects:

    * the project's errors (:class:`errors.Error`), and those of the
      machine (:class:`OSError`: a disk full, say; :class:`MemoryError`):
      one line on stderr, ``PROG: error: message``, exit status 1 (a
      newline or control character in the message, from a path someone
      gave, is escaped: :func:`errors.one_line`);
    * Ctrl-C (SIGINT) and SIGTERM: one line, ``PROG: interrupted`` or
      ``PROG: terminated``, followed by what ``interrupted()`` says (how to
      resume, say), exit status 130 or 143 as a shell reports a signal.

    Once ``main()`` has ended, however it ended, SIGINT and SIGTERM are
    ignored (:func:`signals.ignore`): a second Ctrl-C cannot cut the line
    short or turn it into a traceback. A signal that arrives as ``main()``
    ends is reported as such.

    Args:
        prog (str): The script's name.
        main (callable): The script's work.
        interrupted (callable): Returns what to add on a signal, or None.
        report_signals (bool): Whether to say so on a signal (the exit
            status is set either way).
    """
    try:
        try:
            signals.install_raising()
            return main()
        finally:
            signals.ignore()
    except errors.Error as e:
        sys.exit('{}: error: {}'.format(prog, errors.one_line(e)))
    except OSError as e:  # the machine's own: a disk full, a name too long
        sys.exit('{}: error: {}'.format(prog, errors.one_line(
            errors.os_error(e))))
    except MemoryError:
        sys.exit('{}: error: not enough memory; give a smaller --batchsize '
                 'or network, or free memory.'.format(prog))
    except (KeyboardInterrupt, signals.Terminated) as e:
        what, status = signals.ending(e)
        if report_signals:
            try:
                detail = interrupted() if interrupted else None
            except OSError:  # the directory it would look in is gone
                detail = None
            print('{}: {}{}'.format(prog, what, '; ' + errors.one_line(
                detail) if detail else ''), file=sys.stderr)
        sys.exit(status)
