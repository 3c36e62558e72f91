"""session.py: a training run in this process, on a small generated data
set; what it prints and records, and every error one line that leaves the
result directory as it was."""
import json
import os
import shutil

import numpy
import pytest

import chainer

import helpers
from quantized_net.training import datasets
from quantized_net.training import evaluation
from quantized_net.training import mnist
from quantized_net.training import population_statistics
from quantized_net.training import result_dir
from quantized_net.training import run_record
from quantized_net.training import saved_model
from quantized_net.training import session
from quantized_net import errors

# 600 training images in batches of 50: 12 iterations an epoch.
FAST = ['--unit', 24, '--batchsize', 50, '--noplot']


@pytest.fixture(scope='module')
def data(tiny_data):
    return tiny_data


@pytest.fixture(scope='module')
def seed_run(data, tmp_path_factory, train_here):
    """Two epochs of the seed preset, trained here."""
    out = str(tmp_path_factory.mktemp('seed') / 'run')
    train_here('--dataset-dir', data, '--epoch', 2, '--seed', 7, '--out',
               out, *FAST)
    return out


def test_a_run_learns_and_writes_its_files(seed_run):
    log = result_dir.read_log(seed_run)
    assert [entry['epoch'] for entry in log] == [1, 2]
    assert log[-1]['main/loss'] < log[0]['main/loss']
    assert sorted(os.listdir(seed_run)) == [
        'args.json', 'cg.dot', 'log', 'model.npz', 'snapshot_iter_24']
    recorded = result_dir.read_args(seed_run)
    assert recorded['seed'] == 7 and 'processes' not in recorded


def test_header_and_args_record_the_configuration(data, tmp_path, capsys,
                                                  train_here):
    out = str(tmp_path / 'quantized')
    train_here('--dataset-dir', data, '--epoch', 1, '--unit', 20,
               '--preset', 'float', '--weight-quant', 'sign',
               '--act-quant', 'linear:2', '--grad-quant', 'log:6',
               '--activation', 'htanh', '--noplot', '--out', out)
    printed = capsys.readouterr().out
    assert ('# quantizers: weight sign, activation linear:2, gradient '
            'log:6, input none') in printed
    assert '# unit: 20 x 2 layers, htanh' in printed
    assert '# seed: None' in printed
    with open(os.path.join(out, 'args.json')) as f:
        config = json.load(f)['config']
    assert (config['preset'], config['weight_quant'], config['act_quant'],
            config['grad_quant'], config['activation'], config['unit']) == \
        ('float', 'sign', 'linear:2', 'log:6', 'htanh', 20)


def test_bnn_preset_validates_tests_and_decays_alpha(data, tmp_path,
                                                     train_here):
    out = str(tmp_path / 'bnn')
    train_here('--dataset-dir', data, '--preset', 'bnn', '--unit', 64,
               '--layers', 2, '--epoch', 2, '--validation', 100,
               '--seed', 0, '--noplot', '--out', out)
    log = result_dir.read_log(out)
    # The alpha each epoch trained with: 0.003 * (3e-7 / 0.003) ** (e / 2)
    assert [round(entry['alpha'], 9) for entry in log] == [0.003, 3e-5]
    assert log[-1]['test/main/accuracy'] > 0.3  # chance is 0.1
    assert result_dir.BEST_MODEL_FILE in os.listdir(out)


def refused(train, *argv):
    with pytest.raises(errors.Error) as e:
        train(*argv)
    assert '\n' not in str(e.value)
    return str(e.value)


def test_bad_input_is_refused_before_anything_is_written(
        data, tmp_path, train_here):
    out = str(tmp_path / 'out')
    common = ['--dataset-dir', data, '--out', out] + FAST
    assert refused(train_here, *common, '--validation', 600) == (
        '--validation 600 leaves no training images (the training set has '
        '600).')
    assert refused(train_here, *common, '--batchsize', 601).startswith(
        '--batchsize 601 is larger than the training set (600 images)')
    assert refused(train_here, *common, '--device', 'tpu:3').startswith(
        "invalid device 'tpu:3'")
    assert 'train-images-idx3-ubyte is missing from' in refused(
        train_here, '--dataset-dir', str(tmp_path), '--out', out)
    assert refused(train_here, *common, '--resume', str(tmp_path)).endswith(
        'is a directory; give one of its snapshot_iter_* files.')
    assert not os.path.exists(out)
    a_file = str(tmp_path / 'file')
    with open(a_file, 'w') as f:
        f.write('x')
    assert refused(train_here, '--dataset-dir', data, '--out', a_file) == \
        '--out {} is a file, not a directory.'.format(a_file)


@pytest.mark.skipif(helpers.gpu_available(), reason='a GPU is present')
def test_a_gpu_asked_for_where_there_is_none(data, tmp_path, train_here):
    for flags in (['--gpu', '0'], ['--device', '@cupy:0']):
        line = refused(train_here, '--dataset-dir', data, '--out',
                       str(tmp_path / 'out'), *flags)
        # No CuPy, CuPy without its CUDA libraries, or no usable device.
        assert any(reason in line for reason in (
            'pip install cupy-cuda12x', 'but CuPy cannot load CUDA (',
            'finds no usable CUDA GPU'))
    assert not os.path.exists(str(tmp_path / 'out'))


def test_resume_errors_leave_the_new_directory_empty(
        data, seed_run, tmp_path, train_here):
    snapshot = os.path.join(seed_run, 'snapshot_iter_24')
    other = str(tmp_path / 'other')
    common = ['--dataset-dir', data, '--out', other, '--batchsize', 50,
              '--noplot']
    assert refused(train_here, *common, '--resume', snapshot, '--unit',
                   30).startswith('cannot resume from {}: its run was '
                                  'trained with other value (unit 24, not '
                                  '30)'.format(snapshot))
    assert not os.path.exists(other)
    corrupt = str(tmp_path / 'corrupt')
    with open(corrupt, 'wb') as f:
        f.write(b'PK\x03\x04 not a zip')
    assert refused(train_here, *common, '--resume', corrupt) == (
        'cannot resume: {} is not an archive of arrays (empty, damaged, or '
        'not an .npz file); it was not loaded.'.format(corrupt))
    # Without its args.json beside it, the snapshot's own record is
    # checked: flags, seed and data.
    alone = tmp_path / 'alone'
    alone.mkdir()
    shutil.copy(snapshot, str(alone))
    copy = str(alone / 'snapshot_iter_24')
    assert refused(train_here, *common, '--resume', copy, '--unit',
                   30).startswith('cannot resume from {}: its run was '
                                  'trained with other value (unit 24, not '
                                  '30)'.format(copy))
    assert refused(train_here, *common, '--unit', 24, '--resume', copy,
                   '--seed', 6) == (
        'cannot resume from {}: --seed 6 was given, but its run was trained '
        'with seed 7; leave --seed out, or start a new run.'.format(copy))
    other_data = str(tmp_path / 'other_data')
    helpers.write_idx(other_data, 'train', *helpers.synthetic_digits(600, 3))
    helpers.write_idx(other_data, 'test', *helpers.synthetic_digits(200, 2))
    assert refused(train_here, *common[2:], '--dataset-dir', other_data,
                   '--unit', 24, '--resume', copy) == (
        'cannot resume from {}: its run was trained on other data than '
        '--dataset-dir {} holds; give the data set it was trained on, or '
        'start a new run.'.format(copy, other_data))
    # Refused before the directory was made: nothing was written that
    # would stop the corrected command.
    assert not os.path.exists(other)


def test_the_resume_hint_names_this_runs_latest_snapshot(
        data, seed_run, tmp_path, describe_run):
    out = str(tmp_path / 'run')
    training = session.Training(describe_run(
        '--dataset-dir', data, '--out', out, '--epoch', 1, *FAST))
    assert training.resume_hint() == 'no snapshot was written yet'
    training()
    assert training.resume_hint() == 'resume with --resume {}'.format(
        os.path.join(out, 'snapshot_iter_12'))
    # A run refused another run's directory names none of its snapshots.
    refused_run = session.Training(describe_run(
        '--dataset-dir', data, '--out', seed_run, *FAST))
    with pytest.raises(errors.ResultError):
        refused_run()
    assert refused_run.resume_hint() == 'no snapshot was written yet'


def test_a_diverging_run_stops_with_one_line_and_no_model(
        data, tmp_path, train_here):
    out = str(tmp_path / 'out')
    line = refused(train_here, '--dataset-dir', data, '--out', out,
                   '--lr', '1e30', '--epoch', 2, '--preset', 'bnn',
                   '--validation', 100, *FAST)
    assert line.startswith('the training loss is ')
    assert line.endswith('training stopped. Try a smaller --lr.')
    assert result_dir.MODEL_FILE not in os.listdir(out)


def test_a_snapshot_records_its_run(data, seed_run, tmp_path, train_here):
    path = os.path.join(seed_run, 'snapshot_iter_24')
    record = run_record.read(path)
    assert record.config == result_dir.read_args(seed_run)['config']
    assert record.seed == 7
    assert record.data == run_record.fingerprint(*mnist.load_splits(data))
    # Resumed elsewhere, the run keeps its id, and prunes its own
    # snapshots there.
    out = str(tmp_path / 'resumed')
    train_here('--dataset-dir', data, '--out', out, '--epoch', 4,
               '--resume', path, *FAST)
    assert [name for _, name in result_dir.snapshots(out)] == [
        'snapshot_iter_48']
    resumed = run_record.read(os.path.join(out, 'snapshot_iter_48'))
    assert resumed.run_id == record.run_id
    assert (resumed.seed, resumed.data, resumed.config['epoch']) == (
        7, record.data, 4)
    # A new run has an id of its own.
    new = str(tmp_path / 'new')
    train_here('--dataset-dir', data, '--out', new, '--epoch', 1, *FAST)
    assert run_record.read(os.path.join(new, 'snapshot_iter_12')
                           ).run_id != record.run_id


def test_model_npz_is_the_trained_model(seed_run):
    model = helpers.model_arrays(seed_run)
    with numpy.load(os.path.join(seed_run, 'snapshot_iter_24')) as snapshot:
        for name, array in model.items():
            numpy.testing.assert_array_equal(
                array, snapshot['updater/model:main/' + name], name)


def test_each_evaluation_reads_statistics_recomputed_over_training_batches(
        data, tmp_path, capsys, train_here):
    out = str(tmp_path / 'recomputed')
    train_here('--dataset-dir', data, '--preset', 'bnn', '--unit', 32,
               '--layers', 1, '--epoch', 1, '--validation', 100,
               '--bn-batches', 3, '--seed', 2, '--noplot', '--out', out)
    assert ('# batch normalisation: evaluated with the statistics of 3 '
            'training batches') in capsys.readouterr().out
    model, config = saved_model.load_model(out)
    train, val, _ = datasets.load_splits(config, data)
    # The model saved holds the statistics of its weights over the
    # first three batches (of the preset's 100) of the training set...
    saved = [(link.avg_mean.copy(), link.avg_var.copy())
             for link in population_statistics.normalised_links(model)]
    population_statistics.recompute(model, train, 100, 3,
                                    chainer.get_device('@numpy'))
    for (mean, var), link in zip(
            saved, population_statistics.normalised_links(model)):
        numpy.testing.assert_array_equal(mean, link.avg_mean)
        numpy.testing.assert_array_equal(var, link.avg_var)
    # ...and they are what the evaluator read.
    assert result_dir.read_log(out)[-1]['validation/main/accuracy'] == \
        pytest.approx(evaluation.accuracy(model, val, 50, chainer.get_device(
            '@numpy')), abs=1e-6)
