"""The packed network's layers on the CPU with the SIMD kernels of
:mod:`simd_kernels`, in the layout each form reads.

The form, picked by :func:`best_form` from the CPU's
features, sets the layout of the packed rows (:func:`layout`):

``avx512``
    The packed words, zero-padded to whole 512-bit vectors.
``avx2``
    Nibble planes: each 32 bytes of packed bits, zero-padded to whole 256
    bits, become 32 bytes of their low four bits and 32 of their high four,
    so that ``x XOR w`` of two planes indexes ``vpshufb``'s table directly.
    A batch of one image reads the weights as the packed bits instead,
    half the bytes, and splits them in registers (:data:`PACKED_BATCH`).

Each layer writes its outputs in the layout the next one reads. Zero
padding adds nothing to any popcount or sum.
"""
import collections
import math

import numpy

from quantized_net.packed.format import WORD_BITS, unpack_bits, words
from quantized_net.packed.kernels import simd_kernels
from quantized_net.packed.kernels.simd_kernels import TILE, VECTOR_BYTES
from quantized_net.packed.kernels import simd_pixels
from quantized_net.packed.kernels.simd_pixels import MASK_UNITS

#: The vector forms, fastest first, and the CPU features each needs.
FORMS = {'avx512': ('avx512f', 'avx512vpopcntdq'), 'avx2': ('avx2',)}
#: Packed bits in a vector step of each form (its layout holds them in
#: VECTOR_BYTES bytes: twice as many in the avx2 nibble planes).
STEP_BITS = {'avx512': 512, 'avx2': 256}


def runnable_forms(features=None):
    """The forms this CPU (or one with the set of LLVM feature names
    ``features``) can run, fastest first."""
    if features is None:
        if simd_kernels.numba is None:
            return []
        import llvmlite.binding  # numba's, here when numba is
        host = llvmlite.binding.get_host_cpu_features()
        features = {name for name in host if host[name]}
    return [form for form, needs in FORMS.items()
            if all(n in features for n in needs)]


def best_form():
    """The fastest form this CPU runs, or None: the scalar kernels."""
    forms = runnable_forms()
    return forms[0] if forms else None


def aligned_zeros(shape, dtype=numpy.uint64):
    """Zeros whose data starts on a 64-byte cache line, as rows of whole
    vectors then do: a vector load that straddles two lines costs two (10%
    of a hidden layer's time where the weights started 16 bytes in). For
    what is built once: it costs microseconds a call, as much as a layer
    of one image, so the activations are plain arrays (two of the 18
    loads a step of the nibble-plane tile)."""
    dtype = numpy.dtype(dtype)
    size = math.prod(shape) * dtype.itemsize
    raw = numpy.zeros(size + 64, numpy.uint8)
    start = -raw.__array_interface__['data'][0] % 64
    return raw[start:start + size].view(dtype).reshape(shape)


def layout_words(bits, form):
    """``uint64`` words of a row of ``bits`` packed bits in ``form``'s
    layout."""
    steps = -(-bits // STEP_BITS[form])
    return steps * VECTOR_BYTES[form] // 8


def layout(a, form, rows=None):
    """Packed ``uint64`` rows ``a`` (as :mod:`packed_format` lays them out)
    in ``form``'s layout: zero words up to whole vectors and, for
    ``avx2``, split into nibble planes; with zero rows up to ``rows``."""
    m, n_words = a.shape
    out = aligned_zeros((max(m, rows or 0),
                         layout_words(n_words * WORD_BITS, form)))
    if form == 'avx512':
        out[:m, :n_words] = a
        return out
    steps = out.shape[1] // 8  # 32 bytes of bits in 64 of planes a step
    padded = numpy.zeros((m, steps * 4), numpy.uint64)
    padded[:, :n_words] = a
    data = padded.view(numpy.uint8).reshape(m, steps, 1, 32)
    planes = out.view(numpy.uint8).reshape(len(out), steps, 2, 32)
    planes[:m, :, :1] = data & 15
    planes[:m, :, 1:] = data >> 4
    return out


def unlayout(a, n, form):
    """The packed rows of ``n`` bits that :func:`layout` made ``a`` of."""
    if form == 'avx512':
        return numpy.ascontiguousarray(a[:, :words(n)])
    planes = a.view(numpy.uint8).reshape(len(a), a.shape[1] // 8, 2, 32)
    data = planes[:, :, 0] | (planes[:, :, 1] << 4)
    return numpy.ascontiguousarray(data.reshape(len(a), a.shape[1] * 4).view(
        numpy.uint64)[:, :words(n)])


#: Weights of a layer for :func:`sign_layer` and :func:`dot`: ``layout``,
#: ``form``'s layout (:func:`layout`), and ``bits``, for the avx2 form its
#: packed bits in 32-byte steps (the avx512 form's ``layout`` again), both
#: with zero rows up to a whole tile.
Weights = collections.namedtuple('Weights', 'layout bits')
#: Batches up to this size read the avx2 weights as packed bits, split in
#: registers: a batch of one is bound by fetching the weights, and this
#: halves their bytes (20 us a 2048 x 2048 layer instead of 24); from four
#: images on, the splitting costs more than it saves.
PACKED_BATCH = 1


def weights(w, n, form):
    """:class:`Weights` of the packed weight rows ``w`` of ``n`` units."""
    rows = -(-n // TILE[form][1]) * TILE[form][1]
    laid_out = layout(w, form, rows=rows)
    if form != 'avx2':
        return Weights(laid_out, laid_out)
    bits = aligned_zeros((rows, laid_out.shape[1] // 2))
    bits[:len(w), :w.shape[1]] = w
    return Weights(laid_out, bits)


def _weight_rows(w, x):
    return w.bits if len(x) <= PACKED_BATCH else w.layout


def sign_layer(x, w, limits, flip, form):
    """A hidden layer with ``form``'s kernel, in its layout: unit ``j`` of
    row ``i`` is +1 where ``(popcount(x_i XOR w_j) <= limits_j) !=
    flip_j``.

    Args:
        x: ``uint64`` ``(m, layout_words(k))``: :func:`layout` of the
            packed inputs.
        w: :func:`weights` of the packed weight signs.
        limits: int32 ``(n,)``, popcount bounds.
        flip: bool ``(n,)``.
        form: One of :data:`FORMS` this CPU runs.

    Returns:
        ``uint64`` ``(m, layout_words(n))``: :func:`layout` of the packed
        outputs, the next layer's input.
    """
    n = limits.shape[0]
    out = numpy.zeros((x.shape[0], layout_words(n, form)), numpy.uint64)
    if out.size:
        simd_kernels.LAYERS[form](x, _weight_rows(w, x), limits, flip, out,
                                  simd_kernels.numba.get_num_threads())
    return out


def dot(x, w, k, n, form):
    """int32 ``(m, n)`` dot products ``k - 2 popcount(x_i XOR w_j)`` of
    ``k``-element rows, ``x`` and ``w`` as in :func:`sign_layer`."""
    out = numpy.empty((x.shape[0], n), numpy.int32)
    if out.size:
        simd_kernels.DOTS[form](x, _weight_rows(w, x), k, out)
    return out


def pixel_masks(w, n_in):
    """The first layer's weights for :func:`first_layer`: ``uint8``
    ``(groups, pairs, 2 * MASK_UNITS)``, ``[g, p, 2 u + h]`` 1 where unit
    ``g * MASK_UNITS + u`` has weight +1 on input ``2 p + h``, else 0 (an
    odd last input is paired with a zero one)."""
    groups, pairs = -(-len(w) // MASK_UNITS), -(-n_in // 2)
    signs = numpy.zeros((groups * MASK_UNITS, 2 * pairs), numpy.uint8)
    signs[:len(w), :n_in] = unpack_bits(w, n_in)
    masks = aligned_zeros((groups, pairs, 2 * MASK_UNITS), numpy.uint8)
    masks[:] = signs.reshape(groups, MASK_UNITS, pairs, 2).transpose(
        0, 2, 1, 3).reshape(groups, pairs, 2 * MASK_UNITS)
    return masks


def pixel_limits(thresholds):
    """The first layer's int32 bounds for :func:`first_layer`: ``2 S - t >=
    T`` where ``t - 2 S <= -T`` (``S`` the sum of the pixels where a
    unit's weight is +1, ``t`` of all); a ``T`` below ``-2**31 + 1`` is
    as low."""
    return -numpy.maximum(thresholds, -2 ** 31 + 1).astype(numpy.int32)


def pixel_pairs(pixels):
    """``uint8`` pixels ``(m, n_in)`` as the uint16 pairs ``(m, pairs)``
    :mod:`simd_pixels` reads: pixel ``2 t`` in the low byte of pair ``t``,
    an odd last pixel paired with a zero one."""
    if pixels.dtype != numpy.uint8:
        raise TypeError('first_layer takes uint8 pixels, not {}'.format(
            pixels.dtype))
    pixels = numpy.ascontiguousarray(pixels)
    if pixels.shape[1] % 2:
        pixels = numpy.pad(pixels, ((0, 0), (0, 1)))
    return pixels.view(numpy.uint16)  # x86 is little-endian


def _pairs_for(pixels, masks):
    pairs = pixel_pairs(pixels)
    if masks.shape[1] != pairs.shape[1]:
        raise ValueError('masks of {} pixel pairs for {} pixels'.format(
            masks.shape[1], pixels.shape[1]))
    return pairs


def first_layer(pixels, masks, limits, flip, form):
    """The first layer, its outputs in ``form``'s layout: unit ``j`` of
    image ``i`` is +1 where ``unit_fires(d_ij, T_j, flip_j)``, ``d`` as
    :func:`xnor_popcount.first_layer` defines it.

    Args:
        pixels: ``uint8`` ``(m, n_in)``.
        masks: :func:`pixel_masks` of the packed weight signs.
        limits: :func:`pixel_limits` of the int32 thresholds ``T``.
        flip: bool ``(n,)``.
        form: The layout of the outputs.
    """
    pairs = _pairs_for(pixels, masks)
    n = limits.shape[0]
    out = numpy.zeros((len(pixels), layout_words(n, form)), numpy.uint64)
    if out.size:
        simd_pixels.first_layer(pairs, masks, limits, flip, out,
                                form == 'avx2',
                                simd_kernels.numba.get_num_threads())
    return out


def network(pixels, masks, limits, flips, weights, k, n_out, form):
    """The whole network: :func:`first_layer`, a :func:`sign_layer` for
    each hidden layer, :func:`dot` for the last; the int32 ``(m, n_out)``
    dot products. ``limits`` and ``flips`` hold the first layer's and the
    hidden layers', ``weights`` the hidden layers' and the last's
    :class:`Weights`, ``k`` the last layer's inputs. With hidden layers
    it runs as one compiled call."""
    if len(weights) < 2 or not len(pixels):
        h = first_layer(pixels, masks, limits[0], flips[0], form)
        for w, limit, flip in zip(weights[:-1], limits[1:], flips[1:]):
            h = sign_layer(h, w, limit, flip, form)
        return dot(h, weights[-1], k, n_out, form)
    rows = tuple(_weight_rows(w, pixels) for w in weights)
    widths = tuple(layout_words(len(limit), form) for limit in limits)
    return simd_pixels.NETWORKS[form](
        _pairs_for(pixels, masks), masks, limits[0], flips[0], rows[:-1],
        tuple(limits[1:]), tuple(flips[1:]), widths, rows[-1], k, n_out,
        simd_kernels.numba.get_num_threads())
