"""cli.py: argument types, the device and model flags and their errors,
the exit wrapper."""
import argparse
import importlib.util
import os
import signal
import time

import pytest

from chainer.backends import cuda

import helpers
from quantized_net import cli
from quantized_net import errors


# cli.run and the signals module install the commands' handlers.
pytestmark = pytest.mark.usefixtures('signal_handlers')


def parser_with_device_flags():
    parser = argparse.ArgumentParser(prog='prog')
    cli.add_device_flags(parser)
    return parser


@pytest.mark.parametrize('parse,text,value', [
    (cli.int_at_least(1), '3', 3), (cli.int_at_least(-1), '-1', -1),
    (cli.positive_float, '1e-3', 0.001), (cli.ratio, '0', 0.0),
    (cli.ratio, '0.5', 0.5), (cli.quantizer_spec, ' log:4:1 ', 'log:4'),
    (cli.quantizer_spec, 'linear:3', 'linear:3')])
def test_argument_types_accept(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize('parse,text,message', [
    (cli.int_at_least(1), '0', 'must be at least 1, got 0'),
    (cli.int_at_least(0), '1.5', "expected an integer, got '1.5'"),
    (cli.positive_float, '0', "expected a finite positive number, got '0'"),
    (cli.positive_float, 'inf', "a finite positive number, got 'inf'"),
    (cli.positive_float, 'nan', "a finite positive number, got 'nan'"),
    (cli.ratio, '1', "expected a ratio in [0, 1), got '1'"),
    (cli.ratio, '-0.1', "expected a ratio in [0, 1), got '-0.1'"),
    (cli.quantizer_spec, 'ternary', "invalid quantizer 'ternary'")])
def test_argument_types_reject(parse, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        parse(text)
    assert message in str(e.value)


def test_device_flags_cpu_by_default_and_as_given():
    parser = parser_with_device_flags()
    args = cli.parse(parser, [])
    assert cli.device_flag(args) == '--gpu -1'
    device = cli.select_device(args)
    assert device.xp.__name__ == 'numpy' and cli.where(device) == 'CPU'
    assert cli.synchronizer(device)() is None
    args = cli.parse(parser, ['--device', '@numpy'])
    assert cli.device_flag(args) == '--device @numpy'
    assert cli.select_device(args).xp.__name__ == 'numpy'


def test_device_flags_together_are_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.parse(parser_with_device_flags(), ['--gpu', '0', '-d', '-1'])
    assert e.value.code == 2
    assert 'give either --device or --gpu, not both' in \
        capsys.readouterr().err


def test_model_flags():
    parser = argparse.ArgumentParser(prog='prog')
    cli.add_model_flags(parser)
    assert vars(parser.parse_args(['r'])) == {'result': 'r',
                                              'model_file': 'model.npz'}
    assert parser.parse_args(['r', '--best']).model_file == 'model_best.npz'


def test_a_device_of_its_specifier_and_flag():
    assert cli.device_spec(cli.parse(parser_with_device_flags(), [])) == -1
    assert cli.device_spec(cli.parse(parser_with_device_flags(),
                                     ['-d', '@numpy'])) == '@numpy'
    assert [cli.wants_gpu(spec) for spec in (-1, '@numpy', 0, '1',
                                             '@cupy:0', '-1')] == [
        False, False, True, True, True, False]
    assert cli.get_device('@numpy', '--device @numpy').xp.__name__ == \
        'numpy'


def test_bad_device_specifier():
    args = cli.parse(parser_with_device_flags(), ['--device', 'tpu:3'])
    with pytest.raises(errors.UsageError, match="invalid device 'tpu:3'"):
        cli.select_device(args)


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
@pytest.mark.parametrize('flags,named', [
    (['--gpu', '0'], '--gpu 0'), (['-d', '@cupy:1'], '--device @cupy:1'),
    (['--device', '0'], '--device 0')])
def test_gpu_without_a_gpu_says_what_to_do(flags, named):
    args = cli.parse(parser_with_device_flags(), flags)
    with pytest.raises(errors.UsageError) as e:
        cli.select_device(args)
    if cuda.available:  # CuPy without a usable device
        assert 'finds no usable CUDA GPU' in str(e.value)
    elif importlib.util.find_spec('cupy'):  # CuPy without CUDA libraries
        assert str(e.value).startswith(
            named + ' asks for a GPU, but CuPy cannot load CUDA (')
    else:
        assert str(e.value) == cli.NO_CUPY.format(named)


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
def test_gpu_without_cupy_or_without_cuda(monkeypatch):
    monkeypatch.setattr(cuda, 'available', False)
    monkeypatch.setattr(cuda, '_resolution_error', ImportError(
        'Failure finding "libcublasLt.so.12": No such file'), raising=False)
    args = cli.parse(parser_with_device_flags(), ['--gpu', '0'])
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(errors.UsageError) as e:
        cli.select_device(args)
    assert str(e.value) == cli.NO_CUPY.format('--gpu 0')
    monkeypatch.setattr(importlib.util, 'find_spec', lambda name: object())
    with pytest.raises(errors.UsageError) as e:
        cli.select_device(args)
    assert str(e.value) == (
        '--gpu 0 asks for a GPU, but CuPy cannot load CUDA (Failure finding '
        '"libcublasLt.so.12"); install the CUDA driver and the libraries '
        'CuPy needs, or leave out --gpu/--device to run on the CPU.')


@pytest.mark.parametrize('error', [
    errors.UsageError('a usage error'),
    errors.DatasetError('a data set error'),
    errors.PackedFormatError('a packed file error'),
    errors.ResultError('a result directory error')])
def test_run_turns_project_errors_into_one_line(error, capsys):
    def main():
        raise error
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main)
    assert e.value.code == 'prog.py: error: {}'.format(error)


@pytest.mark.parametrize('error,line', [
    (errors.UsageError('a/new\nline is a file'), 'a/new\\nline is a file'),
    (errors.ResultError('out/\x1b[2Jred\r'), 'out/\\x1b[2Jred\\r'),
    (OSError(28, 'No space left on device', 'out/lo\ng'),
     'cannot use out/lo\\ng: No space left on device.'),
    (MemoryError(), 'not enough memory; give a smaller --batchsize or '
     'network, or free memory.')])
def test_run_ends_in_one_printable_line_whatever_the_message_holds(error,
                                                                   line):
    def main():
        raise error
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main)
    assert e.value.code == 'prog.py: error: ' + line
    assert e.value.code.isprintable()


def test_run_passes_other_errors_and_results():
    assert cli.run('prog.py', lambda: 42) == 42

    def main():
        raise ZeroDivisionError('a bug')
    with pytest.raises(ZeroDivisionError):
        cli.run('prog.py', main)


def test_run_on_ctrl_c(capsys):
    def main():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main, interrupted=lambda: 'resume with --resume')
    assert e.value.code == 130
    assert capsys.readouterr().err == \
        'prog.py: interrupted; resume with --resume\n'
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main)
    assert e.value.code == 130
    assert capsys.readouterr().err == 'prog.py: interrupted\n'


def test_run_on_sigterm_cleans_up_and_exits_143(capsys):
    cleaned = []

    def main():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the signal arrives before this ends
        finally:
            cleaned.append(True)
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main, interrupted=lambda: None)
    assert e.value.code == 143 and cleaned == [True]
    assert capsys.readouterr().err == 'prog.py: terminated\n'


def test_signals_are_ignored_once_the_work_has_ended(capsys):
    def main():
        raise errors.UsageError('bad input')
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main)
    assert e.value.code == 'prog.py: error: bad input'
    # Its line is being written: a second Ctrl-C changes nothing.
    assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)


def test_a_signal_as_the_work_ends_is_reported_as_such(capsys):
    def main():
        os.kill(os.getpid(), signal.SIGINT)
        raise errors.UsageError('bad input')  # before the handler runs
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main)
    assert e.value.code == 130
    assert capsys.readouterr().err == 'prog.py: interrupted\n'


def test_a_second_signal_during_the_cleaning_is_ignored(capsys):
    cleaned = []

    def main():
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            cleaned.append(True)
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main, interrupted=lambda: 'resume with X')
    assert e.value.code == 130 and cleaned == [True]
    assert capsys.readouterr().err == 'prog.py: interrupted; resume with X\n'


def test_a_hint_that_cannot_be_found_is_left_out(capsys):
    def hint():
        raise FileNotFoundError(2, 'No such file or directory', 'out')

    def main():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as e:
        cli.run('prog.py', main, interrupted=hint)
    assert e.value.code == 130
    assert capsys.readouterr().err == 'prog.py: interrupted\n'


@pytest.mark.parametrize('text,message', [
    ('4294967296', 'must be an integer from 0 to 4294967295, got 4294967296'),
    ('-1', 'must be an integer from 0 to 4294967295, got -1'),
    ('x', "expected an integer, got 'x'")])
def test_a_bounded_integer(text, message):
    parse = cli.int_at_least(0, 2 ** 32 - 1)
    assert parse('4294967295') == 2 ** 32 - 1 and parse('0') == 0
    with pytest.raises(argparse.ArgumentTypeError) as e:
        parse(text)
    assert str(e.value) == message
