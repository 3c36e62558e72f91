"""The packed part: a trained binarized MLP or ConvNet as 1-bit weights and
integer thresholds, and the engines that run it, the same labels on every
device.

* :mod:`~quantized_net.packed.format`: the packed file and its bit layout;
* :mod:`~quantized_net.packed.export`: folding a trained model into one;
* :mod:`~quantized_net.packed.engine`: the engines, one a backend (float32
  BLAS, the CPU's kernels of each form, the GPU's), and :func:`select`,
  which picks the one that runs where it is asked to;
* :mod:`~quantized_net.packed.reference`: the trained Chainer model on the
  same pixels, to compare against;
* :mod:`~quantized_net.packed.kernels`: the kernels the engines run.
"""
