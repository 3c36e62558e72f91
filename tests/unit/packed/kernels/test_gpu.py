"""gpu.py: the raw kernels against the float +-1 products (on a GPU, not
against the CPU kernels: those need numba, which a GPU machine may lack),
and the same kernels built for the host (cuda_host.py), where the GPU
engine runs whole networks against the CPU's engines."""
import types

import chainer
import numpy
import pytest

from chainer.backends import cuda

import cuda_host
import helpers
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import gpu
from helpers import random_pixels, random_signs, reference_fires

SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (4, 129, 200),
          (2, 64, 784), (0, 5, 10), (130, 200, 2048)]


def check_kernels(xp, m, n, k):
    """xnor_dot, sign_layer and first_layer on ``xp``'s arrays against
    the float +-1 and pixel products."""
    rng = numpy.random.RandomState(k + 3)
    xs, ws = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    x, w = (xp.asarray(packed_format.pack_signs(a)) for a in (xs, ws))
    pixels = random_pixels(rng, m, k)
    t = rng.randint(-k, k + 1, n).astype(numpy.int32)
    flip = rng.rand(n) < 0.5
    numpy.testing.assert_array_equal(cuda.to_cpu(gpu.xnor_dot(x, w, k)),
                                     xs.dot(ws.T))
    numpy.testing.assert_array_equal(
        cuda.to_cpu(gpu.sign_layer(x, w, k, xp.asarray(t),
                                   xp.asarray(flip))),
        reference_fires(xs.dot(ws.T), t, flip))
    t *= 60
    numpy.testing.assert_array_equal(
        cuda.to_cpu(gpu.first_layer(xp.asarray(pixels), w, xp.asarray(t),
                                    xp.asarray(flip))),
        reference_fires(pixels.astype(numpy.float64).dot(ws.T), t, flip))


@pytest.mark.gpu
@pytest.mark.parametrize('m,n,k', SHAPES)
def test_gpu_kernels_equal_float_products(m, n, k):
    check_kernels(cuda.cupy, m, n, k)


@pytest.fixture(scope='module')
def host_module(tmp_path_factory):
    return cuda_host.RawModule(gpu.SOURCE,
                               str(tmp_path_factory.mktemp('gpu')))


@pytest.fixture
def on_the_host(monkeypatch, host_module):
    """gpu.py with its raw kernels built for the host and NumPy for
    CuPy: what it launches runs here, on NumPy arrays."""
    monkeypatch.setattr(gpu, 'cuda', types.SimpleNamespace(cupy=numpy))
    monkeypatch.setattr(gpu, '_kernel', host_module.get_function)


# Every shape but the largest: 256 threads a block on a few cores.
@pytest.mark.parametrize('m,n,k', SHAPES[:-1] + [(65, 66, 300)])
def test_the_kernels_on_the_host_equal_float_products(on_the_host, m, n, k):
    check_kernels(numpy, m, n, k)


def test_the_host_launch_shares_memory_and_barriers_as_a_block(
        tmp_path):
    # Each thread writes its index to shared memory; after the barrier
    # each reads its neighbour's: a team that shared nothing, or did not
    # wait, would read zeros.
    module = cuda_host.RawModule(r'''
extern "C" __global__ void neighbours(const int* __restrict__ base,
                                      int* __restrict__ out) {
    __shared__ int seen[64];
    seen[threadIdx.x] = base[0] + blockIdx.x * 1000 + threadIdx.x + 1;
    __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] =
        seen[(threadIdx.x + 1) % blockDim.x];
}
''', str(tmp_path))
    out = numpy.zeros(3 * 64, numpy.int32)
    module.get_function('neighbours')((3,), (64,), (
        numpy.array([7], numpy.int32), out))
    expected = [7 + b * 1000 + (t + 1) % 64 + 1
                for b in range(3) for t in range(64)]
    assert out.tolist() == expected


# MLPs and ConvNets: strides, even and 1 x 1 filters, pads 0 to 2, a
# pooling window of 3, channels past a word, both pixel maps.
HOST_CONVNETS = [
    ((3, 11, 10), [(8, 3, 2, 1, 0), (70, 2, 1, 0, 2)], '2p - 255'),
    ((1, 12, 9), [(5, 5, 1, 2, 3), (3, 1, 1, 0, 0)], 'p'),
    ((2, 7, 7), [(65, 3, 1, 1, 0), (4, 3, 3, 2, 0)], '2p - 255'),
]


def host_networks():
    model, config = helpers.binarized_model(units=70, layers=2, seed=4)
    yield 'mlp', packed_export.export(model, config), (784,)
    model, config = helpers.binarized_convnet('5C3-P2-7C3-P2-9FC',
                                              (1, 12, 12))
    yield 'trained convnet', packed_export.export(model, config), (
        1, 12, 12)
    for i, (shape, layers, value) in enumerate(HOST_CONVNETS):
        yield ('random convnet {}'.format(i),
               helpers.random_packed_convnet(shape, layers, seed=i,
                                             value=value), shape)


def test_the_gpu_engine_on_the_host_gives_the_cpu_engines_dots(
        on_the_host):
    cpu = chainer.get_device('@numpy')
    for name, network, shape in host_networks():
        pixels = numpy.random.RandomState(len(name)).randint(
            0, 256, (5, int(numpy.prod(shape)))).astype(numpy.uint8)
        expected = packed_engine.select(network, kind='blas').dots(pixels)
        numpy.testing.assert_array_equal(
            packed_engine.select(network).dots(pixels), expected,
            err_msg=name)
        for kind in packed_engine.ENGINES:
            engine = (packed_engine.GpuEngine(network, cpu)
                      if kind == 'packed' else
                      packed_engine.select(network, kind=kind))
            numpy.testing.assert_array_equal(engine.dots(pixels), expected,
                                             err_msg=name)
            numpy.testing.assert_array_equal(engine.dots(pixels[:1]),
                                             expected[:1], err_msg=name)


@pytest.mark.gpu
def test_xnor_dot_extremes():
    cupy = cuda.cupy
    k = 130
    ones = cupy.asarray(packed_format.pack_signs(numpy.ones((1, k))))
    minus = cupy.asarray(packed_format.pack_signs(-numpy.ones((1, k))))
    assert gpu.xnor_dot(ones, ones, k).tolist() == [[k]]
    assert gpu.xnor_dot(ones, minus, k).tolist() == [[-k]]
