"""The data sets a configuration trains on, by name (its ``dataset`` key):
what an image is, and the ``(train, validation, test)`` splits a run
reads.

Each is a module of this package with ``load_splits(dataset_dir,
validation)``: :mod:`mnist`, :mod:`cifar10`, :mod:`svhn`.
"""
import math

from quantized_net.training import cifar10
from quantized_net.training import mnist
from quantized_net.training import svhn

#: name -> (module, image shape as the networks see it: channels,
#: height, width)
DATASETS = {
    'mnist': (mnist, (1, mnist.IMAGE_SIDE, mnist.IMAGE_SIDE)),
    'cifar10': (cifar10, cifar10.IMAGE_SHAPE),
    'svhn': (svhn, svhn.IMAGE_SHAPE),
}
#: The variable naming a directory of each data set's files at hand.
ENVIRONMENT = {'mnist': 'MNIST_DIR', 'cifar10': cifar10.ENVIRONMENT,
               'svhn': svhn.ENVIRONMENT}
#: How the commands name each data set.
TITLES = {'mnist': 'MNIST', 'cifar10': 'CIFAR-10', 'svhn': 'SVHN'}
#: What a configuration that names no data set trains on.
DEFAULT = 'mnist'
#: Classes of every data set here.
N_CLASSES = 10


def name(config):
    """The data set ``config`` trains on."""
    return config.get('dataset', DEFAULT)


def image_shape(config):
    """``(channels, height, width)`` of an image of ``config``'s data
    set."""
    return DATASETS[name(config)][1]


def input_size(config):
    """The values of an image of ``config``'s data set, as an MLP takes
    it."""
    return math.prod(image_shape(config))


def load_splits(config, dataset_dir=None):
    """``(train, validation or None, test)`` of ``config``'s data set,
    holding out the validation images the configuration asks for.

    Raises:
        errors.DatasetError: As the data set's module says.
    """
    return DATASETS[name(config)][0].load_splits(dataset_dir,
                                                 config['validation'])


def test_pixels(dataset, dataset_dir=None):
    """The test set of ``dataset`` as 8-bit pixels: ``(images, labels)``,
    uint8 ``(N, channels * height * width)`` in the networks' order
    (channel, row, column) and ``(N,)``.

    Raises:
        errors.DatasetError: As the data set's reader says.
    """
    if dataset == 'mnist':
        return mnist.read_mnist(dataset_dir)[1]
    if dataset == 'cifar10':
        images, labels = cifar10.read_cifar10(dataset_dir)[1]
    else:
        images, labels = svhn.read_svhn(dataset_dir)['test']
    return images.reshape(len(images), -1), labels
