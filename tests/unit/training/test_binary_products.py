"""binary_products.py: a product of +-1 operands from their bits is BLAS's,
bit for bit; anything else is left to BLAS."""
import numpy
import pytest

from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features
from quantized_net.training import binary_products

pytest.importorskip('numba')


def signs(rng, shape):
    return numpy.where(rng.rand(*shape) < 0.5, -1, 1).astype(numpy.float32)


@pytest.fixture
def every_size(monkeypatch):
    monkeypatch.setattr(binary_products, 'MIN_MULTIPLY_ADDS', 0)


@pytest.mark.parametrize('form', cpu_features.runnable_forms())
@pytest.mark.parametrize('m,k,n', [(100, 1000, 1000), (3, 65, 7),
                                   (1, 64, 1), (5, 63, 9), (2, 1, 3),
                                   (17, 129, 33)])
def test_the_product_of_signs_is_blas_bit_for_bit(every_size, monkeypatch,
                                                  form, m, k, n):
    monkeypatch.setattr(binary_products, '_best_form', lambda: form)
    rng = numpy.random.RandomState(m * k + n)
    x, w = signs(rng, (m, k)), signs(rng, (n, k))
    ours = binary_products.product(x, w)
    assert ours.dtype == numpy.float32 and ours.shape == (m, n)
    numpy.testing.assert_array_equal(ours.view(numpy.uint32),
                                     x.dot(w.T).view(numpy.uint32))


@pytest.mark.parametrize('value', [numpy.nan, 0., -0., 0.5, -2.,
                                   numpy.inf, 1.0000001])
@pytest.mark.parametrize('where', [(0, 0), (-1, -1), (2, 64)])
@pytest.mark.parametrize('operand', ['x', 'w'])
def test_any_other_value_leaves_the_product_to_blas(every_size, value,
                                                     where, operand):
    rng = numpy.random.RandomState(1)
    arrays = {'x': signs(rng, (4, 70)), 'w': signs(rng, (5, 70))}
    arrays[operand][where] = value
    assert binary_products.product(arrays['x'], arrays['w']) is None


def test_small_or_other_products_are_blas():
    rng = numpy.random.RandomState(2)
    x, w = signs(rng, (10, 100)), signs(rng, (10, 100))
    assert binary_products.product(x, w) is None  # too few multiply-adds
    big = signs(rng, (100, 1000)), signs(rng, (1000, 1000))
    assert binary_products.product(*big) is not None
    assert binary_products.product(big[0].astype(numpy.float64),
                                   big[1].astype(numpy.float64)) is None
    assert binary_products.product(big[0][None], big[1]) is None


def test_packed_signs_are_the_packed_formats():
    rng = numpy.random.RandomState(3)
    a = signs(rng, (7, 200))
    numpy.testing.assert_array_equal(binary_products.packed_signs(a),
                                     packed_format.pack_signs(a))
    a[6, 199] = numpy.nan
    assert binary_products.packed_signs(a) is None
