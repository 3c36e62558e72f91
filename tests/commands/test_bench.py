"""bench.py as a user runs it: the two tables, their rows, and the
one-line errors. What the numbers mean is tested in
tests/unit/benchmarks."""
import helpers
from quantized_net.benchmarks import breakdown, quantizer_speed
from quantized_net.quantization import kernels


def table(stdout, title):
    """The header and the first column of the markdown table under the
    line starting with ``title``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = []
    for line in lines[start + 1:]:
        if not line.startswith('|'):
            if rows:
                break
            continue
        rows.append([cell.strip() for cell in line.strip('|').split('|')])
    header, rule, *body = rows
    return header, [row[:len(header) - 2] for row in body]


def test_tables():
    result = helpers.run_script('bench.py', '--unit', 32, '--batchsize', 8,
                                '--rounds', 1, '--calls', 2, '--warmup', 0,
                                '--reference', '--breakdown')
    assert result.returncode == 0, result.stderr
    title = '784-32-32-10 MLP, batch 8, CPU, {} kernels; 1 rounds of 2 ' \
        'calls'.format(kernels.cpu_kernels())
    assert 'Training iteration, ' + title in result.stdout
    header, rows = table(result.stdout, 'Training iteration')
    assert header == ['configuration', 'ms / iteration', 'x float',
                      'quartiles', 'x floor', 'quartiles']
    assert [row[0] for row in rows] == [
        'float', 'seed', 'bnn-style', 'seed, numpy kernels',
        'seed, reference kernels', "float, Chainer's Adam", 'floor']
    assert rows[0][2:4] == ['1.000', '1.000-1.000']
    assert 'Where an iteration goes, ' + title in result.stdout
    header, rows = table(result.stdout, 'Where an iteration goes')
    assert header == ['part', 'float ms', 'share', 'seed ms', 'share',
                      'bnn-style ms', 'share']
    assert [row[0] for row in rows] == list(breakdown.PARTS) + ['iteration']
    assert '\nother functions: Sum\n' in result.stdout
    header, rows = table(result.stdout, 'Quantizer on a 1000 x 1000')
    assert header == ['quantizer', 'kernels', 'ms', 'elements / s']
    assert rows == [[spec, name] for spec in quantizer_speed.SPECS
                    for name in kernels.usable_cpu_kernels()]


def test_bad_flags():
    helpers.assert_one_line_error(
        helpers.run_script('bench.py', '--rounds', 0),
        'must be at least 1', code=2)
    helpers.assert_one_line_error(
        helpers.run_script('bench.py', '--gpu', 0, '-d', '@numpy'),
        'either --device or --gpu', code=2)
    helpers.assert_one_line_error(
        helpers.run_script('bench.py', '--convnet', '--width', 100),
        'bench.py: error: width', code=2)


def test_the_convnets_tables():
    result = helpers.run_script('bench.py', '--convnet', '--width', 0.125,
                                '--batchsize', 2, '--rounds', 1, '--calls',
                                1, '--warmup', 0, '--breakdown')
    assert result.returncode == 0, result.stderr
    title = 'MNIST ConvNet 64C3-64C3-P2-128C3-128C3-P2-512FC x 0.125 ' \
        'wide, batch 2, CPU, {} kernels; 1 rounds of 1 calls'.format(
            kernels.cpu_kernels())
    assert 'Training iteration, ' + title in result.stdout
    _, rows = table(result.stdout, 'Training iteration')
    assert [row[0] for row in rows] == ['float', 'seed-style', 'binarized',
                                        'floor']
    header, rows = table(result.stdout, 'Where an iteration goes')
    assert header == ['part', 'float ms', 'share', 'seed-style ms', 'share',
                      'binarized ms', 'share']
    assert [row[0] for row in rows] == list(breakdown.PARTS) + ['iteration']
    assert '\nother functions: AddConstant, MulConstant, Reshape, Sum\n' in \
        result.stdout
