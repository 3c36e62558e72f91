import pytest

from quantized_net.training import datasets
from quantized_net.training import presets


def test_a_configuration_without_a_data_set_trains_on_mnist():
    config = dict(presets.PRESETS['seed'], preset='seed')
    assert datasets.name(config) == 'mnist'
    assert datasets.image_shape(config) == (1, 28, 28)
    assert datasets.input_size(config) == 784 == presets.N_IN


def test_the_splits_are_the_data_sets_own(synthetic_dir):
    config = dict(presets.PRESETS['bnn'], preset='bnn', validation=100)
    train, validation, test = datasets.load_splits(config, synthetic_dir)
    assert (len(train), len(validation), len(test)) == (500, 100, 200)
    assert train[0][0].shape == (784,)


def test_an_unknown_data_set_is_refused_by_the_configuration_check():
    with pytest.raises(ValueError) as e:
        presets.check_config(dict(presets.PRESETS['seed'], preset='seed',
                                  dataset='imagenet'))
    assert str(e.value) == "dataset is 'imagenet'; it must be one of cifar10, mnist, svhn"
