"""benchmarks/packed.py: the rows are the engines and models they name,
timed side by side; the tables' columns follow from the times; the
ceilings run each form's inner loop."""
import numpy
import pytest

import chainer

import helpers
from quantized_net import cli
from quantized_net.benchmarks import packed as packed_bench
from quantized_net.packed import export as packed_export
from quantized_net.packed.kernels import cpu_features

CPU = chainer.get_device('@numpy')
needs_numba = pytest.mark.skipif(not cpu_features.HAVE_NUMBA,
                                 reason=cpu_features.NO_NUMBA)


@pytest.fixture(scope='module')
def network():
    return packed_export.export(*helpers.binarized_model(units=64))


def pixels(n):
    images, _ = helpers.synthetic_digits(n, seed=2)
    return images.reshape(n, -1)


@needs_numba
@pytest.mark.parametrize('simd', [None] + cpu_features.runnable_forms())
def test_the_rows_are_the_engines_and_the_chainer_models(network, simd):
    rows = packed_bench.engine_rows(network, CPU, simd)
    form = simd or cpu_features.best_form()
    assert [row.name for row in rows] == ['packed'] + (
        ['packed, scalar'] if form != 'scalar' else []) + [
        'blas', 'chainer, binarized', 'chainer, float']
    # 784 inputs pad to 832 bits: 13 words a row.
    packed_bytes = 8 * (64 * 13 + 64 * 1 + 10 * 1)
    float_bytes = 4 * (784 * 64 + 64 * 64 + 64 * 10)
    bias_and_bn = 4 * (64 + 64 + 10) * 3  # b, gamma, beta per layer
    assert [row.weight_bytes for row in rows] == [packed_bytes] * (
        len(rows) - 3) + [float_bytes] + [float_bytes + bias_and_bn] * 2
    labels = {row.name: row.classify(pixels(5)) for row in rows}
    for name in ('packed, scalar', 'blas'):  # the same network's labels
        numpy.testing.assert_array_equal(labels.get(name, labels['packed']),
                                         labels['packed'])


class Runner(object):
    """A row's classify that takes ``seconds`` of the fake clock a call
    and logs the batch sizes it was given."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds, self.batches = clock, seconds, []

    def __call__(self, pixels):
        self.batches.append(pixels.shape)
        self.clock.advance(self.seconds)


def fake_rows(clock):
    return [packed_bench.Row(name, Runner(clock, seconds), size)
            for name, seconds, size in (('packed', 0.001, 100),
                                        ('blas', 0.004, 3200))]


@pytest.mark.parametrize('seconds,calls', [(0.061, 5), (1e-6, 1),
                                           (100, 50)])
def test_a_batch_is_timed_side_by_side(fake_clock, seconds, calls):
    rows = fake_rows(fake_clock)
    medians = packed_bench.time_batch(rows, pixels(3), 7, seconds)
    assert medians == {'packed': pytest.approx(0.001),
                       'blas': pytest.approx(0.004)}
    for row in rows:
        assert set(row.classify.batches) == {(7, 784)}
    # A round of one call, then 3 rounds of seconds / 3 / 0.004 calls
    # (from 1 to 50), each call after a rest and 0.05 s of warm-up
    # calls: 13 of blas's 0.004 s.
    assert len(rows[1].classify.batches) == 14 + 3 * (13 + calls)


def test_the_batch_table_follows_from_the_times():
    rows = [packed_bench.Row('packed', None, 1264128),
            packed_bench.Row('blas', None, 40058880),
            packed_bench.Row('chainer, float', None, 40132728)]
    lines = packed_bench.batch_lines(rows, 100, {
        'packed': 0.001, 'blas': 0.016, 'chainer, float': 0.02})
    assert packed_bench.BATCH_HEADER[0].startswith('| batch | engine |')
    assert lines == [
        '| 100 | packed | 100000 | 16.00 | 1264128 | 31.7 |',
        '| 100 | blas | 6250 | 1.00 | 40058880 | 1.0 |',
        '| 100 | chainer, float | 5000 | 0.80 | 40132728 | 1.0 |']


def test_the_layer_table_follows_from_the_times():
    times = {'packed': [0.0002, 0.0004, 0.00001],
             'blas': [0.0024, 0.0064, 0.00005]}
    names = ['784-64', '64-64', '64-10']
    lines = packed_bench.layer_lines(
        names, 8, times, 'avx2', work=[2e6, 8 * 64 * 64, 8 * 64 * 10],
        ceiling=[2e11, 5e11, 5e11], threads=2)
    assert lines[:2] == ['Each layer alone, batch 8, avx2 kernels; '
                         'ceiling: the inner loop on one core, L1-resident',
                         '']
    assert lines[4:] == [
        '| 1 (784-64) | 0.200 | 2.400 | 12.00 | 5.0 | 200.0 | 2% |',
        '| 2 (64-64) | 0.400 | 6.400 | 16.00 | 0.0 | 500.0 | 0% |',
        '| 3 (64-10) | 0.010 | 0.050 | 5.00 | 0.3 | 500.0 | 0% |']
    on_gpu = packed_bench.layer_lines(names, 8, times)
    assert on_gpu[0] == 'Each layer alone, batch 8'
    assert on_gpu[4] == '| 1 (784-64) | 0.200 | 2.400 | 12.00 | - | - | - |'


@needs_numba
def test_the_first_layers_work_is_its_nonzero_pairs():
    batch = numpy.zeros((2, 784), numpy.uint8)
    batch[0, [0, 1, 5]] = 9  # pairs 0 and 2
    batch[1, 783] = 1  # pair 391
    network = packed_export.export(*helpers.binarized_model(units=64))
    network.sizes = [784, 64, 32, 10]
    assert packed_bench.layer_work(network, batch) == [
        2 * 3 * 64, 2 * 64 * 32, 2 * 32 * 10]


@needs_numba
def test_each_layer_alone(network):
    form = cpu_features.best_form()
    lines = packed_bench.layer_table(network, CPU, pixels(3), 4, form,
                                     settle=0, warm=0)
    assert lines[0].startswith('Each layer alone, batch 4, {} kernels; '
                               .format(form))
    assert [line.split('|')[1].strip() for line in lines[4:]] == [
        '1 (784-64)', '2 (64-64)', '3 (64-10)']


@needs_numba
@pytest.mark.parametrize('form', cpu_features.runnable_forms())
def test_the_ceilings_run_each_forms_inner_loop(form):
    assert 0 < packed_bench.tile_ceiling(form, bits=256, rounds=10) < 1e14
    assert 0 < packed_bench.pair_sums_ceiling(form, rounds=10) < 1e14


@pytest.mark.gpu
def test_the_gpu_product_agrees_with_cublas():
    # gpu_product checks the products agree before it times them.
    synchronize = cli.synchronizer(chainer.get_device('@cupy:0'))
    xnor, cublas = packed_bench.gpu_product(512, synchronize)
    assert xnor > 0 and cublas > 0


@pytest.fixture(scope='module')
def convnet():
    return packed_export.export(*helpers.binarized_convnet(
        '5C3-P2-70C3-P2-9FC', (2, 12, 10)))


def test_a_convnets_layers_are_named_and_counted_by_their_shapes(convnet):
    assert packed_bench.layer_names(convnet) == [
        '5C3-P2', '70C3-P2', '420-9', '9-10']
    # 12 x 10 positions of 2 x 9 taps and 5 filters; 6 x 5 of 5 x 9 and 70.
    assert packed_bench.layer_work(convnet, numpy.zeros((3, 240))) == [
        3 * 120 * 18 * 5, 3 * 30 * 45 * 70, 3 * 420 * 9, 3 * 9 * 10]


@needs_numba
def test_a_convnets_rows_and_layers(convnet):
    rows = packed_bench.engine_rows(convnet, CPU, 'scalar')
    assert [row.name for row in rows] == [
        'packed', 'blas', 'blas engine', 'chainer, binarized',
        'chainer, float']
    images = numpy.random.RandomState(0).randint(0, 256, (4, 240)).astype(
        numpy.uint8)
    labels = rows[0].classify(images)
    numpy.testing.assert_array_equal(rows[2].classify(images), labels)
    products = rows[1].classify.engine.products(images)
    assert [(a.shape, w.shape) for a, w in products] == [
        ((4 * 120, 18), (18, 5)), ((4 * 30, 45), (45, 70)),
        ((4, 420), (420, 9)), ((4, 9), (9, 10))]
    lines = packed_bench.layer_table(convnet, CPU, images, 4, 'scalar',
                                     settle=0, warm=0)
    assert [line.split('|')[1].strip() for line in lines[4:]] == [
        '1 (5C3-P2)', '2 (70C3-P2)', '3 (420-9)', '4 (9-10)']


@needs_numba
def test_the_first_convolutions_ceiling_runs_its_kernel(convnet):
    assert 0 < packed_bench.first_convolution_ceiling(
        convnet.convolutions[0], rounds=2) < 1e14


def test_the_products_of_a_large_batch_are_those_of_its_passes(
        convnet, monkeypatch):
    monkeypatch.setattr(packed_bench.packed_engine, 'COLUMN_BYTES',
                        4 * 18 * 120 * 3)  # three images a pass
    blas = packed_bench.packed_engine.select(convnet, kind='blas')
    calls = []
    products = blas.products
    monkeypatch.setattr(blas, 'products', lambda pixels: calls.append(
        len(pixels)) or products(pixels))
    row = packed_bench.BlasProducts(blas)
    images = numpy.zeros((8, 240), numpy.uint8)
    row(images)
    row(images)
    assert calls == [3, 2]  # two passes of 3 and one of 2, made once


@pytest.mark.skipif('avx2' not in cpu_features.runnable_forms(),
                    reason='the tiles are AVX2 code; this CPU has no AVX2')
@pytest.mark.parametrize('kind,channels', [(0, 32), (1, 1)])
@pytest.mark.parametrize('size,positions', [(4, 32), (9, 64)])
def test_the_position_lanes_ceiling_counts_its_tiles_work(
        kind, channels, size, positions, monkeypatch):
    # A layer of fewer than two vectors of positions (4 x 4, padded: 24)
    # is timed on a tile of one, which reads nothing past its planes.
    from quantized_net.packed import format as packed_format
    from quantized_net.packed.kernels import position_lanes
    conv = packed_format.Convolution((channels, size, size), 8, 3, 1, 1, 0)
    ran = []

    def one_call(runners, rounds, warmup):
        (name, run), = runners
        run()
        ran.append(name)
        return {name: 0.5}
    monkeypatch.setattr(packed_bench, 'median_seconds', one_call)
    rate = packed_bench.position_lanes_ceiling(conv, kind, rounds=3)
    assert ran == ['tile']
    assert rate == 3 * positions * position_lanes.TILE_FILTERS * (
        conv.taps()) / 0.5
