"""Folding a trained binarized MLP or ConvNet into a packed network.

The model must binarize its weights and activations (``--preset bnn``, or
weight and activation quantizers ``sign`` with ``--activation htanh``) and
take the images as they are (``--input-quant none``). Its weights become
bits (32 per float32 they replace), and each hidden layer's bias, batch
normalisation and sign become one integer threshold and a flip per unit
(:func:`packed_format.unit_fires`). The thresholds are not derived from a
formula but found by evaluating the model's own batch normalisation links
on the integers around them (:func:`fold_sign`), so a unit of the packed
network fires exactly where the Chainer model's unit fires for the same
integer dot product. The last layer keeps its batch normalisation as
float32 arithmetic, so the logits, and the class chosen among equal
logits, are Chainer's too.

The first layer takes the 8-bit pixels :math:`p \\in \\{0..255\\}`:
the trained network saw :math:`x = \\alpha p + \\beta` (``scale`` and
``offset`` in the metadata: :math:`2/255, -1` with centred inputs), so its
pre-activation is :math:`\\alpha d + \\beta \\sum_k w_k` with
:math:`d = \\sum_k w_k p_k`, an integer, and the threshold is again on
:math:`d`. Chainer computes that sum in float32, whose rounding
(about 1e-5) can tip a unit whose pre-activation is that close to its
threshold; ``infer_packed.py --compare`` counts whether any label changes.

A ConvNet's convolutions fold the same way, per filter: the max-pooling
that follows a convolution in training comes before its normalisation,
and a unit of a monotonic step function of the pooled maximum fires where
the step function of any one of the window's sums does (or, flipped, of
none). The first convolution takes :math:`d = \\sum_k w_k (a p_k + b)`,
the network's input times 255 (:data:`packed_format.PIXEL_VALUES`), whose
zero padding is the trained network's.
"""
import hashlib
import math

import numpy

import chainer

from quantized_net.packed import format as packed_format
from quantized_net.training.mnist import PIXEL_MAX
from quantized_net.quantization import quantizers
from quantized_net import errors
from quantized_net import untrusted_file


#: What a packed network needs of the configuration.
BINARIZED = {'act_quant': 'sign', 'activation': 'htanh',
             'input_quant': 'none', 'weight_quant': 'sign'}


def check_binarized(config):
    """Raises errors.ExportError unless ``config`` describes a network
    that is binary from the first layer's output to the logits: weight and
    activation quantizers that compute
    :func:`~quantized_net.quantization.kernels.sign` at test time
    (``sign``, ``linear:1``, ``stochastic``), hard-tanh units, the images
    taken as they are."""
    wrong = ['{} is {!r}'.format(key, config.get(key))
             for key, wanted in sorted(BINARIZED.items())
             if not _is(config.get(key), wanted)]
    if wrong:
        raise errors.ExportError(
            'only a binarized network can be packed (weight and activation '
            'quantizers sign, activation htanh, input quantizer none, as in '
            '--preset bnn); this one has {}.'.format(', '.join(wrong)))


def _is(value, wanted):
    if value == wanted:
        return True
    if wanted != 'sign':
        return False
    try:
        return quantizers.parse(value).is_sign_at_test_time
    except ValueError:
        return False


def input_map(config):
    """``(scale, offset)``: the network's input is ``scale * p + offset``
    for pixel value ``p`` in 0..255."""
    if config['centered_input']:
        return 2.0 / PIXEL_MAX, -1.0
    return 1.0 / PIXEL_MAX, 0.0


def fold_sign(bn, bias, pre_activation, low, high):
    """Per-unit thresholds ``T`` and flips of ``sign(BN(pre + bias))``.

    ``pre_activation(d)`` maps an int64 vector (one integer per unit) to
    the units' float32 pre-activations; it must be non-decreasing in ``d``.
    The result satisfies ``fires(d) == unit_fires(d, T, flip)``
    (:func:`packed_format.unit_fires`) for every integer
    ``low <= d <= high``: ``flip`` is whether the unit fires at
    ``low``, and ``T`` the least ``d`` where that changes (``high + 1`` if
    it never does). Found by bisection: batch normalisation and float32
    rounding are monotonic, so each unit changes at most once.

    Args:
        bn (chainer.links.BatchNormalization): The layer's normalisation.
        bias (numpy.ndarray): The linear layer's float32 bias.
        pre_activation (callable): ``d -> pre-activation``, vectorised.
        low (int): Smallest ``d`` the layer can produce.
        high (int): Largest ``d`` the layer can produce.

    Returns:
        tuple: ``(T, flip)``, int32 and bool vectors.
    """
    n = len(bias)

    def fires(d):
        # sign(clip(BN(pre + bias))) == +1, as the model computes it.
        y = pre_activation(d).astype(numpy.float32)[None, :] + bias
        with chainer.using_config('train', False):
            return bn(y).array[0] >= 0

    flip = fires(numpy.full(n, low, numpy.int64))
    # Invariant: fires(lo) == flip, and fires(hi) != flip or hi == high + 1.
    lo = numpy.full(n, low, numpy.int64)
    hi = numpy.full(n, high + 1, numpy.int64)
    active = hi - lo > 1
    while active.any():
        mid = (lo + hi) // 2
        changed = fires(mid) != flip
        hi = numpy.where(active & changed, mid, hi)
        lo = numpy.where(active & ~changed, mid, lo)
        active = hi - lo > 1
    return hi.astype(numpy.int32), flip


def last_layer(bn, bias):
    """The last layer's float32 vectors, as Chainer's CPU code uses them."""
    inv_std = numpy.sqrt(numpy.reciprocal(bn.avg_var + numpy.float32(bn.eps)),
                         dtype=numpy.float32)
    return {'bias': bias, 'mean': bn.avg_mean.copy(),
            'inv_std': inv_std.astype(numpy.float32),
            'gamma': bn.gamma.array.copy(), 'beta': bn.beta.array.copy()}


def fingerprint(path):
    """The SHA-256 of the bytes of the model file ``path``, in hex: what a
    packed network records as its ``source``, so that a later export of
    the same model knows the file as its own.

    Raises:
        errors.ResultError: ``path`` is not a regular file, or cannot be
            read; one line naming it.
    """
    digest = hashlib.sha256()
    with untrusted_file.open_regular(path, errors.ResultError) as f:
        try:
            for block in iter(lambda: f.read(2 ** 20), b''):
                digest.update(block)
        except OSError as e:
            raise errors.ResultError('cannot read {}: {}.'.format(
                path, e.strerror or e))
    return digest.hexdigest()


def source_of(network):
    """The model fingerprint that ``network`` (a
    :class:`packed_format.PackedNetwork`) records, or None: one exported
    before fingerprints were recorded, or metadata that holds no
    string there."""
    source = network.meta.get('source')
    return source if isinstance(source, str) else None


def _layers(predictor):
    """``[(weights link, BatchNormalization, pooling size or 0)]`` of an
    MLP or a ConvNet, input to output."""
    return [tuple(layer) + (0,) * (3 - len(layer))
            for layer in predictor.layers()]


def _convolution(link, pool, in_shape):
    """The :class:`packed_format.Convolution` of a trained convolution
    link on inputs of ``in_shape``."""
    filters, channels, kh, kw = link.W.shape
    if (kh != kw or link.stride[0] != link.stride[1] or
            link.pad[0] != link.pad[1] or channels != in_shape[0]):
        raise errors.ExportError(
            'the packed engine runs square filters with the same stride and '
            'padding along both axes; this layer has {}x{} filters, stride '
            '{} and padding {}.'.format(kh, kw, link.stride, link.pad))
    return packed_format.Convolution(
        in_shape=tuple(in_shape), filters=filters, ksize=kh,
        stride=link.stride[0], pad=link.pad[0], pool=pool)


def export(model, config, source=None):
    """The :class:`packed_format.PackedNetwork` of a trained classifier.

    Args:
        model (chainer.links.Classifier): A binarized MLP or ConvNet built
            from ``config`` (see :func:`check_binarized`), on the CPU.
        config (dict): Its configuration, as ``args.json`` holds it.
        source (str): The :func:`fingerprint` of the model's file, to
            record in the metadata; None records none.
    """
    check_binarized(config)
    predictor = model.predictor
    layers = _layers(predictor)
    in_shape = getattr(predictor, 'in_shape', None)
    sizes = [layers[0][0].W.shape[1] if in_shape is None
             else math.prod(in_shape)]
    convolutions = []
    scale, offset = input_map(config)
    weights, thresholds, flips = [], [], []
    for i, (link, bn, pool) in enumerate(layers):
        with chainer.using_config('train', False):
            signs = link.weight_quant(link.W.array)
        signs = signs.reshape(len(signs), -1)
        if link.W.ndim == 4:
            conv = _convolution(link, pool, in_shape)
            convolutions.append(conv)
            in_shape = conv.out_shape()
            sizes.append(math.prod(in_shape))
        else:
            sizes.append(len(signs))
        weights.append(packed_format.pack_signs(signs))
        bias = (link.b.array.copy() if link.b is not None
                else numpy.zeros(len(signs), numpy.float32))
        if i == len(layers) - 1:
            last = last_layer(bn, bias)
            break
        k = signs.shape[1]
        if i == 0 and convolutions:
            # sum w (a p + b) over the taps inside the image: the
            # network's input times 255, so that its zero padding is 0.
            def pre_activation(d):
                return (d / PIXEL_MAX).astype(numpy.float32)
            low, high = -PIXEL_MAX * k, PIXEL_MAX * k
        elif i == 0:
            sign_sums = signs.sum(axis=1, dtype=numpy.float64)

            def pre_activation(d):
                return (scale * d + offset * sign_sums).astype(numpy.float32)
            low, high = -PIXEL_MAX * k, PIXEL_MAX * k
        else:
            def pre_activation(d):
                return d.astype(numpy.float32)
            low, high = -k, k
        t, flip = fold_sign(bn, bias, pre_activation, low, high)
        thresholds.append(t)
        flips.append(flip)
    pixels = {'pixels': '8-bit, 0-255', 'scale': scale, 'offset': offset}
    meta = dict(
        packed_format.LAYOUT,
        format=packed_format.FORMAT,
        version=packed_format.VERSION,
        sizes=sizes,
        input=pixels,
        quantizers={key: config[key] for key in (
            'input_quant', 'weight_quant', 'act_quant')},
        config=config,
    )
    if convolutions:
        pixels['value'] = '2p - 255' if offset else 'p'
        meta['convolutions'] = [conv.to_meta() for conv in convolutions]
    if source is not None:
        meta['source'] = source
    return packed_format.PackedNetwork(meta, weights, thresholds, flips, last)
