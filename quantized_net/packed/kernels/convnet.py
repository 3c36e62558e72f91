"""A ConvNet on the CPU in one compiled call, as :mod:`network` runs an
MLP: the first convolution across integer lanes on the padded pixels
(:mod:`pixel_lanes`) or across the positions' lanes on the pixels' planes
(:mod:`position_lanes`), each later one across the filter lanes on its
input's planes (:mod:`filter_lanes`, :mod:`tap_planes`) or across the
positions' lanes on its byte planes (:mod:`position_lanes`), pooling 2 x 2,
then the fully connected layers in the form's layout and the
last layer's dot products (:class:`Dots`). A batch of one saves the calls
from Python layer by layer, their allocations and their conversions.

It runs the ConvNets whose every convolution runs across the lanes, the
filters' or the positions', and pools 2 x 2 or not at all (:func:`runs`);
the others go layer by layer.
"""
import numpy
from numba import literal_unroll, types
from numba.extending import overload

from quantized_net import kernel_cache
from quantized_net.packed.format import WORD_BITS
from quantized_net.packed.kernels import cpu_features, position_lanes
from quantized_net.packed.kernels.filter_lanes import (
    BITS, convolution_kernel)
from quantized_net.packed.kernels.hidden_layers import dot_kernel
from quantized_net.packed.kernels.layouts import (
    PACKED_BATCH, layout_words, weight_rows)
from quantized_net.packed.kernels.network import chained_layers
from quantized_net.packed.kernels.pixel_lanes import padded_kernel, tile_kind
from quantized_net.packed.kernels.position_lanes import (
    BITS as POSITION_BITS, PIXELS, byte_planes_kernel, convolved,
    pixel_planes_kernel)
from quantized_net.packed.kernels.tap_planes import planes_kernel, plane_runs
from quantized_net.packed.kernels.thresholds import store_word


#: The most bytes of one layer's input a call lays out: a larger batch
#: runs in passes (:func:`images_per_call`), whose layers stay near the
#: caches (docs/packed.md has what the size was chosen from).
INPUT_BYTES = 8 * 2 ** 20


def images_per_call(convolutions, lanes):
    """How many images :class:`Dots` runs at once: as many as keep what
    each convolution lays out for an image (the padded pixels or the
    planes, and across the positions' lanes their unpooled bits) within
    :data:`INPUT_BYTES`; ``lanes`` as :class:`Dots` takes them."""
    per_image = []
    for i, (conv, lane) in enumerate(zip(convolutions, lanes)):
        channels, height, width = conv.in_shape
        padded = (height + 2 * conv.pad) * (width + 2 * conv.pad)
        if lane.positions:
            per_image.append(position_lanes.image_bytes(
                conv, position_lanes.PIXELS if i == 0 else
                position_lanes.BITS))
        elif i == 0:
            per_image.append(channels * padded)
        else:
            per_image.append(8 * len(plane_runs(channels, conv.ksize)[0]) *
                             padded)
    return max(1, INPUT_BYTES // max(per_image))


def runs(convolutions, lanes):
    """Whether the ConvNet of ``convolutions``, whose layers across the
    lanes are ``lanes`` (None where a layer is not), runs in one call:
    all across lanes (the filters' or the positions'), and pools of 2 x 2
    or none."""
    return (all(lane is not None for lane in lanes) and
            all(conv.pool in (0, 2) for conv in convolutions))


@kernel_cache.njit
def _lanes(x, lanes, stride, conv_width, pool, out_shape, kind):
    """One convolution across the lanes on ``x``, the padded pixels or
    the planes: its output words; ``kind`` a literal."""
    w, offsets, limits, classes, flips = lanes
    out = numpy.empty(out_shape, numpy.uint64)
    convolution_kernel(x, offsets, w, limits, classes,
                       flips.view(numpy.uint32), stride, conv_width, pool,
                       kind, out.view(numpy.uint32))
    return out


def _convolution(h, lane, shape):
    """``h`` through one convolution after the first (compiled only)."""
    raise NotImplementedError('compiled by numba only')


@overload(_convolution)
def _convolution_typed(h, lane, shape):
    # Which lanes: Dots passes tables of filters (position_lanes, 5-D)
    # or their words (filter_lanes, 2-D).
    if lane[0].ndim == 5:
        def across_positions(h, lane, shape):
            (pad, row_width, pool, n_planes, plane_length, flat, out_h,
             out_w) = shape
            tables, offsets, limits, _, flips = lane
            x = numpy.empty((h.shape[0], n_planes, plane_length),
                            numpy.uint8)
            byte_planes_kernel(h, pad, x)
            return convolved(x, offsets, tables, limits, flips, row_width,
                             pool, POSITION_BITS, flat, out_h, out_w)
        return across_positions

    def across_filters(h, lane, shape):
        (channels, pad, stride, conv_width, pool, taps, down, height,
         n_planes, width, out_h, out_w, n_words) = shape
        planes = numpy.empty((h.shape[0], height, n_planes, width),
                             numpy.uint64)
        planes_kernel(h, channels, pad, taps, down, planes)
        return _lanes(planes, lane, stride, conv_width, pool,
                      (h.shape[0], out_h, out_w, n_words), BITS)
    return across_filters


def _convolutions(h, layers):
    """``h`` through the convolutions after the first (compiled only)."""
    raise NotImplementedError('compiled by numba only')


@overload(_convolutions)
def _convolutions_typed(h, layers):
    # A ConvNet of one convolution has an empty tuple, which numba cannot
    # unroll: that case is its own specialization.
    if isinstance(layers, types.BaseTuple) and not len(layers):
        return lambda h, layers: h

    # Each layer's (lane, shape) is typed by its kind of lanes: the loop
    # is unrolled, each layer's body compiled for its own.
    def chain(h, layers):
        for layer in literal_unroll(layers):
            h = _convolution(h, layer[0], layer[1])
        return h
    return chain


def _first(pixels, first_shape, first_lanes, first_kind):
    """The first convolution's output words (compiled only)."""
    raise NotImplementedError('compiled by numba only')


@overload(_first)
def _first_typed(pixels, first_shape, first_lanes, first_kind):
    # Which lanes: Dots passes signs in pairs (position_lanes, 4-D) or
    # the pixel_lanes' signs (2-D or 3-D).
    if first_lanes[0].ndim == 4:
        def across_positions(pixels, first_shape, first_lanes, first_kind):
            (channels, height, width, pad, row_width, pool, plane_length,
             flat, out_h, out_w) = first_shape
            signs, offsets, limits, _, flips = first_lanes
            x = numpy.empty((pixels.shape[0], channels, plane_length, 2),
                            numpy.uint8)
            pixel_planes_kernel(pixels, channels, height, width, pad, x)
            return convolved(x, offsets, signs, limits, flips, row_width,
                             pool, PIXELS, flat, out_h, out_w)
        return across_positions

    def across_filters(pixels, first_shape, first_lanes, first_kind):
        (channels, height, width, pad, stride, conv_width, pool, out_h,
         out_w, n_words) = first_shape
        x = padded_kernel(pixels, channels, height, width, pad)
        return _lanes(x, first_lanes, stride, conv_width, pool,
                      (pixels.shape[0], out_h, out_w, n_words), first_kind)
    return across_filters


@kernel_cache.njit
def _laid_out(h, width, split):
    """The plain words ``h`` ``(m, n)`` as ``width`` words in the form's
    layout: zero-padded, and for the avx2 form (``split``) the low
    nibbles of each 32 bytes before their high ones, as
    :func:`layouts.layout`."""
    m, n = h.shape
    out = numpy.zeros((m, width), numpy.uint64)
    for i in range(m):
        for q in range(n):
            store_word(out, i, q, h[i, q], split)
    return out


@kernel_cache.njit
def convnet_kernel(pixels, first_shape, first_lanes, layers, dense_width,
                   weights, limits, flips, widths, last, k, n_out, threads,
                   form, first_kind):
    """The int32 ``(m, n_out)`` dot products of the last layer of the
    ConvNet of the ``uint8`` ``pixels`` ``(m, n_in)``: the first
    convolution of ``first_lanes`` and ``first_shape``, the later ones of
    the tuple ``layers`` of their lanes and shapes (:class:`Dots`), the
    fully connected layers on the last one's words laid out in
    ``dense_width`` words, of tuples ``weights``, ``limits``, ``flips``
    and ``widths`` as :func:`network.network_kernel` takes them, the last
    of ``last`` and ``k`` inputs; ``form`` and the first convolution's
    ``first_kind`` of tile (:func:`pixel_lanes.tile_kind`) literals."""
    m = pixels.shape[0]
    h = _first(pixels, first_shape, first_lanes, first_kind)
    h = _convolutions(h, layers)
    h = _laid_out(h.reshape(m, -1), dense_width, form == 'avx2')
    h = chained_layers(h, weights, limits, flips, widths, threads, form)
    out = numpy.empty((m, n_out), numpy.int32)
    dot_kernel(h, last, k, out, form)
    return out


def _convnet_of(form):
    # The kernel with the form a constant, as hidden_layers binds its own.
    first_kind = tile_kind(form)

    @kernel_cache.njit
    def convnet(pixels, first_shape, first_lanes, layers, dense_width,
                weights, limits, flips, widths, last, k, n_out, threads):
        return convnet_kernel(pixels, first_shape, first_lanes, layers,
                              dense_width, weights, limits, flips,
                              widths, last, k, n_out, threads, form,
                              first_kind)
    return convnet


#: ``CONVNETS[form](...)``: :func:`convnet_kernel` of ``form``.
CONVNETS = {form: _convnet_of(form) for form in cpu_features.FORMS}


class Dots:
    """The ConvNet's int32 ``(m, n_out)`` dot products of the last layer,
    ``Dots(...)(pixels)`` for ``uint8`` pixels ``(m, n_in)``: the
    arguments of the compiled call are made once, here, so that a batch
    of one pays for the call alone.

    Args:
        convolutions: Its :class:`format.Convolution` list (:func:`runs`).
        lanes: Each convolution's ``(filters, offsets, limits,
            positions)`` (the engine's ``Lanes``): for
            :mod:`position_lanes` where ``positions``, else the first's
            for :mod:`pixel_lanes`, the others' for :mod:`filter_lanes`.
        classes: Each convolution's border class of each output position
            (:func:`borders.tap_classes`).
        flip_words: Each convolution's flips as output words.
        weights (list of layouts.Weights): The fully connected layers',
            the last one's last.
        limits (list): The hidden fully connected layers'
            :func:`thresholds.pop_limits`.
        flips (list): Their bool flips.
        k (int): The last layer's inputs.
        n_out (int): Its units.
        form (str): One of :data:`cpu_features.FORMS` this CPU runs.
    """

    def __init__(self, convolutions, lanes, classes, flip_words, weights,
                 limits, flips, k, n_out, form):
        first = convolutions[0]
        _, out_h, out_w = first.out_shape()
        first_shape = tuple(first.in_shape) + ((
            first.pad, position_lanes.padded_width(first), first.pool,
            position_lanes.plane_length(first),
            position_lanes.flat_positions(first), out_h, out_w)
            if lanes[0].positions else (
                first.pad, first.stride, first.conv_shape()[2], first.pool,
                out_h, out_w, len(flip_words[0])))
        shapes = []
        for conv, words, lane in zip(convolutions[1:], flip_words[1:],
                                     lanes[1:]):
            channels, height, width = conv.in_shape
            _, out_h, out_w = conv.out_shape()
            if lane.positions:
                shapes.append((
                    conv.pad, position_lanes.padded_width(conv), conv.pool,
                    position_lanes.plane_count(channels),
                    position_lanes.plane_length(conv),
                    position_lanes.flat_positions(conv), out_h, out_w))
                continue
            taps, down = plane_runs(channels, conv.ksize)
            shapes.append((channels, conv.pad, conv.stride,
                           conv.conv_shape()[2], conv.pool, taps, down,
                           height + 2 * conv.pad, len(taps),
                           width + 2 * conv.pad, out_h, out_w, len(words)))
        _, height, width = convolutions[-1].out_shape()
        dense_bits = height * width * len(flip_words[-1]) * WORD_BITS
        arrays = [(lane.filters, lane.offsets, lane.limits, classes_of,
                   words)
                  for lane, classes_of, words in
                  zip(lanes, classes, flip_words)]
        limits = tuple(numpy.atleast_2d(t) for t in limits)
        self.step = images_per_call(convolutions, lanes)
        self.call = CONVNETS[form]
        # The arguments after the pixels, for a batch that reads the
        # weights' packed bits (layouts.PACKED_BATCH images at most) and for
        # one that reads their layout.
        self.arguments = [
            (first_shape, arrays[0], tuple(zip(arrays[1:], shapes)),
             layout_words(dense_bits, form), rows[:-1], limits, tuple(flips),
             tuple(layout_words(t.shape[-1], form) for t in limits),
             rows[-1], k, n_out)
            for rows in (tuple(weight_rows(w, batch) for w in weights)
                         for batch in (PACKED_BATCH, PACKED_BATCH + 1))]

    def __call__(self, pixels):
        if len(pixels) > self.step:
            return numpy.concatenate([self(pixels[i:i + self.step])
                                      for i in range(0, len(pixels),
                                                     self.step)])
        arguments = self.arguments[len(pixels) > PACKED_BATCH]
        return self.call(numpy.ascontiguousarray(pixels), *arguments,
                         kernel_cache.threads())
