"""summary.py: every column of the summary, on small models counted here
by hand; the layer sizes against a built model's; the bit width of every
quantizer against the values it outputs."""
import json
import os
import tracemalloc

import numpy
import pytest

import chainer
import chainer.functions as F

import helpers
from quantized_net import errors
from quantized_net.quantization import quantizers
from quantized_net.training import datasets
from quantized_net.training import presets
from quantized_net.training import summary
from quantized_net.training.summary import Layer


def config(name, **changes):
    return dict(presets.PRESETS[name], preset=name, **changes)


#: The bnn preset's MLP at 784-3x2-10: sign weights and activations,
#: float32 input.
MLP = config('bnn', unit=3, layers=2)
#: A binarized ConvNet: 4 filters of 3 x 3, pooled 2 x 2, 8 units.
CONV = config('bnn-conv', architecture='4C3-P2-8FC')


@pytest.mark.parametrize('spec,bits', [
    ('none', 32), ('sign', 1), ('stochastic', 1), ('linear:1', 1),
    ('linear:2', 2), ('linear:16', 16), ('log:2', 2), ('log:4', 4),
    ('log:8:0.5', 8), ('seed', 9)])
def test_quantizer_bits(spec, bits):
    assert summary.quantizer_bits(spec) == bits
    assert summary.quantizer_bits(quantizers.parse(spec)) == bits


@pytest.mark.parametrize('spec', ['sign', 'linear:1', 'linear:2', 'linear:5',
                                  'log:2', 'log:4', 'log:6:4'])
def test_a_quantizer_outputs_no_more_levels_than_its_bits_hold(spec):
    with chainer.using_config('train', False):
        out = quantizers.parse(spec)(helpers.kernel_inputs())
    levels = numpy.unique(out[numpy.isfinite(out)])
    bits = summary.quantizer_bits(spec)
    # The bits are needed: more levels than one bit fewer holds.
    assert 2 ** (bits - 1) < len(levels) <= 2 ** bits


def test_seed_takes_nine_bits():
    seed = quantizers.parse('seed')
    # Every finite value it outputs is 0 or +-2^e, e from 0 to -149 ...
    out = seed(helpers.kernel_inputs())
    out = numpy.abs(out[numpy.isfinite(out)]).astype(numpy.float64)
    mantissa, exponent = numpy.frexp(out[out != 0])
    assert set(mantissa) == {0.5}
    assert exponent.min() - 1 == -149 and exponent.max() - 1 == 0
    # ... and every one of those 301 levels is taken, as weights and
    # inputs, and 289 of them as activations: more than 8 bits hold.
    powers = numpy.ldexp(1.0, numpy.arange(-149, 1)).astype(numpy.float32)
    x = numpy.concatenate([powers, -powers, [0]]).astype(numpy.float32)
    assert len(numpy.unique(seed(x))) == 301
    assert len(numpy.unique(seed.activation(x * 64))) == 289
    assert 2 ** 8 < 289 and 301 <= 2 ** summary.SEED_BITS


def test_mlp_by_hand():
    # l1: 784 x 3 sign weights (2,352 bits = 294 B) and 3 x 3 floats
    # (bias, BN scale and shift: 36 B) on float32 pixels: 32-bit MACs.
    assert summary.layers(MLP) == [
        Layer('l1', 'linear', 32, 1, (3,), {1: 2352, 32: 9}, 294 + 36,
              {32: 2352}),
        Layer('l2', 'linear', 1, 1, (3,), {1: 9, 32: 9}, 2 + 36, {1: 9}),
        Layer('l3', 'linear', 1, 1, (10,), {1: 30, 32: 30}, 4 + 120,
              {1: 30})]
    total = summary.totals(summary.layers(MLP))
    assert total == {
        'params': 2439, 'params_by_bits': {1: 2391, 32: 48}, 'size': 492,
        'float32_size': 9756, 'compression': 9756 / 492, 'macs': 2391,
        'macs_by_bits': {1: 39, 32: 2352}, 'binary_share': 39 / 2391}
    assert total['params'] == presets.parameter_count(MLP)


def test_mlp_table():
    assert summary.table(MLP) == [
        'model: preset bnn, mnist 1x28x28, 2 x 3 units, htanh',
        'quantizers: weight sign, activation sign, input none',
        '',
        'layer  kind    in bits  output  1-bit params  32-bit params  '
        'memory  1-bit MACs  32-bit MACs',
        '-----  ------  -------  ------  ------------  -------------  '
        '------  ----------  -----------',
        'l1     linear       32       3         2,352              9   '
        '330 B           0        2,352',
        'l2     linear        1       3             9              9    '
        '38 B           9            0',
        'l3     linear        1      10            30             30   '
        '124 B          30            0',
        '-----  ------  -------  ------  ------------  -------------  '
        '------  ----------  -----------',
        'total                                  2,391             48   '
        '492 B          39        2,352',
        '',
        'parameters            2,439 (2,391 1-bit, 48 32-bit)',
        'model size            492 B at the widths above',
        'float32 equivalent    9.53 KiB',
        'compression ratio     19.83x',
        'multiply-adds         2,391',
        'binary multiply-adds  39 (1.63%: 1-bit inputs x 1-bit weights)',
        "l1's input: the images as float32 (input quantizer none); the "
        'pixels themselves are 8-bit']
    assert summary.totals_line(MLP) == (
        '# model: 2,439 parameters (2,391 1-bit, 48 32-bit), 492 B (9.53 '
        'KiB as float32, compression 19.83x); 2,391 multiply-adds, 1.63% '
        'binary')


def test_conv_net_by_hand():
    # l1: 4 filters of 1 x 3 x 3 over 28 x 28 (padded): 4 * 9 * 784
    # float32-by-1-bit MACs; pooled to 4 x 14 x 14, 784 values for l2.
    layers = summary.layers(CONV)
    assert layers == [
        Layer('l1', 'conv', 32, 1, (4, 14, 14), {1: 36, 32: 12}, 5 + 48,
              {32: 28224}),
        Layer('l2', 'linear', 1, 1, (8,), {1: 6272, 32: 24}, 784 + 96,
              {1: 6272}),
        Layer('l3', 'linear', 1, 1, (10,), {1: 80, 32: 30}, 10 + 120,
              {1: 80})]
    assert summary.totals(layers) == {
        'params': 6454, 'params_by_bits': {1: 6388, 32: 66}, 'size': 1063,
        'float32_size': 25816, 'compression': 25816 / 1063, 'macs': 34576,
        'macs_by_bits': {1: 6352, 32: 28224}, 'binary_share': 6352 / 34576}
    assert presets.parameter_count(CONV) == 6454
    table = summary.table(CONV)
    assert table[0] == 'model: preset bnn-conv, mnist 1x28x28, 4C3-P2-8FC, '\
        'htanh'
    assert table[3:8] == [
        'layer  kind    in bits   output  1-bit params  32-bit params    '
        'memory  1-bit MACs  32-bit MACs',
        '-----  ------  -------  -------  ------------  -------------  '
        '--------  ----------  -----------',
        'l1     conv         32  4x14x14            36             12      '
        '53 B           0       28,224',
        'l2     linear        1        8         6,272             24     '
        '880 B       6,272            0',
        'l3     linear        1       10            80             30     '
        '130 B          80            0']
    assert table[9] == (
        'total                                   6,388             66  '
        '1.04 KiB       6,352       28,224')
    assert table[11:18] == [
        'parameters            6,454 (6,388 1-bit, 66 32-bit)',
        'model size            1.04 KiB at the widths above',
        'float32 equivalent    25.21 KiB',
        'compression ratio     24.29x',
        'multiply-adds         34,576',
        'binary multiply-adds  6,352 (18.37%: 1-bit inputs x 1-bit weights)',
        "l1's input: the images as float32 (input quantizer none); the "
        'pixels themselves are 8-bit']


def test_log_and_linear_mlp_by_hand():
    # 4-bit log weights, 2-bit activations: 4-bit MACs past the first
    # layer, which takes float32 pixels.
    mlp = config('float', weight_quant='log:4', act_quant='linear:2',
                 unit=5, layers=1)
    layers = summary.layers(mlp)
    assert layers == [
        Layer('l1', 'linear', 32, 4, (5,), {4: 3920, 32: 15},
              3920 // 2 + 60, {32: 3920}),
        Layer('l2', 'linear', 2, 4, (10,), {4: 50, 32: 30}, 25 + 120,
              {4: 50})]
    assert summary.totals(layers) == {
        'params': 4015, 'params_by_bits': {4: 3970, 32: 45}, 'size': 2165,
        'float32_size': 16060, 'compression': 16060 / 2165, 'macs': 3970,
        'macs_by_bits': {4: 50, 32: 3920}, 'binary_share': 0.0}
    assert summary.table(mlp)[3:5] == [
        'layer  kind    in bits  output  4-bit params  32-bit params    '
        'memory  4-bit MACs  32-bit MACs',
        '-----  ------  -------  ------  ------------  -------------  '
        '--------  ----------  -----------']


def test_log_and_linear_conv_net_by_hand():
    # 2-bit weights against 4-bit log inputs and activations: every MAC
    # 4-bit; two stages of 3 x 3 convolutions, each pooled 2 x 2.
    conv = config('bnn-conv', architecture='2C3-P2-4C3-P2-6FC',
                  weight_quant='linear:2', act_quant='log:4',
                  input_quant='log:4')
    layers = summary.layers(conv)
    assert layers == [
        Layer('l1', 'conv', 4, 2, (2, 14, 14), {2: 18, 32: 6}, 5 + 24,
              {4: 2 * 9 * 784}),
        Layer('l2', 'conv', 4, 2, (4, 7, 7), {2: 72, 32: 12}, 18 + 48,
              {4: 4 * 2 * 9 * 196}),
        Layer('l3', 'linear', 4, 2, (6,), {2: 1176, 32: 18}, 294 + 72,
              {4: 1176}),
        Layer('l4', 'linear', 4, 2, (10,), {2: 60, 32: 30}, 15 + 120,
              {4: 60})]
    assert summary.totals(layers) == {
        'params': 1392, 'params_by_bits': {2: 1326, 32: 66}, 'size': 596,
        'float32_size': 5568, 'compression': 5568 / 596, 'macs': 29460,
        'macs_by_bits': {4: 29460}, 'binary_share': 0.0}
    table = summary.table(conv)
    assert table[1] == 'quantizers: weight linear:2, activation log:4, '\
        'input log:4'
    assert table[5] == ('l1     conv          4  2x14x14            18    '
                        '          6    29 B      14,112')
    # The input is quantized: no note on float32 pixels.
    assert table[-1] == 'binary multiply-adds  0 (0.00%: 1-bit inputs x '\
        '1-bit weights)'


def test_float_by_hand():
    mlp = config('float', unit=4, layers=1)
    layers = summary.layers(mlp)
    assert layers == [
        Layer('l1', 'linear', 32, 32, (4,), {32: 3148}, 4 * 3148,
              {32: 3136}),
        Layer('l2', 'linear', 32, 32, (10,), {32: 70}, 280, {32: 40})]
    total = summary.totals(layers)
    assert (total['size'], total['float32_size'], total['compression'],
            total['binary_share']) == (12872, 12872, 1.0, 0.0)
    assert summary.table(mlp)[3] == (
        'layer  kind    in bits  output  32-bit params     memory  '
        '32-bit MACs')
    assert summary.totals_line(mlp) == (
        '# model: 3,218 parameters (3,218 32-bit), 12.57 KiB (12.57 KiB as '
        'float32, compression 1.00x); 3,176 multiply-adds, 0.00% binary')


def test_seed_preset():
    seed = config('seed')
    layers = summary.layers(seed)
    assert [(layer.input_bits, layer.weight_bits, layer.params,
             layer.memory, layer.macs) for layer in layers] == [
        (9, 9, {9: 784000, 32: 3000}, 784000 * 9 // 8 + 12000,
         {9: 784000}),
        (9, 9, {9: 10 ** 6, 32: 3000}, 10 ** 6 * 9 // 8 + 12000,
         {9: 10 ** 6}),
        (9, 9, {9: 10000, 32: 30}, 10000 * 9 // 8 + 120, {9: 10000})]


@pytest.mark.parametrize('changes', [
    dict(preset='bnn-conv', width=0.125),
    # Even kernels: one more row and column than the input.
    dict(preset='bnn-conv', architecture='3C2-5C2-P2-5FC'),
    dict(preset='bnn-conv', architecture='8C5-P2-16C3-P2-32FC-16FC'),
    dict(preset='seed', unit=7, layers=3)])
def test_the_sizes_are_those_of_the_built_model(changes):
    name = changes.pop('preset')
    described = config(name, **changes)
    model = presets.build_classifier(described).predictor
    h = numpy.zeros((1,) + datasets.image_shape(described),
                    numpy.float32)
    if presets.architecture(described) is None:
        h = h.reshape(1, -1)
        layers = [(link, bn, 0) for link, bn in model.layers()]
    else:
        layers = model.layers()
    summarised = summary.layers(described)
    assert len(summarised) == len(layers)
    with chainer.using_config('train', False):
        for layer, (link, bn, pool) in zip(summarised, layers):
            h = link(h)
            field = link.W.size // link.W.shape[0]
            assert sum(layer.macs.values()) == h.size * field, layer.name
            if pool:
                h = F.max_pooling_2d(h, pool, stride=pool)
            assert layer.output == h.shape[1:], layer.name
            assert sum(layer.params.values()) == sum(
                p.size for p in list(link.params()) + list(bn.params()))
            assert layer.params[layer.weight_bits] == link.W.size
            h = bn(h)


def test_the_widest_network_is_summarised_without_being_built():
    wide = config('bnn', unit=8192, layers=3)
    tracemalloc.start()
    try:
        total = summary.totals(summary.layers(wide))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total['params'] == presets.parameter_count(wide) == 140795934
    assert peak < 1 << 20


def test_as_json():
    described = summary.as_json(CONV)
    assert json.loads(json.dumps(described)) == described
    assert described['config'] == CONV
    assert described['layers'][0] == {
        'name': 'l1', 'kind': 'conv', 'input_bits': 32, 'weight_bits': 1,
        'output': [4, 14, 14], 'params': {'1': 36, '32': 12}, 'memory': 53,
        'macs': {'32': 28224}}
    assert described['totals'] == {
        'params': 6454, 'params_by_bits': {'1': 6388, '32': 66},
        'size': 1063, 'float32_size': 25816, 'compression': 25816 / 1063,
        'macs': 34576, 'macs_by_bits': {'1': 6352, '32': 28224},
        'binary_share': 6352 / 34576}


def test_print_summary(capsys):
    summary.print_summary(MLP)
    assert capsys.readouterr().out == '\n'.join(summary.table(MLP)) + '\n'
    summary.print_summary(MLP, json_output=True)
    assert json.loads(capsys.readouterr().out) == summary.as_json(MLP)


@pytest.mark.parametrize('size,text', [
    (0, '0 B'), (1023, '1023 B'), (1024, '1.00 KiB'), (9756, '9.53 KiB'),
    (3 << 20, '3.00 MiB'), (5 << 30, '5.00 GiB'), (1 << 50, '1048576.00 GiB')])
def test_size_text(size, text):
    assert summary.size_text(size) == text


def test_recorded_config(tmp_path):
    out = str(tmp_path)
    with open(os.path.join(out, 'args.json'), 'w') as f:
        json.dump({'config': CONV, 'seed': 1}, f)
    assert summary.recorded_config(out) == CONV


@pytest.mark.parametrize('make,message', [
    (None, 'is not a directory (it does not exist); give the --out '
     'directory of a train_mnist.py run.'),
    (lambda out: os.mkdir(out), 'args.json does not exist.'),
    (lambda out: os.mkfifo(out), 'is not a directory (it is a FIFO)'),
    (lambda out: (os.mkdir(out), os.mkfifo(os.path.join(out, 'args.json'))),
     'args.json is a FIFO, not a regular file; give a file.'),
    (lambda out: write(out, 'not json'), 'args.json is not a configuration '
     'written by train_mnist.py: Expecting value'),
    (lambda out: write(out, json.dumps({'config': dict(MLP, unit=0)})),
     'args.json is not a configuration written by train_mnist.py (unit is '
     '0; it must be an integer from 1 to 8192).')])
def test_recorded_config_errors(tmp_path, make, message):
    out = str(tmp_path / 'out')
    if make:
        make(out)
    with pytest.raises(errors.ResultError) as raised:
        summary.recorded_config(out)
    assert message in str(raised.value)


def write(out, text):
    os.mkdir(out)
    with open(os.path.join(out, 'args.json'), 'w') as f:
        f.write(text)


def test_every_preset_counts_what_parameter_count_counts():
    for name in presets.PRESETS:
        described = config(name)
        assert summary.totals(summary.layers(described))['params'] == \
            presets.parameter_count(described)
        assert sum(layer.memory for layer in summary.layers(
            described)) == summary.totals(summary.layers(described))['size']
