"""The packed file of a binarized network: 1-bit weights and integer
thresholds.

``export.py`` writes it (:mod:`quantized_net.packed.export`),
``infer_packed.py`` runs it (:mod:`quantized_net.packed.engine`). This
module owns its bit layout, :data:`WORD_BITS`, :func:`words`,
:func:`pack_signs` and :func:`unpack_bits`, which every kernel reads (the
CPU kernels lay the rows out again for their vectors,
:mod:`kernels.layouts`). The file is a NumPy ``.npz`` archive (no pickles)
holding:

``meta``
    A JSON string: ``format`` (``"quantized_net.packed"``), ``version``,
    ``sizes`` (values per layer, flattened, input first), ``input`` (how
    the 8-bit pixels map to the trained network's input), ``bit_order``,
    ``padding``, the quantizer specs, the training configuration and,
    from ``export.py``, ``source``: the SHA-256 of the model file it was
    exported from (whether a new export may replace the file). A ConvNet's
    (version 2) also has ``convolutions``, its leading layers, one
    :class:`Convolution` each; the layers after them are fully connected.
``W0`` ... ``W{L-1}``
    Layer ``l``'s signs as bits in ``uint64`` words, one row per unit or
    filter, the Chainer link's weights flattened in their own order: shape
    ``(sizes[l+1], words(sizes[l]))`` for a fully connected layer (the
    input of the first after a convolution flattened as Chainer flattens
    ``(channels, height, width)``), ``(filters, words(channels * ksize *
    ksize))`` for a convolution. Weight ``k`` of a row is bit ``k % 64``
    (least significant first) of word ``k // 64``; bit 1 means +1 and 0
    means -1. Rows are padded with 0 bits to a whole number of words; the
    engine pads activations with 0 bits too, so the padding adds nothing to
    any XNOR-popcount.
``T0`` ... ``T{L-2}`` and ``flip0`` ...
    The hidden layers' folded bias, pooling, batch normalisation and sign,
    int32 and bool per unit or filter (see :func:`unit_fires`).
``bias``, ``mean``, ``inv_std``, ``gamma``, ``beta``
    The last layer's bias and batch normalisation (float32), applied to its
    integer dot products ``d`` as Chainer's CPU code does, in this order of
    float32 operations: ``((d + bias - mean) * inv_std) * gamma + beta``.
    The class is the first index of the largest of these logits.

A convolution's integer ``d`` at an output position is the sum over the
taps inside the image only: the trained network padded with zeros, which
in the +-1 domain is a third value that adds nothing. The first layer of a
ConvNet sums ``w * (2 p - 255)`` (``w * p`` without centred inputs): the
trained network's input times 255, zero on the border too.
"""
import collections
import json
import math
import os

import numpy

from quantized_net.atomic_file import atomic_write
from quantized_net import errors
from quantized_net.training import datasets
from quantized_net.training import safe_npz
from quantized_net import untrusted_file

FORMAT = 'quantized_net.packed'
VERSION = 2
#: The versions this program reads: 1, the MLPs written before ConvNets
#: could be packed, is version 2 without convolutions.
READ_VERSIONS = (1, 2)
#: The file ``export.py`` writes in a result directory.
PACKED_FILE = 'model.packed.npz'
WORD_BITS = 64
LAST_LAYER_KEYS = ('bias', 'mean', 'inv_std', 'gamma', 'beta')
# What a file may declare, so that what loading it allocates is bounded.
MAX_UNITS = 2 ** 16
MAX_LAYERS = 64
#: Values of one image at any layer of a ConvNet, and an image's side.
MAX_VALUES = 2 ** 24
MAX_SIDE = 2 ** 12
MAX_KSIZE = 15
#: A ConvNet's first layer takes the integer ``a p + b`` of pixel ``p``
#: (``meta['input']['value']``): the trained network's input times 255,
#: which is 0 where the network's zero padding is.
PIXEL_VALUES = {'2p - 255': (2, -255), 'p': (1, 0)}
MAX_META_BYTES = 2 ** 20
#: How the arrays are laid out, as the metadata states it.
LAYOUT = {
    'bit_order': 'element k of a row is bit k % 64 (least significant '
                 'first) of word k // 64; 1 means +1, 0 means -1',
    'padding': 'rows padded with 0 bits to whole 64-bit words',
    'hidden_unit': '+1 iff (d >= T) != flip, d the integer dot product '
                   '(of a convolution: the pooled maximum of d, over the '
                   'taps inside the image)',
    'last_layer': '((d + bias - mean) * inv_std) * gamma + beta, '
                  'float32, in this order; class = first argmax',
}


def words(n_bits):
    """Number of 64-bit words holding ``n_bits`` bits."""
    return -(-n_bits // WORD_BITS)


def pack_signs(x):
    """Packs the signs of the rows of a 2-D array into ``uint64`` words.

    Element ``k`` of a row becomes bit ``k % 64`` of word ``k // 64``:
    1 where the element is ``>= 0`` (the sign quantizer's +1), 0 where it is
    negative. Rows are padded with 0 bits.

    Args:
        x (numpy.ndarray): Shape ``(rows, n)``.

    Returns:
        numpy.ndarray: ``uint64`` of shape ``(rows, words(n))``.
    """
    x = numpy.asarray(x)
    rows, n = x.shape
    bits = numpy.zeros((rows, words(n) * WORD_BITS), numpy.bool_)
    bits[:, :n] = x >= 0
    packed = numpy.packbits(bits, axis=1, bitorder='little')
    return packed.view('<u8').astype(numpy.uint64, copy=False).reshape(
        rows, words(n))


def unpack_bits(packed, n):
    """The ``(rows, n)`` uint8 array of 0 and 1 bits that
    :func:`pack_signs` packed."""
    packed = numpy.ascontiguousarray(packed, dtype='<u8')
    return numpy.unpackbits(packed.view(numpy.uint8), axis=1,
                            bitorder='little')[:, :n]


def unpack_signs(packed, n):
    """The ``(rows, n)`` float32 array of +-1 that :func:`pack_signs`
    packed."""
    return unpack_bits(packed, n).astype(numpy.float32) * 2 - 1


class Convolution(collections.namedtuple(
        'Convolution', 'in_shape filters ksize stride pad pool')):
    """A packed ConvNet's convolution layer, as its metadata gives it:
    ``filters`` square ``ksize`` filters over ``in_shape`` ``(channels,
    height, width)``, at ``stride``, with ``pad`` zeros on each border
    (:data:`LAYOUT`), then ``pool`` x ``pool`` max-pooling at stride
    ``pool`` of the whole windows (Chainer's ``cover_all=False``), or none
    where ``pool`` is 0."""

    def conv_shape(self):
        """``(filters, height, width)`` of the convolution's output."""
        _, h, w = self.in_shape
        return (self.filters,
                (h + 2 * self.pad - self.ksize) // self.stride + 1,
                (w + 2 * self.pad - self.ksize) // self.stride + 1)

    def out_shape(self):
        """``(filters, height, width)`` of the layer's output, pooled."""
        o, h, w = self.conv_shape()
        if self.pool:
            h, w = h // self.pool, w // self.pool
        return o, h, w

    def taps(self):
        """Weights of a filter: ``channels * ksize * ksize``."""
        return self.in_shape[0] * self.ksize * self.ksize

    def to_meta(self):
        return dict(self._asdict(), in_shape=list(self.in_shape))


def unit_fires(d, thresholds, flip):
    """Whether each hidden unit outputs +1, from its integer dot product.

    .. math::

        \\mathrm{fires} = (d \\ge T) \\oplus \\mathrm{flip}

    A hidden unit of the trained network outputs
    :math:`\\mathrm{sign}(\\mathrm{BN}(\\alpha d + \\beta + b))` for
    the integer dot product :math:`d` of its input with its weight signs
    (for the first layer, of the 8-bit pixels 0-255, the input map
    :math:`\\alpha, \\beta` folded in). Batch normalisation is monotonic
    in :math:`d`: increasing where its scale is positive, so the unit
    fires from some integer ``T`` up; decreasing where it is negative, so
    it fires below ``T`` (``flip`` set). ``export.py`` finds ``T`` and
    ``flip`` by evaluating the model itself
    (:func:`export.fold_sign`); the kernels compute this same test
    (:mod:`kernels.thresholds`, :mod:`kernels.gpu`), and this array form
    is the ``blas`` engine's.

    Args:
        d: Integer dot products ``(images, units)`` (any array type).
        thresholds: int32 ``T`` per unit.
        flip: bool per unit.
    """
    return (d >= thresholds) != flip


class PackedNetwork(object):
    """The contents of a packed file, checked for consistency.

    Attributes:
        meta (dict): The metadata.
        sizes (list of int): Values per layer, flattened, input first.
        convolutions (list of Convolution): The leading convolution
            layers; none for an MLP.
        weights (list of numpy.ndarray): Packed weight signs per layer.
        thresholds (list of numpy.ndarray): int32 ``T`` per hidden layer.
        flips (list of numpy.ndarray): bool ``flip`` per hidden layer.
        last (dict): The last layer's float32 vectors, by name.
    """

    def __init__(self, meta, weights, thresholds, flips, last):
        self.meta = meta
        self.sizes = list(meta['sizes'])
        self.convolutions = [
            Convolution(**dict(c, in_shape=tuple(c['in_shape'])))
            for c in meta.get('convolutions', ())]
        self.weights = weights
        self.thresholds = thresholds
        self.flips = flips
        self.last = last

    def arrays(self):
        """The archive's arrays, by name."""
        arrays = {'meta': numpy.array(json.dumps(self.meta, sort_keys=True))}
        for i, w in enumerate(self.weights):
            arrays['W{}'.format(i)] = w
        for i, (t, f) in enumerate(zip(self.thresholds, self.flips)):
            arrays['T{}'.format(i)] = t
            arrays['flip{}'.format(i)] = f
        arrays.update(self.last)
        return arrays

    def weight_bytes(self):
        """Bytes of the packed weight words, padding included."""
        return sum(w.nbytes for w in self.weights)

    def describe(self):
        """The layers in a line: ``784 - 2048 - 10``, or for a ConvNet
        its input shape, then its convolutions as architectures write them
        (``64C3-P2``), then the units of the fully connected layers."""
        if not self.convolutions:
            return ' - '.join(map(str, self.sizes))
        parts = ['x'.join(map(str, self.convolutions[0].in_shape))]
        for conv in self.convolutions:
            parts.append('{}C{}{}{}'.format(
                conv.filters, conv.ksize,
                '/{}'.format(conv.stride) if conv.stride > 1 else '',
                '-P{}'.format(conv.pool) if conv.pool else ''))
        return ' - '.join(parts + list(map(
            str, self.sizes[len(self.convolutions) + 1:])))

    def row_shape(self, layer):
        """``(rows, bits)`` of layer ``layer``'s weights: units and
        inputs, or filters and a filter's weights."""
        if layer < len(self.convolutions):
            conv = self.convolutions[layer]
            return conv.filters, conv.taps()
        return self.sizes[layer + 1], self.sizes[layer]

    def signs(self, layer):
        """Layer ``layer``'s weight signs as a float32 +-1 matrix, one row
        per unit or filter."""
        return unpack_signs(self.weights[layer], self.row_shape(layer)[1])


def trained_on(network, path):
    """The data set the packed ``network`` (read from ``path``) was trained
    on, as its configuration records it (MNIST where it records none).

    Raises:
        errors.PackedFormatError: It records one this program does not
            know.
    """
    config = network.meta.get('config')
    dataset = (datasets.name(config) if isinstance(config, dict)
               else datasets.DEFAULT)
    if dataset not in datasets.DATASETS:
        raise errors.PackedFormatError(
            '{} was trained on {!r}, a data set this program does not read '
            '(it reads {}).'.format(path, dataset,
                                    ', '.join(sorted(datasets.DATASETS))))
    return dataset


def save(path, network):
    """Writes ``network`` (a :class:`PackedNetwork`) to ``path`` whole or
    not at all."""
    with atomic_write(path, 'wb') as f:
        numpy.savez(f, **network.arrays())


def _expect(condition, path, message, *args):
    if not condition:
        raise errors.PackedFormatError(
            '{} is not a usable packed network: {}'.format(
                path, message.format(*args)))


def _header(archive, path, name):
    """``(dtype, shape)`` that member ``name`` declares, read from its
    header alone (:func:`safe_npz.member_header`) and checked against what
    the zip directory says it inflates to, and that against what the file
    stores: nothing larger is ever read."""
    dtype, shape, declared, held = safe_npz.member_header(archive, name)
    _expect(not dtype.hasobject and declared == held, path,
            '{} declares {} of shape {} but holds {} bytes', name, dtype,
            shape, held)
    return dtype, shape


def _array(archive, path, name, dtype, shape):
    _expect(name in archive.files, path, 'array {} is missing', name)
    declared = _header(archive, path, name)
    _expect(declared == (numpy.dtype(dtype), shape), path,
            '{} is {} of shape {}, expected {} of shape {}', name,
            *declared, numpy.dtype(dtype), shape)
    return archive[name]


def _meta(archive, path):
    """The metadata, checked to be that of a packed file of this
    version with sizes in range."""
    _expect('meta' in archive.files, path, 'no metadata')
    dtype, shape = _header(archive, path, 'meta')
    _expect(dtype.kind == 'U' and shape == () and
            dtype.itemsize <= MAX_META_BYTES, path,
            'its metadata is not a JSON string of at most {} bytes',
            MAX_META_BYTES)
    # A lone surrogate is kept, for the UTF-8 check to refuse.
    text = str(archive['meta']).encode('utf-8', 'surrogatepass')
    meta = untrusted_file.parse_json(text, path, errors.PackedFormatError,
                                     'packed network')
    _expect(isinstance(meta, dict) and meta.get('format') == FORMAT,
            path, 'its metadata is not that of a {} file', FORMAT)
    if meta.get('version') not in READ_VERSIONS:
        raise errors.PackedFormatError(
            '{} is format version {}, this program reads versions {}; '
            'export the model again with this version of export.py.'
            .format(path, meta.get('version'),
                    ' and '.join(map(str, READ_VERSIONS))))
    sizes = meta.get('sizes')
    _expect(isinstance(sizes, list) and 3 <= len(sizes) <= MAX_LAYERS + 1
            and all(type(s) is int and 0 < s <= MAX_VALUES
                    for s in sizes), path,
            'sizes {!r} are not a list of 3 to {} integers from 1 to {}',
            sizes, MAX_LAYERS + 1, MAX_VALUES)
    convolutions = meta.get('convolutions', [])
    _expect(meta['version'] > 1 or not convolutions, path,
            'version 1 has no convolutions')
    _expect(isinstance(convolutions, list) and
            len(convolutions) <= len(sizes) - 2, path,
            'convolutions are not a list of at most {} layers (the last '
            'layer is fully connected)', len(sizes) - 2)
    for i, conv in enumerate(convolutions):
        _check_convolution(conv, i, sizes, path)
    if convolutions:
        given = meta.get('input')
        _expect(isinstance(given, dict) and
                given.get('value') in PIXEL_VALUES, path,
                "the input's integer value is not one of {}",
                ', '.join(sorted(PIXEL_VALUES)))
    dense = sizes[len(convolutions):]
    _expect(all(s <= MAX_UNITS for s in dense), path,
            'the fully connected layers take and give {} values: at most {} '
            'each', dense, MAX_UNITS)
    return meta


_CONVOLUTION_KEYS = set(Convolution._fields)


def _bounded(value, low, high):
    return type(value) is int and low <= value <= high


def _check_convolution(conv, i, sizes, path):
    """Convolution ``i`` of the metadata: its fields in range, its shapes
    those of ``sizes`` and of the layer before."""
    _expect(isinstance(conv, dict) and set(conv) == _CONVOLUTION_KEYS, path,
            'convolution {} does not have exactly the fields {}', i,
            ', '.join(Convolution._fields))
    shape = conv['in_shape']
    _expect(isinstance(shape, list) and len(shape) == 3 and
            _bounded(shape[0], 1, MAX_UNITS) and
            all(_bounded(side, 1, MAX_SIDE) for side in shape[1:]), path,
            'convolution {} takes {!r}, not [channels, height, width] of at '
            'most {} channels and {} pixels a side', i, shape, MAX_UNITS,
            MAX_SIDE)
    _expect(_bounded(conv['filters'], 1, MAX_UNITS) and
            _bounded(conv['ksize'], 1, MAX_KSIZE) and
            _bounded(conv['stride'], 1, MAX_KSIZE) and
            _bounded(conv['pad'], 0, conv['ksize'] - 1) and
            (conv['pool'] == 0 or _bounded(conv['pool'], 2, MAX_KSIZE)),
            path, 'convolution {} is not 1 to {} filters of size 1 to {}, '
            'stride 1 to {}, padding less than the size, pooling 0 or 2 to '
            '{}', i, MAX_UNITS, MAX_KSIZE, MAX_KSIZE, MAX_KSIZE)
    layer = Convolution(**dict(conv, in_shape=tuple(shape)))
    _expect(min(layer.conv_shape()[1:]) >= 1 and
            min(layer.out_shape()[1:]) >= 1, path,
            'convolution {} leaves no output of its {} input', i, shape)
    _expect(math.prod(shape) == sizes[i] and
            math.prod(layer.out_shape()) == sizes[i + 1], path,
            'convolution {} maps {} values to {}, not sizes {} to {}', i,
            math.prod(shape), math.prod(layer.out_shape()), sizes[i],
            sizes[i + 1])


def _network(archive, path):
    meta = _meta(archive, path)
    sizes = meta['sizes']
    shape = PackedNetwork(meta, None, None, None, None).row_shape
    weights = [
        _array(archive, path, 'W{}'.format(i), numpy.uint64,
               (shape(i)[0], words(shape(i)[1])))
        for i in range(len(sizes) - 1)]
    thresholds = [
        _array(archive, path, 'T{}'.format(i), numpy.int32,
               (shape(i)[0],)) for i in range(len(sizes) - 2)]
    flips = [
        _array(archive, path, 'flip{}'.format(i), numpy.bool_,
               (shape(i)[0],)) for i in range(len(sizes) - 2)]
    last = {name: _array(archive, path, name, numpy.float32,
                         (sizes[-1],))
            for name in LAST_LAYER_KEYS}
    return PackedNetwork(meta, weights, thresholds, flips, last)


_NOT_AN_ARCHIVE = ('{} is not a packed network (not an .npz archive: {}); '
                   'write one with export.py.')
_CORRUPT = '{} is corrupt ({}); export it again.'


def _unreadable(path, error, message, why='{}'):
    """What to raise for ``error``, raised while ``path`` was read: a
    :class:`MemoryError` as it is, the machine's :class:`OSError` as a
    file that cannot be read, and anything else that damaged bytes make
    NumPy or zipfile raise as ``message``."""
    if isinstance(error, MemoryError):
        return error
    if isinstance(error, OSError) and not safe_npz.is_damage(error):
        return errors.PackedFormatError('cannot read {}: {}.'.format(
            path, error.strerror or error))
    return errors.PackedFormatError(message.format(
        path, why.format(safe_npz.describe(error))))


def _read(f, path):
    try:
        archive = safe_npz.open_archive(f)
    except safe_npz.SingleArray:
        raise errors.PackedFormatError(
            '{} is a single array, not a packed network; write one with '
            'export.py.'.format(path))
    except safe_npz.NotAnArchive as e:
        raise errors.PackedFormatError(_NOT_AN_ARCHIVE.format(path, e))
    except Exception as e:  # its zip directory is damaged
        raise _unreadable(path, e, _NOT_AN_ARCHIVE, 'damaged: {}')
    with archive:
        try:
            return _network(archive, path)
        except errors.Error:
            raise
        except Exception as e:
            raise _unreadable(path, e, _CORRUPT)


def load(path):
    """Reads and checks a packed file. Only a regular file is opened (a
    FIFO or a device is refused before anything waits on it), and every
    member is checked from its header against the metadata, and against
    the bytes the file holds, before its data is read.

    Raises:
        errors.PackedFormatError: ``path`` is missing, not a regular file,
            not an ``.npz`` archive, written by another format version, or
            damaged, or its arrays do not have the shapes its metadata
            gives; one line naming it.
    """
    try:
        os.stat(path)
    except FileNotFoundError:
        raise errors.PackedFormatError(
            'cannot read {}: it does not exist; give a file that export.py '
            'wrote.'.format(path))
    except OSError:
        pass  # open_regular says what it is
    with untrusted_file.open_regular(path, errors.PackedFormatError) as f:
        return _read(f, path)
