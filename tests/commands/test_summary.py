"""summary.py as a user runs it: on a result directory, on a preset and
flags, and on what it cannot read. (The columns, counted by hand:
tests/unit/training/test_summary.py.)"""
import json
import os

import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.training import presets
from quantized_net.training import summary


def run(*args):
    return helpers.run_script('summary.py', *args)


@pytest.fixture(scope='module')
def result(tmp_path_factory):
    """A result directory of a small bnn, and its configuration."""
    model, config = helpers.binarized_model(units=16, layers=2)
    out = helpers.write_result(
        str(tmp_path_factory.mktemp('summary') / 'bnn'), model, config)
    return out, config


def test_a_result_directory(result):
    out, config = result
    printed = run(out)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == '\n'.join(summary.table(config)) + '\n'
    lines = printed.stdout.splitlines()
    # 784 x 16 sign weights on float32 pixels: 1,568 B, and 48 floats.
    assert lines[0] == 'model: preset bnn, mnist 1x28x28, 2 x 16 units, htanh'
    assert lines[5] == ('l1     linear       32      16        12,544        '
                        '     48  1.72 KiB           0       12,544')
    # 784 x 16 + 16 x 16 + 16 x 10 weights; 16 + 16 + 10 units of 3.
    assert lines[11] == 'parameters            13,086 (12,960 1-bit, 126 '\
        '32-bit)'
    as_json = run(out, '--json')
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == summary.as_json(config)


def test_a_trained_run_is_summarised_as_the_flags_it_was_trained_with(
        tiny_data, tmp_path):
    out = str(tmp_path / 'run')
    flags = ['--preset', 'bnn', '--unit', 16, '--layers', 1, '--epoch', 1,
             '--batchsize', 50, '--validation', 100]
    trained = helpers.run_script('train_mnist.py', '--dataset-dir',
                                 tiny_data, '--noplot', '--out', out,
                                 '--seed', 1, *flags)
    assert trained.returncode == 0, trained.stderr
    printed = run(out)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == run(*flags).stdout
    assert printed.stdout.splitlines()[0] == \
        'model: preset bnn, mnist 1x28x28, 1 x 16 units, htanh'


def test_a_preset_and_flags():
    printed = run('--preset', 'bnn-conv', '--width', '0.25')
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    # 16C3-16C3-P2-32C3-32C3-P2-128FC on 28 x 28: each 3 x 3 filter over
    # every pixel, then 32 x 7 x 7 = 1,568 values into 128 units.
    assert lines[:2] == [
        'model: preset bnn-conv, mnist 1x28x28, '
        '64C3-64C3-P2-128C3-128C3-P2-512FC x 0.25 wide, htanh',
        'quantizers: weight sign, activation sign, input none']
    assert lines[5:11] == [
        'l1     conv         32  16x28x28           144             48      '
        '210 B           0      112,896',
        'l2     conv          1  16x14x14         2,304             48      '
        '480 B   1,806,336            0',
        'l3     conv          1  32x14x14         4,608             96      '
        '960 B     903,168            0',
        'l4     conv          1    32x7x7         9,216             96   '
        '1.50 KiB   1,806,336            0',
        'l5     linear        1       128       200,704            384  '
        '26.00 KiB     200,704            0',
        'l6     linear        1        10         1,280             30      '
        '280 B       1,280            0']
    assert lines[12:19] == [
        'total                                  218,256            702  '
        '29.38 KiB   4,717,824      112,896',
        '',
        'parameters            218,958 (218,256 1-bit, 702 32-bit)',
        'model size            29.38 KiB at the widths above',
        'float32 equivalent    855.30 KiB',
        'compression ratio     29.11x',
        'multiply-adds         4,830,720']
    assert lines[19] == 'binary multiply-adds  4,717,824 (97.66%: 1-bit '\
        'inputs x 1-bit weights)'


def test_without_arguments_the_seed_preset():
    printed = run('--json')
    assert printed.returncode == 0, printed.stderr
    config = dict(presets.PRESETS['seed'], preset='seed')
    assert json.loads(printed.stdout) == summary.as_json(config)


def test_errors(result, tmp_path):
    out, config = result
    missing = str(tmp_path / 'missing')
    assert_one_line_error(run(missing), 'summary.py: error: {} is not a '
                          'directory (it does not exist)'.format(missing))
    fifo = str(tmp_path / 'fifo')
    os.mkfifo(fifo)
    assert_one_line_error(run(fifo), 'is not a directory (it is a FIFO)')
    bad = tmp_path / 'bad'
    bad.mkdir()
    (bad / 'args.json').write_text(json.dumps(
        {'config': dict(config, weight_quant='log:9')}))
    assert_one_line_error(run(str(bad)), 'args.json is not a configuration '
                          "written by train_mnist.py (weight_quant: invalid "
                          "quantizer 'log:9'")
    # A result and a configuration are two answers to one question.
    assert_one_line_error(run(out, '--preset', 'bnn', '--unit', '8'),
                          'summary.py: error: give a result directory or a '
                          'configuration (--preset, --unit), not both',
                          code=2)
    assert_one_line_error(run('--architecture', '4C3-P2-P2-8FC'),
                          "architecture: '4C3-P2-P2-8FC' pools twice",
                          code=2)
