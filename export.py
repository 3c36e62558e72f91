#!/usr/bin/env python3
"""Exports a trained binarized MLP to a packed file for infer_packed.py.

    ./export.py result                  # writes result/model.packed.npz
    ./export.py result -o bnn.packed.npz

The model must binarize its weights and activations (``--preset bnn``, or
``--weight-quant sign --act-quant sign --activation htanh``) and take the
images as they are (``--input-quant none``). Its weights become bits (32
per float32 they replace), and each hidden layer's bias, batch
normalisation and sign become one integer threshold per unit: a unit is +1
exactly when

.. math::

    \\mathrm{BN}(d + b) \\ge 0 \\iff (d \\ge T) \\oplus \\mathrm{flip},

with :math:`d` the integer dot product of the layer's input with the unit's
weight signs. ``flip`` is set where the batch normalisation's scale is
negative (it reverses the order). The thresholds are not derived from a
formula but found by evaluating the model's own batch normalisation links
on the integers around them, so a unit of the packed network fires exactly
where the Chainer model's unit fires for the same integer :math:`d`. The
last layer keeps its batch normalisation as float32 arithmetic, so the
logits, and the class chosen among equal logits, are Chainer's too.

The first layer takes the 8-bit pixels :math:`p \\in \\{0..255\\}`:
the trained network saw :math:`x = \\alpha p + \\beta` (``scale`` and
``offset`` in the metadata: :math:`2/255, -1` with centred inputs), so its
pre-activation is :math:`\\alpha d + \\beta \\sum_k w_k` with
:math:`d = \\sum_k w_k p_k`, an integer, and the threshold is again on
:math:`d`. Chainer computes that sum in float32, whose rounding
(about 1e-5) can tip a unit whose pre-activation is that close to its
threshold; ``infer_packed.py --compare`` counts whether any label changes.
"""
import argparse
import os
import sys

import numpy

import chainer_compat  # noqa: F401  (before chainer: NumPy 2)
import chainer

import packed_format
from packed_format import PIXEL_MAX
from evaluate import load_model
from train_mnist import UsageError

PROG = 'export.py'


class ExportError(UsageError):
    """The model cannot be packed; the message says why."""


def check_binarized(config):
    """Raises ExportError unless ``config`` describes a network that is
    binary from the first layer's output to the logits."""
    wanted = {'weight_quant': 'sign', 'act_quant': 'sign',
              'activation': 'htanh', 'input_quant': 'none'}
    wrong = ['{} is {!r}'.format(key, config.get(key))
             for key, value in sorted(wanted.items())
             if config.get(key) != value]
    if wrong:
        raise ExportError(
            'only a binarized network can be packed (weight and activation '
            'quantizers sign, activation htanh, input quantizer none, as in '
            '--preset bnn); this one has {}.'.format(', '.join(wrong)))


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
    The result satisfies ``fires(d) == ((d >= T) != flip)`` for every
    integer ``low <= d <= high``: ``flip`` is whether the unit fires at
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


def export(model, config):
    """The :class:`packed_format.PackedNetwork` of a trained classifier.

    Args:
        model (chainer.links.Classifier): A binarized model built from
            ``config`` (see :func:`check_binarized`), on the CPU.
        config (dict): Its configuration, as ``args.json`` holds it.
    """
    check_binarized(config)
    mlp = model.predictor
    links = mlp.linear_layers()
    sizes = [links[0].W.shape[1]] + [link.W.shape[0] for link in links]
    scale, offset = input_map(config)
    weights, thresholds, flips = [], [], []
    for i, link in enumerate(links):
        signs = link.weight_quant(link.W.array)
        weights.append(packed_format.pack_signs(signs))
        bias = (link.b.array.copy() if link.b is not None
                else numpy.zeros(sizes[i + 1], numpy.float32))
        bn = getattr(mlp, 'b{}'.format(i + 1))
        if i == len(links) - 1:
            last = last_layer(bn, bias)
            break
        k = sizes[i]
        if i == 0:
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
    meta = {
        'format': packed_format.FORMAT,
        'version': packed_format.VERSION,
        'sizes': sizes,
        'input': {'pixels': '8-bit, 0-255', 'scale': scale,
                  'offset': offset},
        'bit_order': 'element k of a row is bit k % 64 (least significant '
                     'first) of word k // 64; 1 means +1, 0 means -1',
        'padding': 'rows padded with 0 bits to whole 64-bit words',
        'hidden_unit': '+1 iff (d >= T) != flip, d the integer dot product',
        'last_layer': '((d + bias - mean) * inv_std) * gamma + beta, '
                      'float32, in this order; class = first argmax',
        'quantizers': {key: config[key] for key in (
            'input_quant', 'weight_quant', 'act_quant')},
        'config': config,
    }
    return packed_format.PackedNetwork(meta, weights, thresholds, flips, last)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Pack a trained binarized MLP into 1-bit '
                               'weights and integer thresholds')
    parser.add_argument('result', help='Output directory of train_mnist.py '
                                       '(holding args.json and model.npz)')
    parser.add_argument('--out', '-o', default=None,
                        help='Packed file to write (default: '
                             'RESULT/model.packed.npz)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    out = args.out or os.path.join(args.result, 'model.packed.npz')
    try:
        model, config = load_model(args.result)
        network = export(model, config)
        save_dir = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(save_dir):
            raise UsageError('cannot write {}: directory {} does not '
                             'exist.'.format(out, save_dir))
        packed_format.save(out, network)
    except UsageError as e:
        sys.exit('{}: error: {}'.format(PROG, e))
    float_bytes = sum(link.W.array.nbytes
                      for link in model.predictor.linear_layers())
    print('wrote {} ({} bytes): layers {}'.format(
        out, os.path.getsize(out), ' - '.join(map(str, network.sizes))))
    print('weights: {} bytes packed, {} bytes as float32 ({:.1f}x '
          'smaller)'.format(network.weight_bytes(), float_bytes,
                            float_bytes / network.weight_bytes()))


if __name__ == '__main__':
    main()
