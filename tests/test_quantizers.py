import numpy
import pytest

import quantizers


def reference_ap2(x):
    """sign(x) * 2**round(log2|x|), 0 -> 0, evaluated in float64.

    float64 log2 of a float32 is close enough to decide every rounding
    correctly (no float32 lies within 1e-9 of an odd multiple of 1/2 in
    log2), so this is the exact value, computed the slow way.
    """
    x64 = x.astype(numpy.float64)
    with numpy.errstate(divide='ignore', over='ignore', invalid='ignore'):
        q = numpy.sign(x64) * numpy.exp2(numpy.round(numpy.log2(numpy.abs(
            x64))))
        q = numpy.where(x64 == 0, x64, q)
        return q.astype(numpy.float32)  # 2**128 overflows to inf


def reference_log_quant(x, fsr):
    return numpy.clip(reference_ap2(x), -fsr, fsr).astype(numpy.float32)


def original_seed_formula(x):
    """The original's LogQuant(64 v, 64) / 64, computed as it was."""
    return reference_log_quant(numpy.float32(64) * x, 64) / numpy.float32(64)


def f32(bits):
    return numpy.array(bits, numpy.uint32).view(numpy.float32)


def all_magnitudes(n, seed=0):
    """float32 values of both signs over the whole exponent range."""
    rng = numpy.random.RandomState(seed)
    bits = rng.randint(0, 2 ** 32, n, dtype=numpy.uint64).astype(
        numpy.uint32)
    x = bits.view(numpy.float32)
    return x[numpy.isfinite(x)]


def test_zero_maps_to_zero_keeping_sign():
    q = quantizers.ap2(numpy.array([0.0, -0.0], numpy.float32))
    assert q.tolist() == [0.0, 0.0]
    assert numpy.signbit(q).tolist() == [False, True]


def test_powers_of_two_are_fixed_points():
    x = numpy.array([2.0 ** k for k in range(-149, 128)], numpy.float32)
    numpy.testing.assert_array_equal(quantizers.ap2(x), x)
    numpy.testing.assert_array_equal(quantizers.ap2(-x), -x)


def test_rounding_boundary_at_sqrt2():
    # 0x3FB504F3 = 1.41421354 < sqrt(2) <= 0x3FB504F4 = 1.41421366
    below, above = f32([0x3FB504F3, 0x3FB504F4])
    assert below < numpy.sqrt(2) < above
    x = numpy.array([below, above, -below, -above], numpy.float32)
    assert quantizers.ap2(x).tolist() == [1.0, 2.0, -1.0, -2.0]
    # The same boundary in every binade.
    for k in (-125, -20, -1, 5, 100, 126):
        scale = numpy.float32(2.0 ** k)
        assert quantizers.ap2(below * scale) == scale
        assert quantizers.ap2(above * scale) == 2 * scale


def test_negative_values():
    x = numpy.array([-0.3, -0.75, -1.0, -3.0, -5.0], numpy.float32)
    assert quantizers.ap2(x).tolist() == [-0.25, -1.0, -1.0, -4.0, -4.0]


def test_clipping_at_full_scale_range():
    x = numpy.array([0.5, 63.0, 64.0, 91.0, 1e6, -91.0, -1e30],
                    numpy.float32)
    assert quantizers.log_quant(x, 64).tolist() == [
        0.5, 64.0, 64.0, 64.0, 64.0, -64.0, -64.0]
    # No lower bound: tiny values stay tiny powers of two.
    assert quantizers.log_quant(numpy.float32([1e-30]), 64)[0] == \
        numpy.float32(2.0 ** -100)


def test_infinities_clip_nan_propagates():
    x = numpy.array([numpy.inf, -numpy.inf, numpy.nan], numpy.float32)
    q = quantizers.log_quant(x, 64)
    assert q[:2].tolist() == [64.0, -64.0]
    assert numpy.isnan(q[2])
    ap2 = quantizers.ap2(x)
    assert ap2[:2].tolist() == [numpy.inf, -numpy.inf]


def test_overflow_to_two_to_the_128_is_clipped():
    largest = numpy.finfo(numpy.float32).max
    assert quantizers.ap2(numpy.float32([largest]))[0] == numpy.inf
    assert quantizers.log_quant(numpy.float32([largest]), 64)[0] == 64


def test_subnormals_are_quantized_exactly():
    smallest = f32([1])[0]
    x = numpy.array([smallest, 3 * smallest, 5 * smallest, f32([0x7FFFFF])[0],
                     f32([0x5A827A])[0], f32([0x5A8279])[0]],
                    numpy.float32)
    expected = [smallest, 4 * smallest, 4 * smallest, 2.0 ** -126,
                2.0 ** -126, 2.0 ** -127]
    assert quantizers.ap2(x).tolist() == \
        numpy.array(expected, numpy.float32).tolist()
    numpy.testing.assert_array_equal(quantizers.ap2(x), reference_ap2(x))
    numpy.testing.assert_array_equal(quantizers.ap2(-x), -reference_ap2(x))


@pytest.mark.parametrize('fsr', [numpy.inf, 64.0, 1.0, 0.3])
def test_equals_reference_on_all_magnitudes(fsr):
    x = all_magnitudes(200000)
    numpy.testing.assert_array_equal(quantizers.log_quant(x, fsr),
                                     reference_log_quant(x, fsr))


def test_seed_quant_is_the_original_formula():
    x = all_magnitudes(200000, seed=1)
    x = x[numpy.abs(x) < 1e30]  # 64 x must not overflow
    numpy.testing.assert_array_equal(quantizers.seed_quant(x),
                                     original_seed_formula(x))


def test_seed_quant_levels():
    x = numpy.linspace(-3, 3, 10001, dtype=numpy.float32)
    levels = numpy.unique(quantizers.seed_quant(x))
    assert levels.max() == 1 and levels.min() == -1
    nonzero = numpy.abs(levels[levels != 0])
    numpy.testing.assert_array_equal(numpy.exp2(numpy.round(numpy.log2(
        nonzero))), nonzero)


@pytest.mark.parametrize('shape', [(), (7,), (3, 5), (2, 3, 4)])
def test_keeps_shape_and_float32_and_input(shape):
    x = numpy.asarray(numpy.random.RandomState(0).randn(*shape),
                      numpy.float32)
    before = x.copy()
    q = quantizers.seed_quant(x)
    assert q.dtype == numpy.float32 and q.shape == x.shape
    numpy.testing.assert_array_equal(x, before)


def test_non_contiguous_input():
    x = numpy.random.RandomState(0).randn(6, 8).astype(numpy.float32)
    numpy.testing.assert_array_equal(quantizers.seed_quant(x.T),
                                     quantizers.seed_quant(x).T)
    numpy.testing.assert_array_equal(quantizers.seed_quant(x[:, ::3]),
                                     quantizers.seed_quant(x)[:, ::3])


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float64,
                                   numpy.int32])
def test_rejects_other_dtypes(dtype):
    with pytest.raises(TypeError, match='float32'):
        quantizers.seed_quant(numpy.zeros(3, dtype))


def test_rejects_non_positive_fsr():
    with pytest.raises(ValueError, match='fsr'):
        quantizers.log_quant(numpy.zeros(3, numpy.float32), 0)


@pytest.mark.gpu
@pytest.mark.parametrize('fsr', [numpy.inf, 64.0, 1.0])
def test_gpu_equals_cpu(fsr):
    import cupy
    x = numpy.concatenate([
        all_magnitudes(500000, seed=2),
        f32(numpy.arange(0x3FB50400, 0x3FB50600)),      # around sqrt(2)
        f32(numpy.arange(0, 4096)),                     # subnormals
        f32(numpy.arange(0x80000000, 0x80001000)),      # negative ones
        numpy.array([numpy.inf, -numpy.inf, numpy.nan, 0, -0.0],
                    numpy.float32)])
    cpu = quantizers.log_quant(x, fsr)
    gpu = cupy.asnumpy(quantizers.log_quant(cupy.asarray(x), fsr))
    numpy.testing.assert_array_equal(cpu.view(numpy.uint32) & ~0,
                                     gpu.view(numpy.uint32) & ~0)

