"""training/columns.py: Chainer's columns and their sums, bit for bit and
laid out as Chainer's, on odd sizes, strides and paddings."""
import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import columns
from chainer.utils import conv

pytest.importorskip('numba')

# (N, C, H, W), (kh, kw), (sy, sx), (ph, pw)
GEOMETRIES = [
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1)),
    ((1, 3, 7, 6), (3, 3), (1, 1), (1, 1)),
    ((3, 1, 5, 5), (1, 1), (2, 2), (0, 0)),
    ((3, 2, 3, 3), (3, 3), (1, 1), (0, 0)),
    ((2, 3, 9, 8), (3, 3), (2, 2), (1, 1)),
    ((1, 1, 5, 9), (1, 1), (1, 1), (0, 0)),
    ((3, 2, 8, 8), (5, 3), (2, 1), (2, 0)),
    ((2, 4, 9, 7), (3, 2), (3, 2), (1, 2)),
    ((1, 5, 4, 4), (4, 4), (1, 3), (0, 1)),
]


def images(shape, seed=0):
    """Values of every scale and sign, -0 and subnormals among them."""
    rng = numpy.random.RandomState(seed)
    x = (rng.standard_normal(shape) *
         10.0 ** rng.randint(-40, 5, shape)).astype(numpy.float32)
    x.flat[::7] = -0.0
    return x


def same(a, b):
    assert a.shape == b.shape and a.strides == b.strides
    numpy.testing.assert_array_equal(a.view(numpy.uint32),
                                     b.view(numpy.uint32))


@pytest.mark.parametrize('shape,k,s,p', GEOMETRIES)
def test_im2col_is_chainers_as_tensordot_lays_it_out(shape, k, s, p):
    x = images(shape)
    ours = columns.im2col(x, *k, *s, *p)
    theirs = conv.im2col_cpu(x, *k, *s, *p)
    assert ours.shape == theirs.shape
    numpy.testing.assert_array_equal(ours.view(numpy.uint32),
                                     theirs.view(numpy.uint32))
    # What tensordot multiplies, each position's window a row: laid out
    # as tensordot lays out Chainer's, a copy or a view.
    n, c, kh, kw, out_h, out_w = ours.shape
    flat = (n * out_h * out_w, c * kh * kw)
    mine = ours.transpose(0, 4, 5, 1, 2, 3).reshape(flat)
    chainers = theirs.transpose(0, 4, 5, 1, 2, 3).reshape(flat)
    assert mine.strides == chainers.strides
    assert numpy.shares_memory(mine, ours)
    # A strided input (a view) gives the same columns.
    wide = numpy.zeros(shape[:3] + (2 * shape[3],), numpy.float32)
    wide[..., ::2] = x
    same(columns.im2col(wide[..., ::2], *k, *s, *p), ours)


@pytest.mark.parametrize('shape,k,s,p', GEOMETRIES)
def test_col2im_adds_as_chainer_does(shape, k, s, p):
    n, c, h, w = shape
    out_h, out_w = (columns.out_size(h, k[0], s[0], p[0]),
                    columns.out_size(w, k[1], s[1], p[1]))
    assert (out_h, out_w) == (conv.get_conv_outsize(h, k[0], s[0], p[0]),
                              conv.get_conv_outsize(w, k[1], s[1], p[1]))
    gcol = images((c, k[0], k[1], n, out_h, out_w), seed=1)
    same(columns.col2im(gcol, *s, *p, h, w),
         conv.col2im_cpu(numpy.rollaxis(gcol, 3), *s, *p, h, w))


@pytest.mark.parametrize('n', [1, 2, 3])
@pytest.mark.parametrize('c,kh,kw', [(1, 1, 1), (1, 2, 1), (3, 1, 1),
                                     (2, 3, 3)])
@pytest.mark.parametrize('out_h,out_w', [(1, 1), (1, 4), (3, 1), (2, 5)])
def test_tensordot_copies_where_numpy_does(n, c, kh, kw, out_h, out_w):
    col = numpy.zeros((n, c, kh, kw, out_h, out_w), numpy.float32)
    matrix = col.transpose(0, 4, 5, 1, 2, 3).reshape(
        n * out_h * out_w, c * kh * kw)
    assert columns.tensordot_copies(n, c, kh, kw, out_h, out_w) == (
        not numpy.shares_memory(matrix, col))


def test_the_scratch_arrays_kept_are_bounded(monkeypatch):
    monkeypatch.setattr(columns, 'SCRATCH_BYTES', 4 * 100)
    a = columns.scratch((10, 5))  # 200 bytes: kept (and what was, gone)
    assert columns.scratch((10, 5)) is a
    b = columns.scratch((5, 10))  # 400 in all: kept
    assert columns.scratch((10, 5)) is a and columns.scratch((5, 10)) is b
    c = columns.scratch((2, 10))  # 480 in all: the others go
    assert columns.scratch((2, 10)) is c
    assert columns.scratch((10, 5)) is not a
    assert columns.scratch((200,)) is not columns.scratch((200,))  # 800


def test_columns_are_kept_until_their_scratch_is_handed_out_again(
        monkeypatch):
    x = images((2, 3, 6, 5))
    col = columns.im2col(x, 3, 3, 1, 1, 1, 1)
    stamp = columns.stamp(col)
    found = columns.kept(stamp)
    assert found.shape == col.shape and found.strides == col.strides
    assert numpy.shares_memory(found, col)
    columns.im2col(images((2, 4, 6, 5)), 3, 3, 1, 1, 1, 1)  # another shape
    assert columns.kept(stamp) is not None
    again = columns.im2col(images((2, 3, 6, 5), seed=1), 3, 3, 1, 1, 1, 1)
    assert columns.kept(stamp) is None
    assert columns.kept(columns.stamp(again)) is not None
    # One image: Chainer's own layout, the array itself.
    one = columns.im2col(images((1, 2, 4, 4)), 3, 3, 1, 1, 1, 1)
    assert columns.kept(columns.stamp(one)) is one
    # Let go when a larger shape needs the room, and not kept alive.
    stamp = columns.stamp(again)
    del col, found, again
    monkeypatch.setattr(columns, 'SCRATCH_BYTES', 2 * 6 * 5 * 3 * 9 * 4)
    columns.scratch((2 * 6 * 5 * 3 * 9 + 1,))
    assert columns.kept(stamp) is None and stamp[0]() is None
