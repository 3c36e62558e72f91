"""What a configuration costs, before anything is trained: per layer of
weights, the precision of its input, its output shape, its parameters by
bit width, their memory and its multiply-adds by precision; and the
totals: the model's size at its quantized widths against float32, and the
share of its multiply-adds that is binary (after Larq's
``lq.models.summary``).

Everything is counted from the configuration's sizes alone
(:func:`presets.layer_shapes`), nothing built, so that the paper's
3 x 4096-unit MLP is summarised as fast as a small one.

The bit width of each quantizer spec (:func:`quantizer_bits`):

============================  ====  =========================================
spec                          bits  why
============================  ====  =========================================
``sign``, ``stochastic``      1     two levels, -1 and +1
``linear:K``                  K     2^K levels (``linear:1`` is ``sign``)
``log:K[:FSR]``               K     a sign and a (K-1)-bit code, one code 0
``seed``                      9     a sign and float32's 8-bit exponent:
                                    ``clip(AP2(x), -1, 1)`` takes 0 and
                                    +-2^e for e from 0 down to -149 (the
                                    subnormals), 301 levels; 289 as an
                                    activation (divided by 64); more than
                                    2^8, at most 2^9
``none``                      32    float32
============================  ====  =========================================

The precision of a layer's input is that of the network input's
quantizer for the first layer (``none``: 32, the float32 the network
computes on, though MNIST's pixels are 8-bit: the packed engine takes those
8 bits, the Chainer model their float32 values), and the activation
quantizer's for every later one (``relu(q(x))`` and
``q(clip(x, -1, 1))`` alike: the units take the quantizer's levels). A
multiply-add's precision is the larger of its operands' (the layer's input
and its weights); it is binary when both are 1-bit.

Parameters are those a run trains, as :func:`presets.parameter_count`
counts them: each layer's weights, at the weight quantizer's width, and its
bias and its batch normalisation's scale and shift, at 32 bits.
"""
import collections
import json
import math

from quantized_net.quantization import quantizers
from quantized_net.training import datasets
from quantized_net.training import presets
from quantized_net.training import result_dir

#: The bits of an unquantized value: float32.
FLOAT_BITS = 32
#: The bits of a ``seed`` value, see the module's table.
SEED_BITS = 9
#: Parameters of a layer, per output unit or filter, kept at 32 bits: the
#: bias, and the batch normalisation's scale and shift.
FLOAT_PARAMETERS_PER_UNIT = 3


def quantizer_bits(spec):
    """The bits a value quantized by ``spec`` takes (the module's table).

    Args:
        spec (str or quantizers.Quantizer): A quantizer spec
            (:data:`quantizers.SPEC_FORMS`).

    Returns:
        int: 1 to 32.

    Raises:
        ValueError: ``spec`` is not a quantizer spec.
    """
    quantizer = quantizers.parse(spec)
    if isinstance(quantizer, quantizers.Seed):
        return SEED_BITS
    if quantizer.levels is None:
        return FLOAT_BITS
    return max(1, math.ceil(math.log2(quantizer.levels)))


#: One layer of weights, summarised. ``params`` and ``macs`` map a bit
#: width to a count; ``output`` is the shape of one image's output, after
#: pooling; ``memory`` is in bytes.
Layer = collections.namedtuple('Layer', (
    'name', 'kind', 'input_bits', 'weight_bits', 'output', 'params',
    'memory', 'macs'))


def layers(config):
    """The layers of weights of the network ``config`` describes,
    summarised, input to output.

    Args:
        config (dict): A configuration (:mod:`presets`), checked.

    Returns:
        list of Layer: Named ``l1``, ``l2``, ... as the model names them.
    """
    weight_bits = quantizer_bits(config['weight_quant'])
    act_bits = quantizer_bits(config['act_quant'])
    summary = []
    for i, layer in enumerate(presets.network_layers(config), 1):
        shape, output = layer.weights, layer.output
        kind = 'conv' if len(shape) == 4 else 'linear'
        # Each value computed, before pooling, is one dot product.
        macs = math.prod(shape[1:]) * math.prod(layer.computed)
        input_bits = quantizer_bits(config['input_quant']) if i == 1 \
            else act_bits
        weights = math.prod(shape)
        floats = FLOAT_PARAMETERS_PER_UNIT * shape[0]
        params = collections.Counter({weight_bits: weights})
        params[FLOAT_BITS] += floats
        memory = -(-weights * weight_bits // 8) + floats * FLOAT_BITS // 8
        summary.append(Layer(
            'l{}'.format(i), kind, input_bits, weight_bits, output,
            dict(sorted(params.items())), memory,
            {max(input_bits, weight_bits): macs}))
    return summary


def totals(summary):
    """The totals of the layers ``summary`` (see :func:`layers`).

    The compression ratio is the float32 size over the quantized one:

    .. math::

        r = \\frac{32 \\sum_l P_l}{8 \\sum_l M_l}

    with :math:`P_l` the parameters of layer :math:`l` and :math:`M_l` its
    memory in bytes.

    Returns:
        dict: ``params`` (the count), ``params_by_bits`` (bit width to
        count), ``size`` (bytes at the quantized widths), ``float32_size``
        (bytes), ``compression`` (their ratio), ``macs`` (the count),
        ``macs_by_bits`` (precision to count), ``binary_share`` (of the
        multiply-adds, 0 to 1).
    """
    params = collections.Counter()
    macs = collections.Counter()
    for layer in summary:
        params.update(layer.params)
        macs.update(layer.macs)
    count = sum(params.values())
    size = sum(layer.memory for layer in summary)
    total_macs = sum(macs.values())
    return {
        'params': count, 'params_by_bits': dict(sorted(params.items())),
        'size': size, 'float32_size': count * FLOAT_BITS // 8,
        'compression': count * FLOAT_BITS / 8 / size,
        'macs': total_macs, 'macs_by_bits': dict(sorted(macs.items())),
        'binary_share': macs[1] / total_macs}


def number(count):
    """A count with thousands separated: ``2,352``."""
    return '{:,}'.format(count)


def size_text(size):
    """A number of bytes as one reads it: ``492 B``, ``9.53 KiB``,
    ``1.20 MiB``."""
    if size < 1024:
        return '{} B'.format(size)
    for unit in ('KiB', 'MiB', 'GiB'):
        size /= 1024
        if size < 1024 or unit == 'GiB':
            return '{:.2f} {}'.format(size, unit)


def shape_text(shape):
    """An output shape: ``64x14x14``, or ``512`` for units."""
    return 'x'.join(str(size) for size in shape)


def _by_bits(counts):
    return ', '.join('{} {}-bit'.format(number(count), bits)
                     for bits, count in counts.items())


def totals_line(config):
    """The totals of the network ``config`` describes, in one line, as a
    run prints them under its ``# unit`` or ``# layers`` line.

    Args:
        config (dict): A configuration (:mod:`presets`), checked.

    Returns:
        str: Such as ``# model: 2,439 parameters (2,391 1-bit, 48
        32-bit), 492 B (9.53 KiB as float32, compression 19.83x);
        2,391 multiply-adds, 1.63% binary``.
    """
    total = totals(layers(config))
    return ('# model: {} parameters ({}), {} ({} as float32, compression '
            '{:.2f}x); {} multiply-adds, {:.2%} binary'.format(
                number(total['params']), _by_bits(total['params_by_bits']),
                size_text(total['size']), size_text(total['float32_size']),
                total['compression'], number(total['macs']),
                total['binary_share']))


def describe(config):
    """The network ``config`` describes, in a few words: ``preset bnn,
    mnist 1x28x28, 3 x 4096 units, htanh``."""
    layers_text = presets.architecture(config)
    width = presets.with_defaults(config)['width']
    if layers_text is None:
        shape = '{} x {} units'.format(config['layers'],
                                       presets.hidden_units(config))
    else:
        shape = layers_text + ('' if width == 1 else
                               ' x {:g} wide'.format(width))
    return 'preset {}, {} {}, {}, {}'.format(
        config['preset'], datasets.name(config),
        shape_text(datasets.image_shape(config)), shape,
        config['activation'])


def table(config):
    """The summary of the network ``config`` describes, as the lines of an
    aligned table (one row per layer of weights, then a total row) and the
    totals under it.

    Args:
        config (dict): A configuration (:mod:`presets`), checked.

    Returns:
        list of str: The lines, without line ends.
    """
    summary = layers(config)
    total = totals(summary)
    param_bits = sorted(total['params_by_bits'])
    mac_bits = sorted(total['macs_by_bits'])
    head = (['layer', 'kind', 'in bits', 'output'] +
            ['{}-bit params'.format(bits) for bits in param_bits] +
            ['memory'] + ['{}-bit MACs'.format(bits) for bits in mac_bits])
    rows = [[layer.name, layer.kind, str(layer.input_bits),
             shape_text(layer.output)] +
            [number(layer.params.get(bits, 0)) for bits in param_bits] +
            [size_text(layer.memory)] +
            [number(layer.macs.get(bits, 0)) for bits in mac_bits]
            for layer in summary]
    foot = (['total', '', '', ''] +
            [number(total['params_by_bits'][bits]) for bits in param_bits] +
            [size_text(total['size'])] +
            [number(total['macs_by_bits'][bits]) for bits in mac_bits])
    widths = [max(len(row[i]) for row in [head] + rows + [foot])
              for i in range(len(head))]

    def line(cells):
        # Names and kinds read from the left, numbers from the right.
        return '  '.join(cell.ljust(width) if i < 2 else cell.rjust(width)
                         for i, (cell, width) in enumerate(
                             zip(cells, widths))).rstrip()
    rule = '  '.join('-' * width for width in widths)
    lines = ['model: {}'.format(describe(config)),
             'quantizers: weight {weight_quant}, activation {act_quant}, '
             'input {input_quant}'.format(**config), '',
             line(head), rule] + [line(row) for row in rows] + [
        rule, line(foot), '']
    binary = total['macs_by_bits'].get(1, 0)
    for key, value in (
            ('parameters', '{} ({})'.format(
                number(total['params']), _by_bits(total['params_by_bits']))),
            ('model size', '{} at the widths above'.format(
                size_text(total['size']))),
            ('float32 equivalent', size_text(total['float32_size'])),
            ('compression ratio', '{:.2f}x'.format(total['compression'])),
            ('multiply-adds', number(total['macs'])),
            ('binary multiply-adds', '{} ({:.2%}: 1-bit inputs x 1-bit '
                                     'weights)'.format(
                                         number(binary),
                                         total['binary_share']))):
        lines.append('{:<22}{}'.format(key, value))
    if quantizer_bits(config['input_quant']) == FLOAT_BITS:
        lines.append("l1's input: the images as float32 (input quantizer "
                     'none); the pixels themselves are 8-bit')
    return lines


def as_json(config):
    """The summary of the network ``config`` describes as a JSON object:
    ``config``, ``layers`` (each :class:`Layer`'s fields) and ``totals``
    (:func:`totals`); bit widths are keys, so strings."""
    def keyed(counts):
        return {str(bits): count for bits, count in counts.items()}
    summary = layers(config)
    total = totals(summary)
    return {
        'config': config,
        'layers': [dict(layer._asdict(), output=list(layer.output),
                        params=keyed(layer.params), macs=keyed(layer.macs))
                   for layer in summary],
        'totals': dict(total, params_by_bits=keyed(total['params_by_bits']),
                       macs_by_bits=keyed(total['macs_by_bits']))}


def print_summary(config, json_output=False):
    """Prints the summary of the network ``config`` describes: the table
    (:func:`table`) or, with ``json_output``, :func:`as_json` as JSON.

    Args:
        config (dict): A configuration (:mod:`presets`), checked.
        json_output (bool): Print JSON instead of the table.
    """
    if json_output:
        print(json.dumps(as_json(config), indent=1))
    else:
        print('\n'.join(table(config)))


def recorded_config(result):
    """The configuration a run recorded in its result directory
    ``result`` (its ``args.json``), checked as a run's is.

    Raises:
        errors.ResultError: ``result`` is not a directory, or its
            ``args.json`` is missing, unreadable or not a configuration a
            run can have.
    """
    result_dir.check_result(result)
    return result_dir.read_args(result, check=presets.check_config)[
        'config']
