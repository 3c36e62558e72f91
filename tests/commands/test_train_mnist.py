"""train_mnist.py as a user runs it: in a subprocess, reading its output."""
import json
import os
import shutil

import pytest

import helpers
from helpers import assert_one_line_error, without_time
from quantized_net.training import result_dir
from quantized_net.training.result_dir import read_log

FAST = ['--unit', '500', '--batchsize', '50', '--noplot']


def run(*args, **kwargs):
    return helpers.run_script('train_mnist.py', *args, **kwargs)


def run_ok(*args):
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope='module')
def two_epochs(tmp_path_factory):
    """A 2-epoch seeded run on a small data set, and its inputs."""
    tmp = tmp_path_factory.mktemp('train')
    data = str(tmp / 'data')
    helpers.write_subset(data)
    out = str(tmp / 'full')
    result = run_ok('--dataset-dir', data, '--epoch', 2, '--seed', 7,
                    '--out', out, *FAST)
    return data, out, result


def test_short_run_learns(two_epochs):
    _, out, result = two_epochs
    log = read_log(out)
    assert [entry['epoch'] for entry in log] == [1, 2]
    assert log[-1]['validation/main/accuracy'] > 0.7  # chance is 0.1
    assert log[-1]['main/loss'] < log[0]['main/loss']
    for column in ('main/loss', 'validation/main/loss', 'main/accuracy',
                   'validation/main/accuracy', 'elapsed_time'):
        assert column in result.stdout
    assert '# seed: 7' in result.stdout
    assert sorted(os.listdir(out)) == [
        'args.json', 'cg.dot', 'log', 'model.npz', 'snapshot_iter_80']


def test_same_seed_same_log(two_epochs, tmp_path):
    data, out, _ = two_epochs
    again = str(tmp_path / 'again')
    run_ok('--dataset-dir', data, '--epoch', 2, '--seed', 7, '--out', again,
           *FAST)
    assert without_time(read_log(again)) == without_time(read_log(out))


def test_resume_continues_the_same_run(two_epochs, tmp_path):
    data, out, _ = two_epochs
    part = str(tmp_path / 'part')
    run_ok('--dataset-dir', data, '--epoch', 1, '--seed', 7, '--out', part,
           *FAST)
    run_ok('--dataset-dir', data, '--epoch', 2, '--out', part,
           '--resume', os.path.join(part, 'snapshot_iter_40'), *FAST)
    assert without_time(read_log(part)) == without_time(read_log(out))


def test_plots_written(two_epochs, tmp_path):
    data, _, _ = two_epochs
    out = str(tmp_path / 'plots')
    run_ok('--dataset-dir', data, '--epoch', 1, '--unit', 20, '--out', out)
    for name in ('loss.png', 'accuracy.png'):
        with open(os.path.join(out, name), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
def test_gpu_without_gpu_is_a_clear_error(two_epochs, tmp_path):
    data, _, _ = two_epochs
    for flags in (['--gpu', '0'], ['--gpu=0'], ['--device', '@cupy:0']):
        result = run('--dataset-dir', data, '--out', str(tmp_path), *flags)
        assert_one_line_error(result, 'train_mnist.py: error:')
        # No CuPy, CuPy without its CUDA libraries, or no usable device.
        assert any(reason in result.stderr for reason in (
            'pip install cupy-cuda12x', 'but CuPy cannot load CUDA (',
            'finds no usable CUDA GPU'))
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('flags,message', [
    (['--epoch', '0'], 'argument --epoch/-e: must be at least 1, got 0'),
    (['--batchsize', 'ten'], "expected an integer, got 'ten'"),
    (['--gpu', '-2'], 'must be at least -1'),
    (['--unit', '-5'], 'must be at least 1'),
    (['--frequency', '0'], 'must be at least 1'),
    (['--seed', '-1'], 'must be at least 0'),
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
])
def test_bad_flags_are_argparse_errors(flags, message):
    assert_one_line_error(run(*flags), message, code=2)


def test_quantizers_recorded_in_args_and_header(two_epochs, tmp_path):
    data, _, _ = two_epochs
    out = str(tmp_path / 'quantized')
    result = run_ok('--dataset-dir', data, '--epoch', 1, '--unit', 20,
                    '--preset', 'float', '--weight-quant', 'sign',
                    '--act-quant', 'linear:2', '--grad-quant', 'log:6',
                    '--activation', 'htanh', '--noplot', '--out', out)
    assert ('# quantizers: weight sign, activation linear:2, gradient '
            'log:6, input none') in result.stdout
    with open(os.path.join(out, 'args.json')) as f:
        config = json.load(f)['config']
    assert (config['preset'], config['weight_quant'], config['act_quant'],
            config['grad_quant'], config['activation'], config['unit']) == \
        ('float', 'sign', 'linear:2', 'log:6', 'htanh', 20)


def test_bnn_preset_validates_and_tests(two_epochs, tmp_path):
    data, _, _ = two_epochs
    out = str(tmp_path / 'bnn')
    result = run_ok('--dataset-dir', data, '--preset', 'bnn', '--unit', 64,
                    '--layers', 2, '--epoch', 2, '--validation', 500,
                    '--seed', 0, '--noplot', '--out', out)
    assert 'test/main/accuracy' in result.stdout
    log = read_log(out)
    # The alpha each epoch trained with: 0.003 * (3e-7 / 0.003) ** (e / 2)
    assert [round(entry['alpha'], 9) for entry in log] == [0.003, 3e-5]
    assert log[-1]['test/main/accuracy'] > 0.3  # chance is 0.1


def test_validation_larger_than_training_set(two_epochs, tmp_path):
    data, _, _ = two_epochs
    assert_one_line_error(run('--dataset-dir', data, '--validation', 2000,
                              '--out', str(tmp_path)),
                          '--validation 2000 leaves no training images')


def test_bad_device_specifier(tmp_path):
    assert_one_line_error(run('--device', 'tpu:3', '--out', str(tmp_path)),
                          "invalid device 'tpu:3'")


def test_bad_dataset_is_a_clear_error(tmp_path):
    assert_one_line_error(run('--dataset-dir', str(tmp_path)),
                          'train-images-idx3-ubyte is missing from')


def test_resume_errors(two_epochs, tmp_path):
    data, out, _ = two_epochs
    snapshot = os.path.join(out, 'snapshot_iter_80')
    assert_one_line_error(
        run('--dataset-dir', data, '--resume', str(tmp_path / 'none'),
            '--out', str(tmp_path), *FAST),
        'cannot resume: snapshot', 'does not exist')
    corrupt = tmp_path / 'corrupt'
    corrupt.write_bytes(b'PK\x03\x04 not a zip')
    assert_one_line_error(
        run('--dataset-dir', data, '--resume', str(corrupt),
            '--out', str(tmp_path), *FAST),
        'cannot resume: ', 'is not an archive of arrays (empty, damaged, '
        'or not an .npz file)')
    # A run resumes with its own configuration, the epochs aside.
    assert_one_line_error(
        run('--dataset-dir', data, '--resume', snapshot, '--unit', 30,
            '--out', str(tmp_path / 'other'), '--batchsize', 50, '--noplot'),
        'cannot resume from', "trained with other value (unit 500, not 30)")
    assert not os.path.exists(str(tmp_path / 'other'))
    # Without its args.json beside it, the snapshot itself must fit.
    alone = tmp_path / 'alone'
    alone.mkdir()
    shutil.copy(snapshot, str(alone))
    assert_one_line_error(
        run('--dataset-dir', data, '--resume',
            str(alone / 'snapshot_iter_80'), '--unit', 30,
            '--out', str(tmp_path / 'other'), '--noplot'),
        'cannot resume from', 'not a snapshot of this network')
    # Nothing was written that would stop the corrected command.
    assert os.listdir(str(tmp_path / 'other')) == []


def test_resume_keeps_the_seed_and_takes_plots_or_not(two_epochs, tmp_path):
    data, out, _ = two_epochs
    part = str(tmp_path / 'part')
    run_ok('--dataset-dir', data, '--epoch', 1, '--seed', 7, '--out', part,
           *FAST)
    # Resumed without --seed and with plots: the same run, its seed kept.
    flags = [flag for flag in FAST if flag != '--noplot']
    run_ok('--dataset-dir', data, '--epoch', 2, '--out', part, '--resume',
           os.path.join(part, 'snapshot_iter_40'), *flags)
    assert without_time(read_log(part)) == without_time(read_log(out))
    assert result_dir.read_args(part)['seed'] == 7


@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
def test_one_epoch_on_real_mnist(tmp_path):
    out = str(tmp_path / 'real')
    run_ok('--epoch', 1, '--seed', 0, '--noplot', '--out', out)
    log = read_log(out)
    assert log[0]['validation/main/accuracy'] >= 0.955
