"""cuda_forms.py: the CUDA sources compile, with no GPU, and compute what
the CPU forms compute.

NVRTC from the package index (the nvidia-cuda-nvrtc wheels for CUDA 12
and 13, through ctypes) builds each source for compute_75, 80 and 90 with
CuPy's options, flush-to-zero included: each elementwise kernel of
cuda_forms.py both in a loop of CuPy's shape and as the exact source CuPy
generates for it (CuPy imports and generates code without a GPU), and the
packed engine's raw kernels (packed/kernels/gpu.py) as they are. The
elementwise bodies are also compiled for the host with the C compiler and
run with flushing on against the CPU forms."""
import ctypes
import json
import os
import re
import subprocess
import sys
import warnings

import numpy
import pytest

import cuda_host
import helpers
from cuda_host import (
    ARCHS, NVRTC_LIBRARIES, compile_cuda, skip_without_wheels)
from helpers import f32, kernel_inputs, same_bits
from quantized_net.quantization import cuda_forms
from quantized_net.quantization import kernels
from quantized_net.packed.kernels import gpu


C_TYPES = {'float32': 'float', 'uint32': 'unsigned int', 'int32': 'int',
           'bool': 'bool'}
NUMPY_TYPES = {'float32': numpy.float32, 'uint32': numpy.uint32,
               'int32': numpy.int32, 'bool': numpy.bool_}


def parameters(text):
    """``[(type, name)]`` of a CuPy parameter list ``'float32 x, ...'``."""
    return [tuple(p.split()) for p in text.split(',')]


def elementwise_source(name, kernel, device=True):
    """An elementwise kernel of :data:`cuda_forms.KERNELS` laid
    out as CuPy does: each input read into a const local, the output a
    reference, one element per step of a grid-stride loop. With
    ``device=False``, the same body in a host C loop run with the CPU's
    flush-to-zero and denormals-are-zero modes on: what ``-ftz=true`` does
    to float operations on the GPU."""
    in_params, out_params, body = kernel
    inputs, outputs = parameters(in_params), parameters(out_params)
    pointers = ', '.join(
        ['const {} *_{}'.format(C_TYPES[t], n) for t, n in inputs] +
        ['{} *_{}'.format(C_TYPES[t], n) for t, n in outputs])
    reads = ''.join('const {} {n} = _{n}[i];\n'.format(C_TYPES[t], n=n)
                    for t, n in inputs)
    if device:
        writes = ''.join('{} &{n} = _{n}[i];\n'.format(C_TYPES[t], n=n)
                         for t, n in outputs)
        return '''extern "C" __global__ void quantized_net_%s(
        %s, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
         i < n; i += (long long)blockDim.x * gridDim.x) {
%s%s%s
    }
}
''' % (name, pointers, reads, writes, body)
    locals_ = ''.join('{} {};\n'.format(C_TYPES[t], n) for t, n in outputs)
    stores = ''.join('_{n}[i] = {n};\n'.format(n=n) for t, n in outputs)
    return cuda_host.PRELUDE + '''
void run(long n, %s) {
    const unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040);  /* flush to zero, denormals are zero */
    for (long i = 0; i < n; ++i) {
%s%s%s%s
    }
    _mm_setcsr(saved);
}
''' % (pointers, reads, locals_, body, stores)


class HostKernel(object):
    """An elementwise CUDA body compiled for this CPU with the C compiler,
    run with flushing on. Call with the inputs (arrays or scalars, which
    are broadcast); returns the output array."""

    def __init__(self, kernel, directory):
        in_params, out_params, _ = kernel
        self.inputs = parameters(in_params)
        self.output_type, = [t for t, _ in parameters(out_params)]
        self.run = cuda_host.compile_library(
            elementwise_source('host', kernel, device=False), directory).run

    def __call__(self, *args):
        n = numpy.size(args[0])
        arrays = [numpy.ascontiguousarray(numpy.broadcast_to(
            numpy.asarray(a, NUMPY_TYPES[t]), n)) for a, (t, _) in zip(
                args, self.inputs)]
        out = numpy.empty(n, NUMPY_TYPES[self.output_type])
        self.run(ctypes.c_long(n), *[
            a.ctypes.data_as(ctypes.c_void_p) for a in arrays + [out]])
        return out


@pytest.fixture(scope='module')
def host_kernels(tmp_path_factory):
    """``host_kernels(name)``: the host form of a kernel, compiled once."""
    built = {}

    def build(name, kernel=None):
        if name not in built:
            built[name] = HostKernel(
                kernel or cuda_forms.KERNELS[name],
                str(tmp_path_factory.mktemp(name)))
        return built[name]
    return build


@pytest.mark.parametrize('version', sorted(NVRTC_LIBRARIES))
@pytest.mark.parametrize('arch', ARCHS)
def test_raw_kernels_compile_without_local_memory(arch, version):
    status, log, ptx = compile_cuda(gpu.SOURCE, arch, version)
    assert status == 0, log
    for name in ('xnor_dot', 'fire_bits', 'bit_planes', 'plane_dot'):
        assert '.entry {}('.format(name) in ptx
    # Registers and shared memory only: a local array would be a spill
    # to memory in every thread.
    assert '.local' not in ptx


@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('name', sorted(cuda_forms.KERNELS))
def test_elementwise_kernels_compile(name, arch):
    status, log, ptx = compile_cuda(elementwise_source(
        name, cuda_forms.KERNELS[name]), arch)
    assert status == 0, log
    assert '.entry quantized_net_{}('.format(name) in ptx
    assert '.local' not in ptx
    if name in INTEGER_ONLY:
        assert float_operations(ptx, 'quantized_net_' + name) == set()


# Any float32 arithmetic, comparison or conversion: what -ftz=true flushes.
FLOAT_OPERATION = re.compile(
    r'^\s*(add|sub|mul|div|fma|mad|min|max|abs|neg|setp|set|cvt|rcp|sqrt|'
    r'rsqrt|ex2|lg2|sin|cos|tanh|testp)\.[\w.]*f32|^\s*(\w+)[\w.]*\.ftz\.',
    re.MULTILINE)
INTEGER_ONLY = ('log_quant', 'sign', 'straight_through_gradient')


def float_operations(ptx, entry):
    """The float instructions in the body of kernel ``entry``."""
    body = ptx[ptx.index('.entry {}('.format(entry)):]
    return {a or b for a, b in FLOAT_OPERATION.findall(body)}


def test_the_float_operation_check_finds_the_old_log_kernel():
    # The log quantizer's earlier GPU form rescaled subnormals by 2**24
    # in float: this is the instruction that flushed them.
    kernel = ('float32 x', 'float32 y', 'y = x * 16777216.0f;')
    status, log, ptx = compile_cuda(elementwise_source('old', kernel),
                                    ARCHS[-1])
    assert status == 0, log
    assert float_operations(ptx, 'quantized_net_old') == {'mul'}
    assert 'mul.ftz.f32' in ptx


def test_a_broken_source_is_reported():
    status, log, _ = compile_cuda('extern "C" __global__ void k() { x; }',
                                  ARCHS[0])
    assert status != 0
    assert 'identifier "x" is undefined' in log


# What CuPy itself generates. Its code generator is internal: this goes
# through cupy._core._kernel as ElementwiseKernel.__call__ does, with the
# argument kinds the quantizers pass (x and u arrays, the rest scalars).


@pytest.fixture(scope='module')
def cupy_sources(tmp_path_factory):
    """``{name: (source, options)}`` as CuPy would hand them to NVRTC."""
    skip_without_wheels('CuPy')
    # Headers: CuPy's own only; an empty CUDA root keeps it from looking
    # for a CUDA installation.
    cuda_root = tmp_path_factory.mktemp('cuda')
    (cuda_root / 'include').mkdir()
    script = os.path.join(helpers.SCRIPTS, 'cupy_sources.py')
    result = subprocess.run(
        [sys.executable, script], capture_output=True, text=True,
        env=dict(helpers.SCRIPT_ENV, CUDA_PATH=str(cuda_root)))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_cupy_generates_every_kernel(cupy_sources):
    assert sorted(cupy_sources) == sorted(cuda_forms.KERNELS)
    source, options = cupy_sources['log_quant']
    # The body as written, inside CuPy's loop with its parameter types.
    assert cuda_forms.KERNELS['log_quant'][2] in source
    assert 'CUPY_FOR(i, _ind.size())' in source
    assert 'const unsigned int fsr_bits' in source
    assert 'CArray<float, 1' in source


@pytest.mark.parametrize('version', sorted(NVRTC_LIBRARIES))
@pytest.mark.parametrize('arch', ARCHS)
@pytest.mark.parametrize('name', sorted(cuda_forms.KERNELS))
def test_cupy_generated_kernels_compile(cupy_sources, name, arch, version):
    source, options = cupy_sources[name]
    status, log, ptx = compile_cuda(source, arch, version,
                                    options + ['-ftz=true'])
    assert status == 0, log
    entry = 'quantized_net_' + name
    assert '.entry {}('.format(entry) in ptx
    if name in INTEGER_ONLY:
        assert float_operations(ptx, entry) == set()


# The GPU forms, run on the host with flushing on, against the CPU forms.

def test_the_host_emulation_flushes_as_the_gpu_does(host_kernels):
    flushing = host_kernels('flushing', ('float32 x', 'float32 y',
                                         'y = x * 3.0f;'))
    x = f32(numpy.array([1, 0x007FFFFF, 0x80000001, 0x00800000]))
    y = flushing(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 3 * 2.0 ** -126]
    assert numpy.signbit(y).tolist() == [False, False, True, False]


def scaled_inputs():
    """:func:`helpers.kernel_inputs` and the values whose power of two
    lands just above, on or below the normal range once scaled down."""
    powers = numpy.float32(2.0) ** numpy.arange(
        -149, 128, dtype=numpy.float32)
    near = numpy.concatenate([powers, powers * numpy.float32(1.4142135),
                              powers * numpy.float32(1.4142137)])
    return numpy.concatenate([kernel_inputs(), near, -near])


def fsr_with_mantissa(mantissa, exponent=0):
    return float(f32(numpy.uint32((127 + exponent) << 23 | mantissa)))


# fsr, lowest, scale. A clipped value with a mantissa exercises the
# rounding of the scale below the normal range: ties to even (0.3 at
# 2**-126), ties to odd, above and below the half, the carry into the
# smallest normal, and a result of 0 or of the smallest subnormal.
LOG_CASES = [
    (numpy.inf, 0.0, 1.0), (64.0, 0.0, 1.0), (1.0, 0.0, 1.0 / 64),
    (0.3, 0.0, 1.0), (0.3, 0.0, 2.0 ** -126), (0.3, 0.0, 2.0 ** -125),
    (1.0, 2.0 ** -2, 1.0), (4.0, 4.0 * 2.0 ** -126, 2.0 ** -100),
    (numpy.inf, 2.0 ** -140, 2.0 ** -24), (numpy.inf, 0.0, 2.0 ** -126)] + [
    # fsr = 1.m * 2**-100, biased exponent 27: a shift of 26 + d drops d
    # bits of its significand.
    (fsr_with_mantissa(mantissa, -100), 0.0, 2.0 ** -(26 + drop))
    for mantissa in (0x7FFFFF, 0x400001, 0x3FFFFF, 0x000001, 0x5FFFFF,
                     0x600000, 0x200000, 0x500000)
    for drop in (1, 2, 3, 10, 23, 24, 25, 26)]


@pytest.mark.parametrize('fsr,lowest,scale', LOG_CASES)
def test_log_quant_gpu_form_equals_the_cpu(host_kernels, fsr, lowest, scale):
    x = scaled_inputs()
    gpu = host_kernels('log_quant')(x, *cuda_forms.log_quant_arguments(
        fsr, lowest, scale))
    for name in kernels.usable_cpu_kernels():
        with kernels.using_cpu_kernels(name):
            same_bits(gpu, kernels.log_quant(x, fsr, lowest, scale))


def test_sign_gpu_form_equals_the_cpu(host_kernels):
    x = kernel_inputs()
    same_bits(host_kernels('sign')(x), kernels.sign(x))


@pytest.mark.parametrize('bits', [1, 2, 3, 5, 8, 16])
def test_linear_quant_gpu_form_equals_the_cpu(host_kernels, bits):
    x = scaled_inputs()
    m = numpy.float32(2 ** bits - 1)
    same_bits(host_kernels('linear_quant')(x, m),
              kernels.linear_quant(x, bits))


def test_stochastic_sign_gpu_form_equals_the_cpu(host_kernels):
    x = kernel_inputs()
    rng = numpy.random.RandomState(3)
    # Draws on the 2**-24 grid, and exactly the thresholds p of some x.
    u = rng.randint(0, 2 ** 24, x.size).astype(numpy.float32) / 2 ** 24
    u[::7] = numpy.clip((x[::7] + 1) * numpy.float32(0.5), 0, 1)
    u[3::7] = f32(rng.randint(0, 0x00800000, u[3::7].size))  # subnormal
    same_bits(host_kernels('stochastic_sign')(x, u),
              kernels.stochastic_sign_of(x, u))


def test_straight_through_gradient_gpu_form_equals_the_cpu(host_kernels):
    x = kernel_inputs()
    gy = numpy.roll(x, 7)  # every class of float32, passed or cancelled
    same_bits(host_kernels('straight_through_gradient')(x, gy),
              kernels.straight_through_gradient(gy, x))


# The rectified forms: the quantizer's kernel, then CuPy's maximum.

def test_the_rectifier_is_cupys_maximum():
    skip_without_wheels('CuPy')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # NCCL and cuTENSOR are not needed
        from cupy._math import misc
    statement = misc._float_maximum.replace('out0_type(', '(float)(')
    for name, ours in (('out0', 'y'), ('in0', 'y'), ('in1', '0.0f')):
        statement = statement.replace(name, ours)
    assert [line.strip() for line in
            cuda_forms.RECTIFIED.strip().splitlines()] == (
        misc._float_preamble.strip().splitlines() + [statement + ';'])


def rectified_cases():
    """``(name, scalar arguments after x, CPU quantizer)`` of each
    quantizer kernel."""
    rng = numpy.random.RandomState(4)
    u = rng.randint(0, 2 ** 24, kernel_inputs().size).astype(
        numpy.float32) / 2 ** 24
    return [
        ('log_quant', cuda_forms.log_quant_arguments(1.0, 0.0, 1.0 / 64),
         lambda x, r: kernels.log_quant(x, 1.0, scale=1.0 / 64,
                                        rectified=r)),
        ('log_quant', cuda_forms.log_quant_arguments(4.0, 2.0 ** -3, 1.0),
         lambda x, r: kernels.log_quant(x, 4.0, 2.0 ** -3, rectified=r)),
        ('sign', (), lambda x, r: kernels.sign(x, r)),
        ('linear_quant', (numpy.float32(3),),
         lambda x, r: kernels.linear_quant(x, 2, r)),
        ('stochastic_sign', (u,),
         lambda x, r: kernels.stochastic_sign_of(x, u, r))]


@pytest.mark.parametrize('case', range(len(rectified_cases())))
def test_a_rectified_kernel_is_its_quantizer_then_the_rectifier(
        host_kernels, case):
    name, arguments, cpu = rectified_cases()[case]
    x = kernel_inputs()
    quantized = host_kernels(name)(x, *arguments)
    rectified = host_kernels('rectified_' + name)(x, *arguments)
    rectifier = host_kernels('rectifier', (
        'float32 x', 'float32 y', 'y = x;' + cuda_forms.RECTIFIED))
    # Bit for bit the two launches it replaces (NaN aside: the host's
    # NAN is not CuPy's).
    same_bits(rectified, rectifier(quantized))
    # And the CPU's relu of the quantizer where no flushing and no NaN
    # enters.
    same_bits(quantized, cpu(x, False))
    normal = (numpy.abs(quantized) >= numpy.finfo(numpy.float32).tiny) | (
        quantized == 0)
    expected = cpu(x, True)
    same_bits(rectified[normal], expected[normal])
    assert (expected[normal] >= 0).all() and (
        numpy.signbit(expected[normal]) == False).all()  # noqa: E712


def test_rectified_straight_through_gradient_gpu_form_equals_the_cpu(
        host_kernels):
    x = kernel_inputs()
    gy = numpy.roll(x, 7)
    y = numpy.roll(x, 3)  # every sign, zero, subnormal and NaN as y
    gpu = host_kernels('rectified_straight_through_gradient')(x, y, gy)
    # Chainer's relu_bwd and the straight-through select: gy where both
    # pass (the comparison flushes a subnormal y), else +0.
    tiny = numpy.finfo(numpy.float32).tiny
    through = (numpy.abs(x) <= 1) & (y >= tiny)
    helpers.identical_bits(gpu, numpy.where(through, gy, numpy.float32(0)))
    # The CPU's, Chainer's gy * (y > 0) then the select, differs where
    # the rectifier cancels a gy of negative sign (-0), of NaN or of
    # infinity (NaN), and in a positive subnormal y: the same elsewhere.
    cpu = kernels.rectified_straight_through_gradient(gy, x, y)
    cancelled = (numpy.abs(x) <= 1) & ~through
    agree = ~cancelled | (numpy.isfinite(gy) & ~numpy.signbit(gy) &
                          ~((y > 0) & (y < tiny)))
    assert agree.mean() > 0.8
    helpers.identical_bits(gpu[agree], cpu[agree])
