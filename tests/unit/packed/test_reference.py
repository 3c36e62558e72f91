"""reference.py: the Chainer model sees the pixels as it was trained on
them (training.mnist.as_dataset), a batch at a time or all at once."""
import chainer
import numpy

import helpers
from quantized_net.packed import reference
from quantized_net.training import mnist


def test_chainer_labels_are_the_models_on_its_training_input():
    model, _ = helpers.binarized_model(units=32, layers=1, seed=2)
    images, labels = helpers.synthetic_digits(50, seed=4)
    pixels = images.reshape(50, -1)
    x, _ = chainer.dataset.concat_examples(
        mnist.as_dataset(pixels, labels)[:])
    with chainer.using_config('train', False):
        expected = model.predictor(x).array.argmax(axis=1)
    assert len(set(expected.tolist())) > 1
    numpy.testing.assert_array_equal(
        reference.chainer_classify(model.predictor, pixels), expected)
    numpy.testing.assert_array_equal(
        reference.chainer_labels(model, pixels, 7), expected)
