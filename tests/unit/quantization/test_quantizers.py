"""quantizers.py, the named quantizers: specs, levels, the seed
quantizer as the original computed it, stochastic sampling, GPU parity."""
import chainer
import numpy
import pytest

from helpers import all_magnitudes, original_seed_formula, \
    reference_log_quant
from quantized_net.quantization import kernels
from quantized_net.quantization import quantizers


def test_seed_quant_is_the_original_formula():
    x = all_magnitudes(200000, seed=1)
    x = x[numpy.abs(x) < 1e30]  # 64 x must not overflow
    numpy.testing.assert_array_equal(quantizers.parse('seed')(x),
                                     original_seed_formula(x))


def test_seed_quant_levels():
    x = numpy.linspace(-3, 3, 10001, dtype=numpy.float32)
    levels = numpy.unique(quantizers.parse('seed')(x))
    assert levels.max() == 1 and levels.min() == -1
    nonzero = numpy.abs(levels[levels != 0])
    numpy.testing.assert_array_equal(numpy.exp2(numpy.round(numpy.log2(
        nonzero))), nonzero)


def reference_log_k(x, bits, fsr):
    n = 2 ** (bits - 1) - 1
    q = reference_log_quant(x, fsr)
    return numpy.where(numpy.abs(q) < fsr * 2.0 ** (1 - n), 0,
                       q).astype(numpy.float32)


@pytest.mark.parametrize('bits,fsr', [(2, 1.0), (3, 1.0), (4, 0.5), (6, 1.0),
                                      (8, 4.0)])
def test_log_k_levels_and_reference(bits, fsr):
    quantizer = quantizers.parse('log:{}:{}'.format(bits, fsr))
    x = all_magnitudes(200000, seed=4)
    numpy.testing.assert_array_equal(quantizer(x),
                                     reference_log_k(x, bits, fsr))
    wide = numpy.concatenate([x, numpy.float32([0])])
    levels = numpy.unique(quantizer(wide))
    assert len(levels) == quantizer.levels == 2 ** bits - 1
    assert levels.max() == fsr and levels.min() == -fsr


def test_log_k_edges():
    log3 = quantizers.parse('log:3')  # levels 0, +-1, +-1/2, +-1/4
    x = numpy.array([0, 0.17, 0.18, 0.3, 0.7, 0.71, 5, -0.2, -numpy.inf],
                    numpy.float32)
    # 0.17 < 0.25/sqrt(2) = 0.1768 rounds to 1/8, below the lowest level.
    assert log3(x).tolist() == [0, 0, 0.25, 0.25, 0.5, 1, 1, -0.25, -1]


def test_stochastic_is_seeded_and_deterministic_at_test_time():
    stochastic = quantizers.parse('stochastic')
    x = numpy.random.RandomState(5).randn(1000).astype(numpy.float32)
    numpy.random.seed(1)
    first = stochastic(x)
    numpy.random.seed(1)
    numpy.testing.assert_array_equal(stochastic(x), first)
    assert (first != kernels.sign(x)).any()
    with chainer.using_config('train', False):
        numpy.testing.assert_array_equal(stochastic(x),
                                         kernels.sign(x))


def test_seed_quantizer_roles():
    seed = quantizers.parse('seed')
    x = numpy.random.RandomState(6).randn(100).astype(numpy.float32)
    numpy.testing.assert_array_equal(seed(x),
                                     kernels.log_quant(x, 1.0))
    numpy.testing.assert_array_equal(seed.activation(x),
                                     original_seed_formula(x) / 64)


def test_none_is_identity():
    x = numpy.random.RandomState(7).randn(10).astype(numpy.float32)
    assert quantizers.parse('none')(x) is x


@pytest.mark.parametrize('spec,levels', [
    ('none', None), ('sign', 2), ('stochastic', 2), ('seed', None),
    ('linear:1', 2), ('linear:4', 16), ('log:2', 3), ('log:6', 63),
    ('log:4:0.25', 15)])
def test_parse_valid_specs(spec, levels):
    quantizer = quantizers.parse(spec)
    assert quantizer.spec == spec and quantizer.levels == levels
    assert quantizers.parse(quantizer) is quantizer


@pytest.mark.parametrize('spec,reason', [
    ('linear:0', 'K must be an integer from 1 to 16'),
    ('linear:17', 'K must be an integer from 1 to 16'),
    ('log:x', 'K must be an integer from 2 to 8'),
    ('log:1', 'K must be an integer from 2 to 8'),
    ('log:4:0.3', 'FSR must be a positive power of two'),
    ('log:4:-1', 'FSR must be a positive power of two'),
    ('ternary', ''), ('sign:2', ''), ('linear', ''), ('', '')])
def test_parse_rejects_bad_specs_listing_valid_forms(spec, reason):
    with pytest.raises(ValueError) as error:
        quantizers.parse(spec)
    message = str(error.value)
    assert reason in message
    assert 'Valid forms: none, sign, stochastic, seed, linear:K' in message


@pytest.mark.gpu
@pytest.mark.parametrize('spec', ['sign', 'linear:1', 'linear:2', 'linear:3',
                                  'linear:8', 'log:2', 'log:5:0.5', 'seed',
                                  'stochastic'])
def test_named_quantizers_gpu_equal_cpu(spec):
    import cupy
    quantizer = quantizers.parse(spec)
    x = numpy.concatenate([
        all_magnitudes(200000, seed=8),
        numpy.linspace(-1.5, 1.5, 100001, dtype=numpy.float32),
        numpy.array([numpy.nan, 0, -0.0], numpy.float32)])
    with chainer.using_config('train', False):  # stochastic -> sign
        cpu = quantizer(x)
        gpu = cupy.asnumpy(quantizer(cupy.asarray(x)))
        numpy.testing.assert_array_equal(cpu, gpu)
        cpu = quantizer.activation(x)
        gpu = cupy.asnumpy(quantizer.activation(cupy.asarray(x)))
        numpy.testing.assert_array_equal(cpu, gpu)


def test_linear_1_spec_quantizes_as_the_sign_spec():
    x = numpy.concatenate([all_magnitudes(200000, seed=3),
                           numpy.float32([0, -0.0, -1e-45, 1e-45])])
    numpy.testing.assert_array_equal(quantizers.parse('linear:1')(x),
                                     quantizers.parse('sign')(x))


@pytest.mark.parametrize('spec,is_sign', [
    ('sign', True), ('linear:1', True), ('stochastic', True),
    ('linear:2', False), ('log:2', False), ('seed', False), ('none', False)])
def test_is_sign_at_test_time(spec, is_sign):
    quantizer = quantizers.parse(spec)
    assert quantizer.is_sign_at_test_time is is_sign
    x = numpy.concatenate([numpy.linspace(-2, 2, 4001, dtype=numpy.float32),
                           numpy.float32([0, -0.0, 1e-45, -1e-45])])
    with chainer.using_config('train', False):
        same = numpy.array_equal(quantizer(x), kernels.sign(x))
    assert same is is_sign
