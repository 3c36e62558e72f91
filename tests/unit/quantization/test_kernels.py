"""The array functions of kernels.py: exact values at the edges,
the reference formulas on every float32 class, and every CPU form and the
GPU bit for bit."""
import os
import subprocess
import sys

import numpy
import pytest

from helpers import (ROOT, all_magnitudes, f32, identical_bits,
                     kernel_inputs, reference_ap2, reference_log_quant,
                     same_bits)
from quantized_net.quantization import kernels
from quantized_net.quantization import numba_forms
from quantized_net.quantization import quantizers


def seed_quant(x):
    return kernels.log_quant(x, 1.0)


def test_zero_maps_to_zero_keeping_sign():
    q = kernels.ap2(numpy.array([0.0, -0.0], numpy.float32))
    assert q.tolist() == [0.0, 0.0]
    assert numpy.signbit(q).tolist() == [False, True]


def test_powers_of_two_are_fixed_points():
    x = numpy.array([2.0 ** k for k in range(-149, 128)], numpy.float32)
    numpy.testing.assert_array_equal(kernels.ap2(x), x)
    numpy.testing.assert_array_equal(kernels.ap2(-x), -x)


def test_rounding_boundary_at_sqrt2():
    # 0x3FB504F3 = 1.41421354 < sqrt(2) <= 0x3FB504F4 = 1.41421366
    below, above = f32([0x3FB504F3, 0x3FB504F4])
    assert below < numpy.sqrt(2) < above
    x = numpy.array([below, above, -below, -above], numpy.float32)
    assert kernels.ap2(x).tolist() == [1.0, 2.0, -1.0, -2.0]
    # The same boundary in every binade.
    for k in (-125, -20, -1, 5, 100, 126):
        scale = numpy.float32(2.0 ** k)
        assert kernels.ap2(below * scale) == scale
        assert kernels.ap2(above * scale) == 2 * scale


def test_negative_values():
    x = numpy.array([-0.3, -0.75, -1.0, -3.0, -5.0], numpy.float32)
    assert kernels.ap2(x).tolist() == [-0.25, -1.0, -1.0, -4.0, -4.0]


def test_clipping_at_full_scale_range():
    x = numpy.array([0.5, 63.0, 64.0, 91.0, 1e6, -91.0, -1e30],
                    numpy.float32)
    assert kernels.log_quant(x, 64).tolist() == [
        0.5, 64.0, 64.0, 64.0, 64.0, -64.0, -64.0]
    # No lower bound: tiny values stay tiny powers of two.
    assert kernels.log_quant(numpy.float32([1e-30]), 64)[0] == \
        numpy.float32(2.0 ** -100)


def test_infinities_clip_nan_propagates():
    x = numpy.array([numpy.inf, -numpy.inf, numpy.nan], numpy.float32)
    q = kernels.log_quant(x, 64)
    assert q[:2].tolist() == [64.0, -64.0]
    assert numpy.isnan(q[2])
    ap2 = kernels.ap2(x)
    assert ap2[:2].tolist() == [numpy.inf, -numpy.inf]


def test_overflow_to_two_to_the_128_is_clipped():
    largest = numpy.finfo(numpy.float32).max
    assert kernels.ap2(numpy.float32([largest]))[0] == numpy.inf
    assert kernels.log_quant(numpy.float32([largest]), 64)[0] == 64


def test_subnormals_are_quantized_exactly():
    smallest = f32([1])[0]
    x = numpy.array([smallest, 3 * smallest, 5 * smallest, f32([0x7FFFFF])[0],
                     f32([0x5A827A])[0], f32([0x5A8279])[0]],
                    numpy.float32)
    expected = [smallest, 4 * smallest, 4 * smallest, 2.0 ** -126,
                2.0 ** -126, 2.0 ** -127]
    assert kernels.ap2(x).tolist() == \
        numpy.array(expected, numpy.float32).tolist()
    ap2 = kernels.ap2
    numpy.testing.assert_array_equal(ap2(x), reference_ap2(x))
    numpy.testing.assert_array_equal(ap2(-x), -reference_ap2(x))


@pytest.mark.parametrize('fsr', [numpy.inf, 64.0, 1.0, 0.3])
def test_equals_reference_on_all_magnitudes(fsr):
    x = all_magnitudes(200000)
    numpy.testing.assert_array_equal(kernels.log_quant(x, fsr),
                                     reference_log_quant(x, fsr))


@pytest.mark.parametrize('shape', [(), (7,), (3, 5), (2, 3, 4)])
def test_keeps_shape_and_float32_and_input(shape):
    x = numpy.asarray(numpy.random.RandomState(0).randn(*shape),
                      numpy.float32)
    before = x.copy()
    q = seed_quant(x)
    assert q.dtype == numpy.float32 and q.shape == x.shape
    numpy.testing.assert_array_equal(x, before)


def test_non_contiguous_input():
    x = numpy.random.RandomState(0).randn(6, 8).astype(numpy.float32)
    numpy.testing.assert_array_equal(seed_quant(x.T),
                                     seed_quant(x).T)
    numpy.testing.assert_array_equal(seed_quant(x[:, ::3]),
                                     seed_quant(x)[:, ::3])


@pytest.mark.parametrize('dtype', [numpy.float16, numpy.float64,
                                   numpy.int32])
def test_rejects_other_dtypes(dtype):
    with pytest.raises(TypeError, match='float32'):
        seed_quant(numpy.zeros(3, dtype))


def test_rejects_non_positive_fsr():
    with pytest.raises(ValueError, match='fsr'):
        kernels.log_quant(numpy.zeros(3, numpy.float32), 0)


def test_lowest_must_be_at_least_zero():
    x = numpy.float32([3.0, -0.25])
    # -0.0 is 0: no lower bound (as a bit pattern it would be the largest).
    assert kernels.log_quant(x, 4, lowest=-0.0).tolist() == [
        4.0, -0.25]
    for lowest in (-1.0, numpy.nan):
        with pytest.raises(ValueError, match='lowest must be at least 0'):
            kernels.log_quant(x, 4, lowest=lowest)


def test_scale_must_be_a_power_of_two_at_most_one():
    x = numpy.float32([3.0, -1e-40])
    # AP2(3) = 4, times 2**-126; AP2(-1e-40) = -2**-133 underflows to -0.
    q = kernels.log_quant(x, 4, scale=2.0 ** -126)
    assert q.tolist() == [2.0 ** -124, 0.0]
    assert numpy.signbit(q).tolist() == [False, True]
    for scale in (0.3, 2.0, 2.0 ** -127, 0):
        with pytest.raises(ValueError, match='scale must be a power of two'):
            kernels.log_quant(x, 4, scale=scale)


def test_sign_edges():
    x = numpy.array([-numpy.inf, -2, -1e-45, -0.0, 0.0, 1e-45, 3, numpy.inf],
                    numpy.float32)
    assert kernels.sign(x).tolist() == [-1, -1, -1, 1, 1, 1, 1, 1]
    assert numpy.isnan(kernels.sign(numpy.float32([numpy.nan])))[0]
    assert kernels.sign(x).dtype == numpy.float32


def linear_levels(bits):
    m = 2 ** bits - 1
    return (numpy.arange(-m, m + 1, 2) / m).astype(numpy.float32)


@pytest.mark.parametrize('bits', [1, 2, 3, 4, 8])
def test_linear_levels_are_evenly_spaced_from_minus_one_to_one(bits):
    x = numpy.linspace(-1.5, 1.5, 100001, dtype=numpy.float32)
    q = kernels.linear_quant(x, bits)
    numpy.testing.assert_array_equal(numpy.unique(q), linear_levels(bits))
    assert q.dtype == numpy.float32
    # Each input goes to its nearest level.
    levels = linear_levels(bits)
    nearest = levels[numpy.abs(x[:, None] - levels[None, :]).argmin(axis=1)]
    far = numpy.abs(numpy.abs(x - q) - numpy.abs(x - nearest)) > 1e-6
    assert not far.any()


def test_linear_edges():
    x = numpy.array([-7, -1, 1, 7, 0.0, -0.0, 1 / 3, -1 / 3], numpy.float32)
    assert kernels.linear_quant(x, 2).tolist() == pytest.approx(
        [-1, -1, 1, 1, 1 / 3, 1 / 3, 1 / 3, -1 / 3])
    # Ties go up: 0 lies midway between -1/3 and 1/3 for 2 bits.
    assert kernels.linear_quant(numpy.float32([0]), 2)[0] == \
        numpy.float32(1 / 3)
    assert numpy.isnan(kernels.linear_quant(
        numpy.float32([numpy.nan]), 3))[0]


def test_linear_one_bit_is_sign():
    x = numpy.concatenate([all_magnitudes(200000, seed=3),
                           f32(numpy.arange(0x80000000, 0x80000100)),
                           f32(numpy.arange(0, 256))])
    numpy.testing.assert_array_equal(kernels.linear_quant(x, 1),
                                     kernels.sign(x))


def test_stochastic_mean_is_hard_sigmoid():
    numpy.random.seed(0)
    x = numpy.array([-2, -1, -0.6, -0.2, 0, 0.3, 0.9, 1, 4], numpy.float32)
    n = 20000
    samples = kernels.stochastic_sign(numpy.tile(x, (n, 1)))
    assert set(numpy.unique(samples)) == {-1.0, 1.0}
    p = numpy.clip((x + 1) / 2, 0, 1)
    frequency = (samples == 1).mean(axis=0)
    sigma = numpy.sqrt(p * (1 - p) / n)
    assert (numpy.abs(frequency - p) <= 5 * sigma + 1e-12).all()


@pytest.mark.gpu
def test_stochastic_gpu_mean_is_hard_sigmoid():
    import cupy
    cupy.random.seed(0)
    x = cupy.asarray(numpy.array([-1.5, -0.5, 0, 0.5, 2], numpy.float32))
    samples = kernels.stochastic_sign(cupy.tile(x, (20000, 1)))
    frequency = cupy.asnumpy((samples == 1).mean(axis=0))
    p = numpy.array([0, 0.25, 0.5, 0.75, 1])
    assert (numpy.abs(frequency - p) <= 5 * numpy.sqrt(p * (1 - p) / 20000)
            + 1e-12).all()


# The CPU kernels: numba (fused), NumPy (fallback), reference (log2 form).

KERNEL_CASES = [
    ('log_quant inf', lambda x: kernels.log_quant(x, numpy.inf)),
    ('log_quant 64', lambda x: kernels.log_quant(x, 64)),
    ('log_quant 0.3', lambda x: kernels.log_quant(x, 0.3)),
    ('log:3', lambda x: quantizers.parse('log:3')(x)),
    ('log:8:4', lambda x: quantizers.parse('log:8:4')(x)),
    ('log_quant 1', seed_quant),
    ('seed activation', lambda x: quantizers.parse('seed').activation(x)),
    ('sign', kernels.sign),
] + [('linear:{}'.format(k),
      lambda x, k=k: kernels.linear_quant(x, k))
     for k in (1, 2, 3, 5, 8, 16)] + [
    ('straight-through gradient',
     lambda x: kernels.straight_through_gradient(gradients_of(x), x))]


@pytest.mark.gpu
@pytest.mark.parametrize('name,function', KERNEL_CASES,
                         ids=[c[0] for c in KERNEL_CASES])
def test_gpu_equals_cpu(name, function):
    import cupy
    x = kernel_inputs()
    same_bits(cupy.asnumpy(function(cupy.asarray(x))), function(x))


@pytest.mark.gpu
def test_gpu_stochastic_comparison_and_mask_equal_cpu():
    import cupy
    x = kernel_inputs()
    u = numpy.random.RandomState(4).random_sample(x.size).astype(
        numpy.float32)
    same_bits(cupy.asnumpy(kernels.stochastic_sign_of(
        cupy.asarray(x), cupy.asarray(u))),
        kernels.stochastic_sign_of(x, u))
    gy = gradients_of(x)
    same_bits(cupy.asnumpy(kernels.straight_through_gradient(
        cupy.asarray(gy), cupy.asarray(x))),
        kernels.straight_through_gradient(gy, x))


def gradients_of(x):
    """Gradients for the inputs ``x``, element by element: ``-x``, of
    every class of float32 where ``x`` is (subnormal, infinite, NaN,
    -0)."""
    return numpy.negative(x)


STRAIGHT_THROUGH_X = numpy.float32([
    -1, 1, numpy.nextafter(numpy.float32(1), 2), -0.0, -1e-45, numpy.inf,
    -numpy.inf, numpy.nan, 0.5, 0.5, 0.5, 0.5, 3.0, 3.0])
STRAIGHT_THROUGH_GY = numpy.float32([
    2, -3, 4, 5, -6, 7, 8, 9, numpy.nan, -numpy.inf, 1e-45, -0.0,
    numpy.nan, -5])


@pytest.mark.parametrize('name', ['numpy', 'reference', 'numba'])
def test_straight_through_gradient_edges(name):
    if name not in kernels.usable_cpu_kernels():
        pytest.skip('numba is not installed')
    with kernels.using_cpu_kernels(name):
        gx = kernels.straight_through_gradient(STRAIGHT_THROUGH_GY,
                                               STRAIGHT_THROUGH_X)
    # Passed bit for bit where |x| <= 1 (a NaN, an infinity, a subnormal,
    # -0), +0 elsewhere (a NaN x too), whatever gy was.
    same_bits(gx, numpy.float32([2, -3, 0, 5, -6, 0, 0, 0, numpy.nan,
                                 -numpy.inf, 1e-45, -0.0, 0, 0]))


@pytest.mark.parametrize('name', ['numpy', 'reference', 'numba'])
def test_rectified_straight_through_gradient_edges(name):
    if name not in kernels.usable_cpu_kernels():
        pytest.skip('numba is not installed')
    y = numpy.float32([1, 0, 1e-45, -0.0, -2, numpy.nan, 1, 1, 1, 0, 0, 0,
                       1, 1])
    with kernels.using_cpu_kernels(name):
        gx = kernels.rectified_straight_through_gradient(
            STRAIGHT_THROUGH_GY, STRAIGHT_THROUGH_X, y)
    # Chainer's relu gradient, gy * (y > 0): gy times 0 where y is not
    # above 0 (-0 for a negative gy, NaN for an infinite one), then the
    # select, +0 where |x| > 1.
    same_bits(gx, numpy.float32([2, -0.0, 0, 0, -0.0, 0, 0, 0, numpy.nan,
                                 numpy.nan, 0, -0.0, 0, 0]))


@pytest.mark.parametrize('name', ['numpy', 'reference', 'numba'])
def test_a_rectified_quantizer_is_numpys_maximum_of_it(name):
    if name not in kernels.usable_cpu_kernels():
        pytest.skip('numba is not installed')
    x = kernel_inputs()
    with kernels.using_cpu_kernels(name):
        for spec in ('seed', 'sign', 'linear:2', 'log:4', 'stochastic'):
            quantizer = quantizers.parse(spec)
            numpy.random.seed(1)
            y = quantizer.activation(x, rectified=True)
            numpy.random.seed(1)
            expected = numpy.maximum(quantizer.activation(x), 0,
                                     dtype=numpy.float32)
            identical_bits(y, expected)
    # -0 becomes +0, NaN stays as it was.
    y = kernels.log_quant(numpy.float32([-0.0, -0.3, 0.3, -numpy.nan]), 1.0,
                          rectified=True)
    assert y.view(numpy.uint32).tolist()[:3] == [0, 0, 0x3E800000]
    identical_bits(y[3:], numpy.float32([-numpy.nan]))
    assert quantizers.parse('none').activation(
        numpy.float32([-1, 2]), rectified=True).tolist() == [0, 2]


def test_rectified_straight_through_gradient_takes_one_shape():
    with pytest.raises(ValueError, match=r'gy has shape \(2,\), x \(2,\), '
                       r'y \(3,\)'):
        kernels.rectified_straight_through_gradient(
            numpy.zeros(2, numpy.float32), numpy.zeros(2, numpy.float32),
            numpy.zeros(3, numpy.float32))


def test_straight_through_gradient_takes_one_shape():
    with pytest.raises(ValueError, match=r'gy has shape \(3,\), x \(2,\)'):
        kernels.straight_through_gradient(numpy.zeros(3, numpy.float32),
                                          numpy.zeros(2, numpy.float32))
    with pytest.raises(TypeError, match='float32'):
        kernels.straight_through_gradient(numpy.zeros(2),
                                          numpy.zeros(2, numpy.float32))


def test_stochastic_comparison_edges():
    # p = clip((x + 1) / 2, 0, 1): +1 exactly where u < p.
    x = numpy.float32([0, 0, -1, 1, 1, 3, -1e-45, numpy.nan])
    u = numpy.float32([0.5, 0.4999999, 0, 0.9999999, 0, 0.5, 0.4999999, 0])
    y = kernels.stochastic_sign_of(x, u)
    assert y[:-1].tolist() == [-1, 1, -1, 1, 1, 1, 1]
    assert numpy.isnan(y[-1])


def on_cpu(name, function, x):
    with kernels.using_cpu_kernels(name):
        return function(x)


@pytest.mark.parametrize('name,function', KERNEL_CASES,
                         ids=[c[0] for c in KERNEL_CASES])
def test_every_cpu_choice_gives_the_same_bits(name, function):
    x = kernel_inputs()
    numpy_result = on_cpu('numpy', function, x)
    same_bits(on_cpu('reference', function, x), numpy_result)
    if 'numba' not in kernels.usable_cpu_kernels():
        pytest.skip('numba is not installed')
    same_bits(on_cpu('numba', function, x), numpy_result)
    # Non-contiguous and 0-d inputs take the same path.
    same_bits(on_cpu('numba', function, x[::3]), numpy_result[::3])
    same_bits(on_cpu('numba', function, x[5:6].reshape(())),
              numpy_result[5:6].reshape(()))


@pytest.mark.parametrize('name', ['numpy', 'reference', 'numba'])
def test_zero_d_input_gives_a_zero_d_array(name):
    if name not in kernels.usable_cpu_kernels():
        pytest.skip('numba is not installed')
    x = numpy.array(-0.3, numpy.float32)
    with kernels.using_cpu_kernels(name):
        for function in (kernels.sign, kernels.ap2,
                         lambda x: kernels.linear_quant(x, 2),
                         lambda x: kernels.straight_through_gradient(x, x)):
            y = function(x)
            assert isinstance(y, numpy.ndarray) and y.shape == ()


# The CPU-kernel switch.

def test_using_cpu_kernels_chooses_for_the_block_and_restores():
    before = kernels.cpu_kernels()
    with kernels.using_cpu_kernels('reference'):
        assert kernels.cpu_kernels() == 'reference'
        with kernels.using_cpu_kernels('numpy'):
            assert kernels.cpu_kernels() == 'numpy'
        assert kernels.cpu_kernels() == 'reference'
    assert kernels.cpu_kernels() == before


def test_using_cpu_kernels_restores_after_an_error():
    before = kernels.cpu_kernels()
    with pytest.raises(ZeroDivisionError):
        with kernels.using_cpu_kernels('reference'):
            1 / 0
    assert kernels.cpu_kernels() == before


def test_using_cpu_kernels_runs_the_chosen_form(monkeypatch):
    # Of the CPU forms, only the reference one takes a log2 (in float64).
    calls = []
    log2 = numpy.log2

    def counting_log2(x, *args, **kwargs):
        calls.append(x.dtype)
        return log2(x, *args, **kwargs)
    monkeypatch.setattr(numpy, 'log2', counting_log2)
    x = numpy.float32([0.3, -3.0])
    for name in kernels.usable_cpu_kernels():
        with kernels.using_cpu_kernels(name):
            assert kernels.ap2(x).tolist() == [0.25, -4.0]
    assert calls == [numpy.float64]


def test_using_cpu_kernels_rejects_unknown_names():
    before = kernels.cpu_kernels()
    with pytest.raises(ValueError, match="one of"):
        with kernels.using_cpu_kernels('fortran'):
            pass  # pragma: no cover
    assert kernels.cpu_kernels() == before


def test_usable_cpu_kernels():
    usable = kernels.usable_cpu_kernels()
    assert usable[-2:] == ('numpy', 'reference')
    assert ('numba' in usable) == numba_forms.AVAILABLE


def cpu_kernels_in_a_new_process(value):
    result = subprocess.run(
        [sys.executable, '-c', 'from quantized_net.quantization import '
         'kernels; print(kernels.cpu_kernels())'], cwd=ROOT,
        capture_output=True, text=True,
        env=dict(os.environ, QUANTIZED_NET_CPU_KERNELS=value))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), result.stderr


def test_the_environment_chooses_the_cpu_kernels():
    assert cpu_kernels_in_a_new_process('reference') == ('reference', '')


def test_unknown_kernels_in_the_environment_fall_back_with_a_warning():
    chosen, warning = cpu_kernels_in_a_new_process('fortran')
    assert chosen == ('numba' if numba_forms.AVAILABLE else 'numpy')
    assert "QUANTIZED_NET_CPU_KERNELS='fortran' is not one of" in warning
