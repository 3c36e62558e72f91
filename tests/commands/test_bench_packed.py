"""bench_packed.py: the table it prints, on a small packed network."""
import numpy
import pytest

import helpers
from quantized_net.training import mnist as mnist_dataset
from quantized_net.packed import engine as packed_engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import simd_layers
from quantized_net.packed.kernels import xnor_popcount


def test_table(tmp_path, synthetic_dir):
    network = packed_export.export(*helpers.binarized_model(units=64))
    path = str(tmp_path / 'small.npz')
    packed_format.save(path, network)
    result = helpers.run_script(
        'bench_packed.py', path, '--batches', '1', '7', '--seconds', '0.01',
        '--dataset-dir', synthetic_dir)
    assert result.returncode == 0, result.stderr
    assert 'Inference, 784-64-64-10 MLP' in result.stdout
    assert ', CPU; median over rounds' in result.stdout
    rows = [line.strip('|').split('|') for line in result.stdout.splitlines()
            if line.startswith('| 1 ') or line.startswith('| 7 ')]
    rows = [[cell.strip() for cell in row] for row in rows]
    engines = ['packed'] + (['packed, scalar'] if simd_layers.best_form()
                            else []) + ['blas', 'chainer, binarized',
                                        'chainer, float']
    assert [(r[0], r[1]) for r in rows] == [
        (b, e) for b in ('1', '7') for e in engines]
    packed_bytes = 8 * (64 * 13 + 64 * 1 + 10 * 1)
    float_bytes = 4 * (784 * 64 + 64 * 64 + 64 * 10)
    bias_and_bn = 4 * (64 + 64 + 10) * 3  # b, gamma, beta per layer
    sizes = {'packed': packed_bytes, 'packed, scalar': packed_bytes,
             'blas': float_bytes,
             'chainer, binarized': float_bytes + bias_and_bn,
             'chainer, float': float_bytes + bias_and_bn}
    assert network.weight_bytes() == packed_bytes
    for batch in ('1', '7'):
        table = {r[1]: r for r in rows if r[0] == batch}
        blas_rate = float(table['blas'][2])
        assert table['blas'][3] == '1.00'
        for name, row in table.items():
            # "x blas" is the ratio of the images/s columns, rounded.
            assert float(row[3]) == pytest.approx(
                float(row[2]) / blas_rate, rel=0.01, abs=0.006)
            assert int(row[4]) == sizes[name]
            assert row[5] == '{:.1f}'.format(float_bytes / sizes[name])


def test_bad_flags(tmp_path):
    result = helpers.run_script('bench_packed.py', '--batches', '0')
    helpers.assert_one_line_error(result, 'must be at least 1', code=2)
    result = helpers.run_script('bench_packed.py', str(tmp_path / 'none'))
    helpers.assert_one_line_error(result, 'bench_packed.py: error:',
                                  'cannot read')


def test_layer_table(tmp_path, synthetic_dir):
    network = packed_export.export(*helpers.binarized_model(units=64))
    path = str(tmp_path / 'small.npz')
    packed_format.save(path, network)
    result = helpers.run_script(
        'bench_packed.py', path, '--batches', '7', '--seconds', '0.01',
        '--layers', '8', '--dataset-dir', synthetic_dir)
    assert result.returncode == 0, result.stderr
    header = next(line for line in result.stdout.splitlines()
                  if line.startswith('Each layer alone, batch 8'))
    form = simd_layers.best_form() or 'scalar'
    assert header.startswith('Each layer alone, batch 8, {} kernels; '
                             'ceiling: '.format(form))
    rows = [[cell.strip() for cell in line.strip('|').split('|')]
            for line in result.stdout.splitlines()
            if line.startswith('| 1 (') or line.startswith('| 2 (') or
            line.startswith('| 3 (')]
    assert [row[0] for row in rows] == ['1 (784-64)', '2 (64-64)',
                                        '3 (64-10)']
    _, _, test = mnist_dataset.load_splits(synthetic_dir)
    pixels = numpy.resize(packed_engine.to_pixels(test._datasets[0], 784),
                          (8, 784))
    # The sparse first layer's multiply-adds: both pixels of the pairs
    # that are not both zero, times units.
    pairs = numpy.count_nonzero(pixels[:, 0::2] | pixels[:, 1::2])
    first = 2 * pairs if form != 'scalar' else 8 * 784
    threads = xnor_popcount.numba.get_num_threads()
    for (name, packed, blas, ratio, rate, ceiling, share), work in zip(
            rows, [first * 64, 8 * 64 * 64, 8 * 64 * 10]):
        packed, blas = float(packed), float(blas)
        if not packed or not blas:  # below 0.0005 ms: nothing to check
            continue
        # Each column follows from the milliseconds, within the rounding
        # of those to 0.001 ms.
        ratio_expected = blas / packed
        assert abs(float(ratio) - ratio_expected) <= 0.005 + \
            ratio_expected * (0.0005 / packed + 0.0005 / blas)
        expected = work / (packed / 1000) / 1e9 / threads
        assert abs(float(rate) - expected) <= 0.05 + \
            expected * 0.0005 / packed
        assert float(share.rstrip('%')) == pytest.approx(
            100 * float(rate) / float(ceiling), rel=0.05, abs=1)


@pytest.mark.parametrize('form', list(simd_layers.FORMS) + ['scalar'])
def test_simd_chooses_the_kernels(tmp_path, synthetic_dir, form):
    network = packed_export.export(*helpers.binarized_model(units=64))
    path = str(tmp_path / 'small.npz')
    packed_format.save(path, network)
    result = helpers.run_script(
        'bench_packed.py', path, '--batches', '2', '--seconds', '0.01',
        '--layers', '2', '--simd', form, '--dataset-dir', synthetic_dir)
    if form not in simd_layers.runnable_forms() + ['scalar']:
        helpers.assert_one_line_error(
            result, 'this CPU cannot run the {} kernels; it runs: '.format(
                form), 'scalar.')
        return
    assert result.returncode == 0, result.stderr
    assert 'Each layer alone, batch 2, {} kernels; '.format(
        form) in result.stdout
    engines = [line.split('|')[2].strip() for line in
               result.stdout.splitlines() if line.startswith('| 2 | ')]
    # The scalar row is there to compare vector kernels with.
    assert engines == ['packed'] + (['packed, scalar'] if form != 'scalar'
                                    else []) + [
        'blas', 'chainer, binarized', 'chainer, float']


def test_simd_refuses_an_unknown_form():
    result = helpers.run_script('bench_packed.py', '--simd', 'sse2')
    helpers.assert_one_line_error(result, "argument --simd: invalid choice: "
                                  "'sse2'", code=2)
