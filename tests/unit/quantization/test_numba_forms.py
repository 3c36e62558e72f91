"""numba_forms.py: each fused loop gives the NumPy form's bits."""
import numpy
import pytest

from helpers import kernel_inputs, same_bits
from quantized_net.quantization import numba_forms, numpy_forms

if not numba_forms.AVAILABLE:
    pytest.skip('numba is not installed', allow_module_level=True)

CASES = [
    ('log_quant', (numpy.inf, 0.0, 1.0)), ('log_quant', (1.0, 0.0, 1 / 64)),
    ('log_quant', (64.0, 0.0, 1.0)), ('log_quant', (0.3, 0.0, 1.0)),
    ('log_quant', (1.0, 0.25, 1.0)),
    ('log_quant', (4.0, 2.0 ** -100, 2.0 ** -126)), ('sign', ())] + [
    ('linear_quant', (numpy.float32(2 ** k - 1),)) for k in (1, 2, 3, 8, 16)]


@pytest.mark.parametrize('name,args', CASES,
                         ids=['{}{}'.format(n, a) for n, a in CASES])
def test_equals_the_numpy_form(name, args):
    x = kernel_inputs()
    expected = getattr(numpy_forms, name)(x, *args)
    same_bits(getattr(numba_forms, name)(x, *args), expected)
    # A strided view (a flattened non-contiguous array) and one element.
    same_bits(getattr(numba_forms, name)(x[::3], *args), expected[::3])
    same_bits(getattr(numba_forms, name)(x[7:8], *args), expected[7:8])


@pytest.mark.parametrize('fsr,lowest', [(1.0, 0.0), (2.0 ** -140, 0.0),
                                        (1.0, 2.0 ** -135)])
def test_log_quant_of_every_subnormal_is_the_numpy_forms(fsr, lowest):
    # The loop takes a subnormal's power of two from its leading bit, a
    # path of its own: each of the 2**23 magnitudes, with either sign.
    magnitudes = numpy.arange(2 ** 23, dtype=numpy.uint32)
    x = numpy.concatenate([magnitudes, magnitudes | 0x80000000]).view(
        numpy.float32)
    same_bits(numba_forms.log_quant(x, fsr, lowest, 1.0),
              numpy_forms.log_quant(x, fsr, lowest, 1.0))


@pytest.mark.parametrize('name,args', [('log_quant', (1.0, 0.0, 1 / 64)),
                                       ('sign', ()),
                                       ('linear_quant', (numpy.float32(3),))])
def test_forms_return_a_new_array_and_keep_the_input(name, args):
    x = kernel_inputs()
    before = x.copy()
    y = getattr(numba_forms, name)(x, *args)
    assert y.dtype == numpy.float32 and not numpy.shares_memory(x, y)
    same_bits(x, before)
