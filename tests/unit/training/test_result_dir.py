"""result_dir.py: writing a run's files, reading a trained model back."""
import json
import os

import numpy
import pytest

import chainer

import helpers
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net import errors


def small_config(**changes):
    return dict(presets.PRESETS['seed'], **dict(
        dict(preset='seed', unit=16), **changes))


def test_round_trip(tmp_path):
    out = str(tmp_path)
    config = small_config(weight_quant='linear:2')
    model = presets.build_classifier(config)
    result_dir.write_args(out, config, 3, ['--unit', '16'])
    result_dir.save_model(model, out)
    assert sorted(os.listdir(out)) == ['args.json', 'model.npz']
    with open(os.path.join(out, 'args.json')) as f:
        assert json.load(f) == {'config': config, 'seed': 3,
                                'argv': ['--unit', '16']}
    loaded, loaded_config = result_dir.load_model(out)
    assert loaded_config == config
    assert loaded.predictor.l1.weight_quant.spec == 'linear:2'
    for (name, p), (_, q) in zip(sorted(model.namedparams()),
                                 sorted(loaded.namedparams())):
        numpy.testing.assert_array_equal(p.array, q.array, name)


def test_missing_files(tmp_path):
    with pytest.raises(errors.ResultError,
                       match='args.json does not exist; give the --out'):
        result_dir.load_model(str(tmp_path))
    (tmp_path / 'args.json').write_text(json.dumps(
        {'config': small_config()}))
    with pytest.raises(errors.ResultError,
                       match='model.npz does not exist'):
        result_dir.load_model(str(tmp_path))


@pytest.mark.parametrize('text', [
    'not json', '{"seed": 1}', '{"config": {"preset": "x"}}',
    json.dumps({'config': small_config(weight_quant='ternary')})])
def test_bad_configuration(tmp_path, text):
    (tmp_path / 'args.json').write_text(text)
    (tmp_path / 'model.npz').write_bytes(b'')
    with pytest.raises(errors.ResultError,
                       match='is not a configuration written by '
                             'train_mnist.py'):
        result_dir.load_model(str(tmp_path))


def test_model_of_another_shape(tmp_path):
    out = str(tmp_path)
    helpers.write_result(out, presets.build_classifier(small_config()),
                         small_config(unit=17))
    with pytest.raises(errors.ResultError) as e:
        result_dir.load_model(out)
    assert 'model.npz does not hold the model that' in str(e.value)
    assert '\n' not in str(e.value)


def test_save_model_is_whole_or_nothing(tmp_path, monkeypatch):
    out = str(tmp_path)
    model = presets.build_classifier(small_config())

    def fail(*args):
        raise OSError('disk full')
    monkeypatch.setattr(chainer.serializers, 'save_npz', fail)
    with pytest.raises(OSError):
        result_dir.save_model(model, out)
    assert os.listdir(out) == []
