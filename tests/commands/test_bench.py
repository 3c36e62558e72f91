"""bench.py: the tables it prints, on a small network."""
import pytest

import helpers


def table(stdout, header):
    """The rows of the markdown table under the line ``header``."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(
        header)) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith('|'):
            if rows:
                break
            continue
        rows.append([cell.strip() for cell in line.strip('|').split('|')])
    return rows[2:]  # below the header and the rule


def within_rounding(ratio, a, b, half=0.005):
    """Whether ``ratio`` (printed to 2 decimals) can be ``a / b`` for the
    exact values behind ``a`` and ``b`` (printed to 2 decimals)."""
    low = (a - half) / (b + half) - half
    high = (a + half) / max(b - half, 1e-9) + half
    return low <= ratio <= high


def test_tables(tmp_path):
    result = helpers.run_script('bench.py', '--unit', 32, '--batchsize', 8,
                                '--rounds', 3, '--warmup', 1, '--reference')
    assert result.returncode == 0, result.stderr
    assert 'Training iteration, 784-32-32-10 MLP, batch 8, CPU, ' in \
        result.stdout
    rows = table(result.stdout, 'Training iteration')
    assert [row[0] for row in rows] == [
        'float', 'seed', 'bnn-style', 'seed, numpy kernels',
        'seed, reference kernels', "float, Chainer's Adam", 'floor']
    ms = {row[0]: float(row[1]) for row in rows}
    for name, _, x_float, x_floor in rows:
        # The ratio columns are the ms column over float's and floor's,
        # within the rounding of the printed values.
        assert within_rounding(float(x_float), ms[name], ms['float'])
        assert within_rounding(float(x_floor), ms[name], ms['floor'])
    assert rows[0][2] == '1.00' and rows[-1][3] == '1.00'
    rates = table(result.stdout, 'Quantizer on a 1000 x 1000')
    assert {row[0] for row in rates} == {'seed', 'sign', 'linear:2', 'log:4'}
    for spec, kernels, ms_text, rate in rates:
        assert float(rate) == pytest.approx(1e6 / float(ms_text) * 1e3,
                                            rel=0.02)


def test_bad_flags():
    helpers.assert_one_line_error(
        helpers.run_script('bench.py', '--rounds', 0),
        'must be at least 1', code=2)
    helpers.assert_one_line_error(
        helpers.run_script('bench.py', '--gpu', 0, '-d', '@numpy'),
        'either --device or --gpu', code=2)
