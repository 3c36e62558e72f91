#!/usr/bin/env python3
"""Trains the paper's binarized ConvNet on SVHN (Hubara et al. 2016,
the authors' svhn.py), with train_mnist.py's flags.

    ./train_svhn.py                       # the paper's ConvNet, 200 epochs
    ./train_svhn.py --gpu=0
    ./train_svhn.py --width 0.25 --epoch 1 --out quick
    ./train_svhn.py --dataset-dir path/to/svhn   # train/test/extra_32x32.mat
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

PROG = 'train_svhn.py'


def main(argv=None):
    session.train_command(
        PROG, 'Binarized ConvNet (Hubara et al. 2016) on SVHN', argv,
        dataset='svhn', preset='svhn')


if __name__ == '__main__':
    main()
