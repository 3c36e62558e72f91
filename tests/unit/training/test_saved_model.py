"""saved_model.py: a trained model saved whole and read back with its
configuration, every fault one line."""
import errno
import json
import os
import pickle
import zipfile

import numpy
import pytest

import chainer

import helpers
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import saved_model
from quantized_net import errors


def small_config(**changes):
    return dict(presets.PRESETS['seed'], **dict(
        dict(preset='seed', unit=16), **changes))


def refused(result, name=result_dir.MODEL_FILE):
    with pytest.raises(errors.ResultError) as e:
        saved_model.load_model(result, name)
    assert '\n' not in str(e.value)
    return str(e.value)


def test_round_trip(tmp_path):
    out = str(tmp_path)
    config = small_config(weight_quant='linear:2')
    model = presets.build_classifier(config)
    result_dir.write_args(out, config, 3, ['--unit', '16'])
    saved_model.save_model(model, out)
    assert sorted(os.listdir(out)) == ['args.json', 'model.npz']
    loaded, loaded_config = saved_model.load_model(out)
    assert loaded_config == config
    assert loaded.predictor.l1.weight_quant.spec == 'linear:2'
    for (name, p), (_, q) in zip(sorted(model.namedparams()),
                                 sorted(loaded.namedparams())):
        numpy.testing.assert_array_equal(p.array, q.array, name)


def test_missing_files(tmp_path):
    assert refused(str(tmp_path / 'none')).endswith(
        'none is not a directory (it does not exist); give the --out '
        'directory of a finished train_mnist.py run.')
    assert 'args.json does not exist; give the --out' in refused(
        str(tmp_path))
    (tmp_path / 'args.json').write_text(json.dumps(
        {'config': small_config()}))
    assert 'model.npz does not exist; give the --out directory of a ' \
        'finished' in refused(str(tmp_path))
    assert 'model_best.npz does not exist; give the --out directory of a ' \
        'validated (--validation N) train_mnist.py run.' in refused(
            str(tmp_path), result_dir.BEST_MODEL_FILE)


@pytest.mark.parametrize('text', [
    'not json', '{"seed": 1}', '{"config": {"preset": "x"}}', '{"config": {',
    json.dumps({'config': small_config(weight_quant='ternary')}),
    json.dumps({'config': small_config(unit=10 ** 9)})])
def test_bad_configuration(tmp_path, text):
    (tmp_path / 'args.json').write_text(text)
    (tmp_path / 'model.npz').write_bytes(b'')
    assert 'args.json is not a configuration written by train_mnist.py' in \
        refused(str(tmp_path))


def test_a_configuration_out_of_range_is_named(tmp_path):
    (tmp_path / 'args.json').write_text(json.dumps(
        {'config': small_config(unit=10 ** 9)}))
    (tmp_path / 'model.npz').write_bytes(b'')
    assert 'unit is 1000000000; it must be an integer from 1 to 8192' in \
        refused(str(tmp_path))


def test_model_of_another_shape(tmp_path):
    out = str(tmp_path)
    helpers.write_result(out, presets.build_classifier(small_config()),
                         small_config(unit=17))
    assert 'model.npz does not hold the model that' in refused(out)


def test_damaged_or_pickled_model(tmp_path):
    out = str(tmp_path)
    helpers.write_result(out, presets.build_classifier(small_config()),
                         small_config())
    path = os.path.join(out, 'model.npz')
    with open(path, 'rb') as f:
        content = f.read()
    with open(path, 'wb') as f:
        f.write(content[:len(content) // 2])
    assert 'model.npz is not an archive of arrays (empty, damaged, or not ' \
        'an .npz file)' in refused(out)
    with open(path, 'wb') as f:
        pickle.dump({'W': numpy.zeros(3)}, f)
    assert 'model.npz is not an archive of arrays (it holds pickled data' in \
        refused(out)


def test_save_model_is_whole_or_nothing(tmp_path, monkeypatch):
    out = str(tmp_path)
    model = presets.build_classifier(small_config())

    def fail(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(chainer.serializers, 'save_npz', fail)
    with pytest.raises(errors.ResultError) as e:
        saved_model.save_model(model, out)
    assert str(e.value) == 'cannot write {}: No space left on device.' \
        .format(os.path.join(out, 'model.npz'))
    assert os.listdir(out) == []


def test_a_configuration_too_large_is_refused_before_a_model_is_built(
        tmp_path, monkeypatch):
    out = str(tmp_path)
    with open(os.path.join(out, 'args.json'), 'w') as f:
        json.dump({'config': small_config(unit=8192, layers=32)}, f)
    with open(os.path.join(out, 'model.npz'), 'wb') as f:
        f.write(b'never read')
    built = []
    monkeypatch.setattr(presets, 'build_classifier', built.append)
    assert refused(out) == (
        '{} is not a configuration written by train_mnist.py (a network of '
        '32 x 8192 units has 2087665694 parameters, more than 268435456 '
        '(what 1 GiB of float32 holds); give fewer --unit or --layers, or a '
        'smaller --width).'
        .format(os.path.join(out, 'args.json')))
    assert built == []


def write_arrays(path, arrays):
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)


def test_the_model_files_shapes_are_checked_before_it_is_built(
        tmp_path, monkeypatch):
    out = str(tmp_path)
    result_dir.write_args(out, small_config(), 0, [])
    larger = presets.build_classifier(small_config(unit=32))
    saved_model.save_model(larger, out)
    built = []
    monkeypatch.setattr(presets, 'build_classifier', built.append)
    assert refused(out) == (
        '{} does not hold the model that {} describes (predictor/b1/avg_mean '
        'is (32,), not (16,)).'.format(os.path.join(out, 'model.npz'),
                                    os.path.join(out, 'args.json')))
    # An array the model does not have, declared huge, is never read.
    header = numpy.lib.format.header_data_from_array_1_0(
        numpy.zeros(1, numpy.float32))
    header['shape'] = (2 ** 20, 2 ** 20)
    with open(os.path.join(out, 'model.npz'), 'wb') as f:
        with zipfile.ZipFile(f, 'w') as archive:
            with archive.open('predictor/l1/W.npy', 'w',
                              force_zip64=True) as member:
                numpy.lib.format.write_array_header_1_0(member, header)
    assert refused(out).endswith(
        '(predictor/l1/W is (1048576, 1048576), not (16, 784)).')
    write_arrays(os.path.join(out, 'model.npz'), {'extra': numpy.zeros(3)})
    assert refused(out).endswith(
        '(extra is (3,), not one of its arrays).')
    assert built == []


@pytest.mark.parametrize('make,message', [
    (os.mkfifo, '{} is a FIFO, not a regular file; give a file.'),
    (os.mkdir, '{} is a directory, not a regular file; give a file.'),
    (lambda path: os.symlink(path + '.gone', path), '{} does not exist.')])
def test_a_model_of_another_kind_is_refused_before_it_is_opened(
        tmp_path, make, message):
    out = str(tmp_path)
    result_dir.write_args(out, small_config(), 0, [])
    path = os.path.join(out, 'model.npz')
    make(path)
    assert refused(out) == message.format(path)


def test_a_damaged_model_is_one_line(tmp_path):
    out = str(tmp_path)
    result_dir.write_args(out, small_config(), 0, [])
    with open(os.path.join(out, 'model.npz'), 'wb') as f:
        f.write(b'PK\x03\x04 damaged')
    assert refused(out) == (
        '{} is not an archive of arrays (empty, damaged, or not an .npz '
        'file); it was not loaded.'.format(os.path.join(out, 'model.npz')))
