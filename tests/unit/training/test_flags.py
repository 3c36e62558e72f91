"""flags.py: the flags that set a configuration and those of a training
run, their defaults and their errors (argparse's, exit status 2)."""
import argparse

import numpy
import pytest

from quantized_net.training import flags
from quantized_net.training import presets


def flag_parser(**defaults):
    parser = argparse.ArgumentParser()
    flags.add_config_flags(parser, skip=defaults.pop('skip', ()))
    parser.set_defaults(**defaults)
    return parser


def test_config_from_flags():
    args = flag_parser().parse_args(
        ['--preset', 'bnn', '-u', '64', '--weight-quant', 'linear:1',
         '--lr', '0.01', '--dropout', '0', '--validation', '0'])
    assert flags.config_from_args(args) == dict(
        presets.PRESETS['bnn'], preset='bnn', unit=64,
        weight_quant='linear:1', lr=0.01, dropout=0.0, validation=0)


def test_every_config_flag_sets_its_key():
    parser = flag_parser()
    for key in flags.CONFIG_FLAGS:
        option = next(a for a in parser._actions
                      if flags.flag(key) in a.option_strings)
        assert option.dest == key


def test_other_defaults_and_skipped_flags():
    parser = flag_parser(skip=('weight_quant',), preset='float', unit=256)
    args = parser.parse_args([])
    config = flags.config_from_args(args)
    assert config == dict(presets.PRESETS['float'], preset='float',
                          unit=256)
    with pytest.raises(SystemExit):
        parser.parse_args(['--weight-quant', 'sign'])


def train_parser():
    parser = argparse.ArgumentParser(prog='train_mnist.py')
    flags.add_train_flags(parser)
    return parser


def test_train_flags_default_to_the_original():
    args = flags.parse_train_args(train_parser(), [])
    assert (args.out, args.resume, args.replace, args.plot, args.seed,
            args.frequency, args.gpu, args.device, args.dataset_dir) == (
        'result', None, False, True, None, 1, -1, None, None)
    assert flags.config_from_args(args) == dict(presets.PRESETS['seed'],
                                                preset='seed')


@pytest.mark.parametrize('argv,message', [
    (['--epoch', '0'], 'argument --epoch/-e: must be at least 1, got 0'),
    (['--batchsize', 'ten'], "expected an integer, got 'ten'"),
    (['--gpu', '-2'], 'must be at least -1'),
    (['--unit', '-5'], 'must be at least 1'),
    (['--frequency', '0'], 'must be at least 1'),
    (['--seed', '-1'], 'must be an integer from 0 to 4294967295, got -1'),
    # NumPy's generator takes no larger seed.
    (['--seed', '4294967296'],
     'argument --seed: must be an integer from 0 to 4294967295, got '
     '4294967296'),
    (['--gpu', '0', '--device', '@numpy'], 'either --device or --gpu'),
    (['--bogus'], 'unrecognized arguments: --bogus'),
    (['--weight-quant', 'linear:0'],
     "argument --weight-quant: invalid quantizer 'linear:0': K must be an "
     "integer from 1 to 16. Valid forms: none, sign, stochastic, seed, "
     "linear:K"),
    (['--act-quant', 'log:x'], 'Valid forms:'),
    (['--grad-quant', 'ternary'], "invalid quantizer 'ternary'"),
    (['--preset', 'xnor'], "invalid choice: 'xnor'"),
    (['--dropout', '1'], 'expected a ratio in [0, 1)'),
    (['--lr', '0'], 'expected a finite positive number'),
    (['--lr', 'inf'], 'expected a finite positive number'),
    (['--bn-batches', '-1'], 'must be an integer from 0 to 1000000, got -1'),
    # What argparse's types cannot see, the configuration's check does.
    (['--unit', '1000000000'],
     'unit is 1000000000; it must be an integer from 1 to 8192'),
    (['--unit', '8192', '--layers', '32'],
     'a network of 32 x 8192 units has 2087665694 parameters, more than '
     '268435456 (what 1 GiB of float32 holds); give fewer --unit or '
     '--layers'),
])
def test_bad_flags_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        flags.parse_train_args(train_parser(), argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('usage: train_mnist.py')
    assert 'train_mnist.py: error: ' in err and message in err


def test_the_largest_seed_is_numpys():
    args = flags.parse_train_args(train_parser(), ['--seed', '4294967295'])
    assert args.seed == flags.MAX_SEED == 2 ** 32 - 1
    numpy.random.RandomState(flags.MAX_SEED)  # which NumPy takes
