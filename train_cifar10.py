#!/usr/bin/env python3
"""Trains the paper's binarized ConvNet on CIFAR-10 (Hubara et al. 2016,
the authors' cifar10.py), with train_mnist.py's flags.

    ./train_cifar10.py                    # the paper's ConvNet, 500 epochs
    ./train_cifar10.py --gpu=0
    ./train_cifar10.py --width 0.25 --epoch 1 --out quick
    ./train_cifar10.py --dataset-dir path/to/cifar-10-batches-bin
The data set is read as docs/datasets.md says; the network and its
training are docs/convnets.md's.
"""
import quantized_net  # first: a signal from here on ends in one line

try:
    import matplotlib
    matplotlib.use('Agg')  # plots are written to files; no display needed
except ImportError:  # PlotReport.available() is then False: no plots
    pass

from quantized_net.training import session

PROG = 'train_cifar10.py'


def main(argv=None):
    session.train_command(
        PROG, 'Binarized ConvNet (Hubara et al. 2016) on CIFAR-10', argv,
        dataset='cifar10', preset='cifar10')


if __name__ == '__main__':
    main()
