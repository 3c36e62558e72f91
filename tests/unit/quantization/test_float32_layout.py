"""float32_layout.py: the constants are float32's layout, the AP2 bound is
the first significand above sqrt(2), and the scale rule."""
import math

import numpy
import pytest

from helpers import f32
from quantized_net.quantization import float32_layout as layout


def test_the_masks_split_a_float32():
    assert layout.SIGN_MASK | layout.MAGNITUDE_MASK == 0xFFFFFFFF
    assert layout.SIGN_MASK & layout.MAGNITUDE_MASK == 0
    assert layout.EXPONENT_MASK | layout.MANTISSA_MASK == \
        layout.MAGNITUDE_MASK
    assert layout.EXPONENT_MASK & layout.MANTISSA_MASK == 0
    assert layout.SIGN_EXPONENT_MASK == layout.SIGN_MASK | \
        layout.EXPONENT_MASK
    assert layout.MANTISSA_MASK == 2 ** layout.MANTISSA_BITS - 1


def test_float32_bits():
    assert layout.float32_bits(1.0) == layout.ONE_BITS
    assert layout.float32_bits(-0.0) == layout.SIGN_MASK
    assert layout.float32_bits(numpy.inf) == layout.EXPONENT_MASK
    assert layout.float32_bits(2.0 ** -149) == 1
    # Rounded to float32 first.
    assert layout.float32_bits(0.1) == layout.float32_bits(
        numpy.float32(0.1))


def test_exponent_one_doubles_a_normal_value():
    for value in (2.0 ** -126, 0.3, 1.0, 1.5, -7.0, 2.0 ** 126):
        bits = layout.float32_bits(value)
        assert f32(bits + layout.EXPONENT_ONE) == numpy.float32(2 * value)


def test_ap2_round_up_mantissa_is_the_first_significand_above_sqrt2():
    below, above = f32([layout.ONE_BITS | layout.AP2_ROUND_UP_MANTISSA - 1,
                        layout.ONE_BITS | layout.AP2_ROUND_UP_MANTISSA])
    assert float(below) < math.sqrt(2) < float(above)


def test_the_subnormal_scale_makes_every_subnormal_normal():
    up = numpy.float32(2.0 ** layout.SUBNORMAL_SCALE_EXPONENT)
    smallest, largest = f32([1, layout.MANTISSA_MASK])
    assert layout.float32_bits(smallest * up) >= layout.EXPONENT_ONE
    assert float(largest * up) == float(largest) * 2.0 ** 24  # exact


def test_cuda_constants_are_the_layout():
    assert layout.CUDA_CONSTANTS == {
        name: getattr(layout, name) for name in layout.CUDA_CONSTANTS}


@pytest.mark.parametrize('scale,shift', [(1.0, 0), (0.5, 1), (1 / 64, 6),
                                         (2.0 ** -126, 126)])
def test_scale_shift(scale, shift):
    assert layout.scale_shift(scale) == shift


@pytest.mark.parametrize('scale', [0.3, 2.0, 2.0 ** -127, 0.0, -0.5,
                                   numpy.inf, numpy.nan])
def test_scale_shift_rejects_other_scales(scale):
    with pytest.raises(ValueError, match='scale must be a power of two'):
        layout.scale_shift(scale)
