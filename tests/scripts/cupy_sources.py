"""Prints, as JSON, ``{name: [source, options]}``: the CUDA source and
NVRTC options CuPy builds for each kernel of ``cuda_forms.KERNELS``,
called as the quantizers call them. Needs CuPy, not a GPU. Run by
tests/unit/quantization/test_cuda_forms.py in a process of its own, as it
replaces CuPy's compile step to capture its input."""
import json
import sys
import warnings

import numpy


with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # NCCL and cuTENSOR are not needed
    import cupy
    from cupy._core import _carray, _kernel, _scalar, core
    import cupy.cuda.compiler

from quantized_net.quantization import cuda_forms  # noqa: E402

# Array inputs; the other inputs are passed as NumPy scalars.
ARRAY_INPUTS = ('x', 'u', 'y', 'gy')


class _Captured(Exception):
    pass


def _capture(source, options=(), *args, **kwargs):
    raise _Captured(source, list(options))


def _argument_kinds():
    """CuPy's internal codes for an array, an indexer and a scalar
    argument, found from the code it generates for each."""
    probe = cupy.ElementwiseKernel('float32 x, uint32 a', 'float32 y',
                                   'y = x;', 'probe')
    _, _, type_map = probe._decide_params_type(
        (numpy.dtype('float32'), None), ())
    for kinds in ((1, 2, 3), (0, 1, 2), (0, 2, 1)):
        try:
            code = _kernel._get_elementwise_kernel_code(
                _infos(probe, kinds), type_map, probe.params,
                probe.operation, probe.name, probe.preamble)
        except (AssertionError, TypeError):
            continue
        if 'CArray<float' in code and 'const unsigned int a' in code and \
                'CIndexer<1' in code:
            return kinds
    raise RuntimeError('CuPy {} generates arguments in an unknown way'
                       .format(cupy.__version__))


def _infos(kernel, kinds):
    array, indexer, scalar = kinds
    infos = []
    for p in kernel.in_params + kernel.out_params:
        if p.name in ARRAY_INPUTS or p in kernel.out_params:
            infos.append(_kernel._ArgInfo(array, cupy.ndarray, p.dtype, 1,
                                          True, True))
        else:
            infos.append(_kernel._ArgInfo(scalar, _scalar.CScalar, p.dtype,
                                          0, True, True))
    infos.append(_kernel._ArgInfo(indexer, _carray.Indexer, None, 1, True,
                                  True))
    return tuple(infos)


def main():
    cupy.cuda.compiler._compile_module_with_cache = _capture
    kinds = _argument_kinds()
    sources = {}
    for name, (in_params, out_params, body) in cuda_forms.KERNELS.items():
        kernel = cupy.ElementwiseKernel(in_params, out_params, body,
                                        'quantized_net_' + name)
        in_types = tuple(p.dtype if p.name in ARRAY_INPUTS else None
                         for p in kernel.in_params)
        _, _, type_map = kernel._decide_params_type(in_types, ())
        code = _kernel._get_elementwise_kernel_code(
            _infos(kernel, kinds), type_map, kernel.params,
            kernel.operation, kernel.name, kernel.preamble)
        try:
            core.compile_with_cache(code)
        except _Captured as captured:
            sources[name] = captured.args
    json.dump(sources, sys.stdout)


if __name__ == '__main__':
    main()
