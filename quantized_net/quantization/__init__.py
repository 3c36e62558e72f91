"""The quantization part: a spec becomes the same bits on every device.

* :mod:`~quantized_net.quantization.quantizers`: the named quantizers and
  the spec parser;
* :mod:`~quantized_net.quantization.kernels`: the array functions behind
  them, each picking its form by device, and the CPU-kernel switch;
* :mod:`~quantized_net.quantization.float32_layout`: the float32 bit layout
  every form decides on;
* :mod:`~quantized_net.quantization.numpy_forms`,
  :mod:`~quantized_net.quantization.numba_forms`,
  :mod:`~quantized_net.quantization.cuda_forms`: the forms of each kind.

It imports nothing of the model, the trainer or the packed engine.
"""
