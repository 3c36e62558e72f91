"""bench.py as a user runs it: the two tables, their rows, and the
one-line errors. What the numbers mean is tested in
tests/unit/benchmarks."""
import helpers
from quantized_net.benchmarks import quantizer_speed
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
                                '--rounds', 1, '--warmup', 0, '--reference')
    assert result.returncode == 0, result.stderr
    assert 'Training iteration, 784-32-32-10 MLP, batch 8, CPU, {} kernels; ' \
        'median of 1 rounds'.format(kernels.cpu_kernels()) in result.stdout
    header, rows = table(result.stdout, 'Training iteration')
    assert header == ['configuration', 'ms / iteration', 'x float',
                      'x floor']
    assert [row[0] for row in rows] == [
        'float', 'seed', 'bnn-style', 'seed, numpy kernels',
        'seed, reference kernels', "float, Chainer's Adam", 'floor']
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
