"""The kernels of the packed engines, by what they compute.

* :mod:`~quantized_net.packed.kernels.cpu_features`: the forms of the CPU
  kernels (avx512, avx2, and the portable scalar one) and which this CPU
  runs;
* :mod:`~quantized_net.packed.kernels.blocking`: how the CPU kernels cut
  their work: tiles, tasks, chunks;
* :mod:`~quantized_net.packed.kernels.layouts`: each form's layout of the
  packed rows, the first layer's pixel pairs and masks, and a ConvNet's
  rows with each position's channels together;
* :mod:`~quantized_net.packed.kernels.borders`: a zero-padded
  convolution's border, for kernels that count on bits;
* :mod:`~quantized_net.packed.kernels.llvm_ir`: the LLVM IR the CPU
  kernels' intrinsics share;
* :mod:`~quantized_net.packed.kernels.tiles`: the popcount tiles, every
  form's from one code generator;
* :mod:`~quantized_net.packed.kernels.thresholds`: counts to output bits,
  64 units at a time, in the next layer's layout;
* :mod:`~quantized_net.packed.kernels.first_layer`: the first layer, by
  pixel pairs;
* :mod:`~quantized_net.packed.kernels.hidden_layers`: the hidden layers and
  the last layer's dot products;
* :mod:`~quantized_net.packed.kernels.network`: the whole network in one
  compiled call;
* :mod:`~quantized_net.packed.kernels.convolutions`: a ConvNet's
  convolutions and pooling;
* :mod:`~quantized_net.packed.kernels.gpu`: the GPU's layers, CuPy raw
  kernels.

The CPU kernels need numba (:data:`cpu_features.HAVE_NUMBA`); the modules
that define them import it, and the engines import them only where it is.
"""
