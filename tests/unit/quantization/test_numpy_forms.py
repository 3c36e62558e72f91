"""numpy_forms.py: the NumPy forms against the textbook formulas, and the
textbook form against the tests' own."""
import numpy
import pytest

from helpers import kernel_inputs, reference_log_quant, same_bits
from quantized_net.quantization import numpy_forms

# fsr, lowest, scale: no bound, the seed quantizer and its activation,
# log:3, a clip between powers of two, a scale into the subnormals.
LOG_CASES = [(numpy.inf, 0.0, 1.0), (1.0, 0.0, 1.0), (1.0, 0.0, 1 / 64),
             (1.0, 0.25, 1.0), (0.3, 0.0, 1.0), (4.0, 2.0 ** -100,
                                                 2.0 ** -126)]


def test_the_reference_form_is_the_textbook_formula():
    x = kernel_inputs()
    same_bits(numpy_forms.log_quant_reference(x, 64.0, 0.0, 1.0),
              reference_log_quant(x, 64.0))


@pytest.mark.parametrize('fsr,lowest,scale', LOG_CASES)
def test_log_quant_from_the_bits_equals_the_reference(fsr, lowest, scale):
    x = kernel_inputs()
    same_bits(numpy_forms.log_quant(x, fsr, lowest, scale),
              numpy_forms.log_quant_reference(x, fsr, lowest, scale))


@pytest.mark.parametrize('form,args', [
    (numpy_forms.log_quant, (1.0, 0.0, 1 / 64)),
    (numpy_forms.log_quant_reference, (1.0, 0.0, 1 / 64)),
    (numpy_forms.sign, ()),
    (numpy_forms.linear_quant, (numpy.float32(3),)),
    (numpy_forms.straight_through_gradient, (numpy.float32(2),))])
def test_forms_return_a_new_array_and_keep_the_input(form, args):
    x = kernel_inputs()[::5]  # strided, as a flattened view can be
    before = x.copy()
    y = form(x, *args)
    assert y.shape == x.shape and not numpy.shares_memory(x, y)
    same_bits(x, before)


def test_stochastic_sign_is_the_comparison_with_the_draws():
    x = numpy.float32([-1, -0.5, 0, 0.5, 1, numpy.nan])
    p = numpy.float32([0, 0.25, 0.5, 0.75, 1, 0])
    below = numpy.nextafter(p, numpy.float32(-1))
    assert numpy_forms.stochastic_sign(x[:-1], p[:-1]).tolist() == [-1] * 5
    assert numpy_forms.stochastic_sign(x[1:-1], below[1:-1]).tolist() == \
        [1] * 4
    assert numpy.isnan(numpy_forms.stochastic_sign(x, p)[-1])
