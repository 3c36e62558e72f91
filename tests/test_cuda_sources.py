"""The project's CUDA sources compile, with no GPU: NVRTC from the package
index (the nvidia-cuda-nvrtc-cu12 wheel, through ctypes) builds each for
compute_75, 80 and 90 with CuPy's flush-to-zero option, as CuPy would on
a GPU. The raw kernels of xnor_popcount.py are compiled as they are; the
body of quantizer_kernels.py's elementwise kernel inside a loop of the
shape CuPy wraps around it (CuPy's own generated code needs CuPy)."""
import ctypes
import os

import pytest

import quantizer_kernels
import xnor_popcount

ARCHS = (75, 80, 90)
# What CuPy passes NVRTC besides the architecture (cupy/cuda/compiler.py):
# flush-to-zero on, so that the kernels are checked as CuPy builds them.
OPTIONS = (b'-ftz=true', b'--std=c++11')


def nvrtc_library():
    package = pytest.importorskip(
        'nvidia.cuda_nvrtc',
        reason='the nvidia-cuda-nvrtc-cu12 wheel is not installed here')
    path = os.path.join(list(package.__path__)[0], 'lib', 'libnvrtc.so.12')
    if not os.path.exists(path):
        pytest.skip('no libnvrtc.so.12 in {}'.format(path))
    return ctypes.CDLL(path)


def compile_cuda(source, arch):
    """``(status, log, ptx)`` of NVRTC compiling ``source`` for
    ``compute_<arch>``."""
    lib = nvrtc_library()
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(),
                                  b'quantized_net.cu', 0, None, None) == 0
    options = (b'-arch=compute_%d' % arch,) + OPTIONS
    status = lib.nvrtcCompileProgram(
        program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    ptx = b''
    if status == 0:
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, buffer)
        ptx = buffer.value
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode(), ptx.decode()


ELEMENTWISE = r'''
extern "C" __global__ void quantized_net_log_quant(
        const float* _x, float fsr, float lowest, float scale, float* _y,
        long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
         i < n; i += (long long)blockDim.x * gridDim.x) {
        const float x = _x[i];
        float &y = _y[i];
        %s
    }
}
'''


@pytest.mark.parametrize('arch', ARCHS)
def test_raw_kernels_compile_without_local_memory(arch):
    status, log, ptx = compile_cuda(xnor_popcount._GPU_SOURCE, arch)
    assert status == 0, log
    for name in ('xnor_dot', 'fire_bits', 'bit_planes', 'plane_dot'):
        assert '.entry {}('.format(name) in ptx
    # Registers and shared memory only: a local array would be a spill
    # to memory in every thread.
    assert '.local' not in ptx


@pytest.mark.parametrize('arch', ARCHS)
def test_elementwise_kernel_body_compiles(arch):
    status, log, ptx = compile_cuda(
        ELEMENTWISE % quantizer_kernels._LOG_QUANT_CUDA, arch)
    assert status == 0, log
    assert '.entry quantized_net_log_quant(' in ptx


def test_a_broken_source_is_reported():
    status, log, _ = compile_cuda('extern "C" __global__ void k() { x; }',
                                  ARCHS[0])
    assert status != 0
    assert 'identifier "x" is undefined' in log
