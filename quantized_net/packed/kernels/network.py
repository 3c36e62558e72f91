"""The network on the CPU in one compiled call: the first layer, each
hidden layer, the last layer's dot products, chained in each form's
layout (:func:`dots`). A batch of one saves the calls from Python layer
by layer; ``docs/packed.md`` has what that is worth.
"""
import numpy
from numba import types
from numba.extending import overload

from quantized_net import kernel_cache
from quantized_net.packed.kernels import cpu_features
from quantized_net.packed.kernels.first_layer import (
    checked_pairs, first_layer_kernel)
from quantized_net.packed.kernels.hidden_layers import (
    ONE_CLASS, dot_kernel, sign_layer_kernel)
from quantized_net.packed.kernels.layouts import layout_words, weight_rows


def chained_layers(h, weights, limits, flips, widths, threads, form):
    """``h`` through the hidden layers of tuples ``weights``, ``limits``,
    ``flips`` and ``widths`` in ``form``'s layout (compiled only)."""
    raise NotImplementedError('compiled by numba only')


@overload(chained_layers)
def _chained_layers_typed(h, weights, limits, flips, widths, threads, form):
    # A network of one hidden layer has empty tuples, which numba cannot
    # index: that case is its own specialization.
    if isinstance(weights, types.BaseTuple) and not len(weights):
        return lambda h, weights, limits, flips, widths, threads, form: h

    def chain(h, weights, limits, flips, widths, threads, form):
        for i in range(len(weights)):
            out = numpy.zeros((h.shape[0], widths[i]), numpy.uint64)
            sign_layer_kernel(h, weights[i], limits[i], ONE_CLASS,
                              flips[i], out, threads, form, form == 'avx2')
            h = out
        return h
    return chain


@kernel_cache.njit
def network_kernel(pairs, masks, first_limits, first_flip, first_width,
                   weights, limits, flips, widths, last, k, n_out, threads,
                   form):
    """The int32 ``(m, n_out)`` dot products of the last layer: the first
    layer of the uint16 pixel ``pairs``, the hidden layers of tuples
    ``weights``, ``limits``, ``flips`` and ``widths`` (their outputs'
    words), the last layer of weight rows ``last`` and ``k`` inputs, each
    in ``form``'s layout; ``form`` a literal."""
    m = pairs.shape[0]
    h = numpy.zeros((m, first_width), numpy.uint64)
    first_layer_kernel(pairs, masks, first_limits, first_flip, h, threads,
                       form)
    h = chained_layers(h, weights, limits, flips, widths, threads, form)
    out = numpy.empty((m, n_out), numpy.int32)
    dot_kernel(h, last, k, out, form)
    return out


def _network_of(form):
    # The kernel with the form a constant, as hidden_layers binds its own.
    @kernel_cache.njit
    def network(pairs, masks, first_limits, first_flip, first_width,
                weights, limits, flips, widths, last, k, n_out, threads):
        return network_kernel(pairs, masks, first_limits, first_flip,
                              first_width, weights, limits, flips, widths,
                              last, k, n_out, threads, form)
    return network


#: ``NETWORKS[form](pairs, masks, first_limits, first_flip, first_width,
#: weights, limits, flips, widths, last, k, n_out, threads)``:
#: :func:`network_kernel` of ``form``.
NETWORKS = {form: _network_of(form) for form in cpu_features.FORMS}


def dots(pixels, masks, first_limits, first_flip, weights, limits, flips,
         k, n_out, form):
    """The network's int32 ``(m, n_out)`` dot products of the last layer.

    Args:
        pixels: ``uint8`` ``(m, n_in)``.
        masks: The first layer's :func:`layouts.pixel_masks`.
        first_limits: Its :func:`thresholds.pixel_limits`.
        first_flip: Its bool flips.
        weights (list of layouts.Weights): The hidden layers' after the
            first, then the last layer's.
        limits (list): The hidden layers' :func:`thresholds.pop_limits`.
        flips (list): The hidden layers' bool flips.
        k (int): The last layer's inputs.
        n_out (int): Its units.
        form (str): One of :data:`cpu_features.FORMS` this CPU runs.
    """
    rows = tuple(weight_rows(w, len(pixels)) for w in weights)
    limits = [numpy.atleast_2d(t) for t in limits]
    return NETWORKS[form](
        checked_pairs(pixels, masks), masks, first_limits, first_flip,
        layout_words(len(first_limits), form), rows[:-1], tuple(limits),
        tuple(flips), tuple(layout_words(t.shape[-1], form) for t in limits),
        rows[-1], k, n_out, kernel_cache.threads())
