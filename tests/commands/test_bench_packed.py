"""bench_packed.py as a user runs it: the table it prints, and its errors
in one line. What the columns hold is tested in process
(tests/unit/benchmarks/test_packed.py)."""
import pytest

import helpers
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('bench') / 'small.npz')
    packed_format.save(path, packed_export.export(
        *helpers.binarized_model(units=64)))
    return path


def run(*args):
    return helpers.run_script('bench_packed.py', *args)


@pytest.mark.skipif(not cpu_features.HAVE_NUMBA,
                    reason=cpu_features.NO_NUMBA)
def test_table(small, synthetic_dir):
    # The portable kernels, which every CPU runs: no scalar row beside.
    result = run(small, '--batches', '3', '--seconds', '0.01', '--simd',
                 'scalar', '--dataset-dir', synthetic_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith('Inference, 784-64-64-10 MLP (')
    assert lines[0].endswith('small.npz), CPU; median over rounds')
    assert lines[2].startswith('| batch | engine | images / s | x blas |')
    rows = [[cell.strip() for cell in line.strip('|').split('|')]
            for line in lines[4:]]
    assert [row[:2] for row in rows] == [
        ['3', 'packed'], ['3', 'blas'], ['3', 'chainer, binarized'],
        ['3', 'chainer, float']]
    assert rows[1][3] == '1.00'
    assert [row[4] for row in rows[:2]] == [str(8 * (64 * 13 + 64 + 10)),
                                            str(4 * (784 + 64 + 10) * 64)]


def test_bad_flags(tmp_path):
    helpers.assert_one_line_error(run('--batches', '0'),
                                  'must be at least 1', code=2)
    helpers.assert_one_line_error(run('--simd', 'sse2'),
                                  "argument --simd: invalid choice: 'sse2'",
                                  code=2)
    helpers.assert_one_line_error(run(str(tmp_path / 'none')),
                                  'bench_packed.py: error:', 'cannot read')


def test_simd_refuses_a_form_the_cpu_cannot_run(small):
    missing = [form for form in cpu_features.FORMS
               if form not in cpu_features.runnable_forms()]
    if not missing:
        pytest.skip('this CPU runs every form')
    helpers.assert_one_line_error(
        run(small, '--simd', missing[0]), 'bench_packed.py: error: this '
        'CPU cannot run the {} kernels; it runs: '.format(missing[0]),
        'scalar.')
