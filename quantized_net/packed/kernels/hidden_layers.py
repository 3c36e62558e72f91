"""The hidden layers and the last one on the CPU: packed +-1 inputs to
packed outputs (:func:`sign_layer`), or to the integer dot products of the
logits (:func:`dot`), with the popcount tiles of each form (:mod:`tiles`)
in its layout (:mod:`layouts`).

For rows of ``k`` elements packed as bits, the dot product is

.. math::

    x \\cdot w = k - 2\\,\\mathrm{popcount}(x \\oplus w),

since a product is -1 exactly where the bits differ, and the zero padding
of both rows differs nowhere.
"""
import numpy
import numba

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS, words
from quantized_net.packed.kernels import cpu_features
from quantized_net.packed.kernels.blocking import HIDDEN_IMAGES
from quantized_net.packed.kernels.layouts import layout_words, weight_rows
from quantized_net.packed.kernels.thresholds import (
    at_most, flip_bits, store_word, word_limits)
from quantized_net.packed.kernels.tiles import pops, tile_shape


@kernel_cache.njit(parallel=True)
def sign_layer_kernel(x, w, limit, classes, flip, out, threads, form, split):
    """Unit ``j`` of row ``i`` of ``out`` is +1 where ``(popcount(x_i XOR
    w_j) <= limit[classes[i % len(classes)], j]) != flip_j``, written as
    plain words or, where ``split``, in the avx2 layout, on ``threads``
    threads. A row's class picks its limits: a convolution's border rows
    count taps outside the image (:mod:`convolutions`), an MLP's rows are
    all of one class. ``form`` is a literal: each form is compiled
    apart."""
    m = x.shape[0]
    n_classes, n = limit.shape
    positions = classes.shape[0]
    blocks = (m + HIDDEN_IMAGES - 1) // HIDDEN_IMAGES
    # One task per (output word, block of images): a batch of one image
    # still spreads over the cores, and a block's images share the word's
    # weight rows in L1. Each thread takes a run of tasks with its own
    # scratch.
    tasks = (n + WORD_BITS - 1) // WORD_BITS * blocks
    for thread in numba.prange(threads):
        counts = numpy.empty((HIDDEN_IMAGES, WORD_BITS), numpy.int32)
        lim = numpy.empty((n_classes, WORD_BITS), numpy.int32)
        flp = numpy.empty(WORD_BITS, numpy.bool_)
        for task in range(tasks * thread // threads,
                          tasks * (thread + 1) // threads):
            word = task // blocks
            i0 = (task % blocks) * HIDDEN_IMAGES
            rows = min(HIDDEN_IMAGES, m - i0)
            j0 = word * WORD_BITS
            for c in range(n_classes):
                word_limits(limit[c], flip, j0, n, lim[c], flp)
            flips = flip_bits(flp)
            pops(x, w, i0, rows, j0, min(WORD_BITS, n - j0), counts, form)
            for r in range(rows):
                at = lim.ctypes.data + classes[(i0 + r) % positions] * (
                    4 * WORD_BITS)
                store_word(out, i0 + r, word, at_most(
                    counts[r].ctypes.data, at) ^ flips, split)


@numba.njit(inline='always')
def _dot_block(x, w, k, out, i0, form):
    nr = tile_shape(form)[1]
    m, n = out.shape
    rows = min(HIDDEN_IMAGES, m - i0)
    counts = numpy.empty((HIDDEN_IMAGES, (n + nr - 1) // nr * nr),
                         numpy.int32)
    pops(x, w, i0, rows, 0, n, counts, form)
    for r in range(rows):
        for j in range(n):
            out[i0 + r, j] = k - 2 * counts[r, j]


@kernel_cache.njit(parallel=True)
def dot_kernel(x, w, k, out, form):
    """``out[i, j] = k - 2 popcount(x_i XOR w_j)``, ``form`` a literal."""
    blocks = (out.shape[0] + HIDDEN_IMAGES - 1) // HIDDEN_IMAGES
    if blocks == 1:  # a parallel region costs some microseconds
        _dot_block(x, w, k, out, 0, form)
        return
    for task in numba.prange(blocks):
        _dot_block(x, w, k, out, task * HIDDEN_IMAGES, form)


# The kernels with the form a constant: a form passed from Python, a
# string, would go through numba's literal dispatch on every call. numba
# caches a closure under the values of its cells, so each form's kernels
# are cached as functions of their own would be.
def _sign_layer_of(form):
    @kernel_cache.njit
    def sign_layer(x, w, limit, classes, flip, out, threads, split):
        sign_layer_kernel(x, w, limit, classes, flip, out, threads, form,
                          split)
    return sign_layer


def _dot_of(form):
    @kernel_cache.njit
    def dot(x, w, k, out):
        dot_kernel(x, w, k, out, form)
    return dot


#: ``SIGN_LAYERS[form](x, w, limit, classes, flip, out, threads, split)``:
#: :func:`sign_layer_kernel` of ``form``.
SIGN_LAYERS = {form: _sign_layer_of(form) for form in cpu_features.FORMS}
#: ``DOTS[form](x, w, k, out)``: :func:`dot_kernel` of ``form``.
DOTS = {form: _dot_of(form) for form in cpu_features.FORMS}


#: The classes of rows that all have the same limits.
ONE_CLASS = numpy.zeros(1, numpy.int32)


def sign_layer(x, w, limits, flip, form, classes=ONE_CLASS, plain=False):
    """A hidden layer with ``form``'s kernels, in its layout: unit ``j`` of
    row ``i`` is +1 where ``(popcount(x_i XOR w_j) <= limits[c, j]) !=
    flip_j``, ``c = classes[i % len(classes)]``.

    Args:
        x: ``uint64`` ``(m, layout_words(k, form))``: the packed inputs in
            ``form``'s layout (:func:`layouts.layout`).
        w (layouts.Weights): The packed weight signs.
        limits: int32 ``(n,)`` or ``(classes, n)``, popcount bounds
            (:func:`thresholds.pop_limits`).
        flip: bool ``(n,)``.
        form (str): One of :data:`cpu_features.FORMS` this CPU runs.
        classes: int32, the class of each row, repeating.
        plain (bool): Whether the outputs are plain packed words, not in
            ``form``'s layout.

    Returns:
        ``uint64`` ``(m, words)``: the packed outputs in ``form``'s layout,
        the next layer's input, or plain (``words(n)``).
    """
    limits = numpy.atleast_2d(limits)
    n = limits.shape[1]
    split = form == 'avx2' and not plain
    width = words(n) if plain else layout_words(n, form)
    out = numpy.zeros((x.shape[0], width), numpy.uint64)
    if out.size:
        SIGN_LAYERS[form](x, weight_rows(w, len(x)), limits, classes, flip,
                          out, kernel_cache.threads(), split)
    return out


def dot(x, w, k, n, form):
    """int32 ``(m, n)`` dot products ``k - 2 popcount(x_i XOR w_j)`` of
    ``k``-element rows, ``x`` and ``w`` as :func:`sign_layer` takes
    them."""
    out = numpy.empty((x.shape[0], n), numpy.int32)
    if out.size:
        kernel_cache.threads()  # dot_kernel is parallel
        DOTS[form](x, weight_rows(w, len(x)), k, out)
    return out
