"""quantized_net: Quantized Neural Networks (Hubara et al. 2016) with
Chainer.

Importing the package first lets Chainer 7.8.1 import under NumPy 2 and
Python 3.12 (:mod:`quantized_net.compat`), so that every module and command
imports ``quantized_net`` before ``chainer``. The parts:

* :mod:`quantized_net.quantization`: the quantizers and their kernels;
* :mod:`quantized_net.training`: configurations, the trainer, result
  directories, data sets, multi-process training;
* :mod:`quantized_net.packed`: binarized networks packed into bits, and
  the engines that run them.

``docs/architecture.md`` describes the tree.
"""
# A signal while Chainer imports ends a command with one line, too.
from quantized_net import signals
signals.install_early()
if signals.running_a_command():
    from quantized_net import streams
    streams.make_usable()
from quantized_net import compat  # noqa: E402,F401 (before any chainer import)
