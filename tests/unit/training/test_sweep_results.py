"""sweep_results.py: a sweep's csv, table and heat map, each saying which
epoch its errors are of."""
import argparse
import csv
import os

import pytest

from quantized_net.training import sweep
from quantized_net.training import sweep_results


def plan(out, *argv):
    parser = argparse.ArgumentParser()
    sweep.add_flags(parser)
    return sweep.describe(parser.parse_args(
        ['--out', str(out), '--epoch', '3', '--unit', '64'] +
        [str(a) for a in argv]), 'train_mnist.py')


def rows_of(errors, epochs, chosen_by='last'):
    return [{'weight_bits': w, 'act_bits': a, 'weight_quant': sweep.spec(w),
             'act_quant': sweep.spec(a), 'grad_quant': 'none', 'unit': 64,
             'layers': 2, 'epoch': 3, 'test_error': error,
             'train_loss': 0.25, 'seconds': 1.5, 'reported_epoch': epoch,
             'chosen_by': chosen_by}
            for (w, a), error, epoch in zip([(1, 2), (1, 'none')], errors,
                                            epochs)]


def test_the_table_says_the_epoch_every_cell_reports(tmp_path):
    grid = plan(tmp_path, '--weight-bits', 1, '--act-bits', '2,none')
    assert sweep_results.markdown_table(grid, rows_of([4.5, 3.25],
                                                      [3, 3])) == (
        'Test error (%) at epoch 3 (last), 2 x 64 units, gradients none; '
        'rows: weight bits, columns: activation bits.\n\n'
        '| weights \\ activations | 2 | none |\n'
        '| --- | --- | --- |\n'
        '| 1 | 4.50 | 3.25 |\n')


def test_the_table_gives_each_cells_epoch_where_they_differ(tmp_path):
    grid = plan(tmp_path, '--weight-bits', 1, '--act-bits', '2,none')
    table = sweep_results.markdown_table(
        grid, rows_of([4.5, 3.25], [2, 3], 'best validation'))
    assert table.splitlines()[0] == (
        "Test error (%) at each cell's best validation epoch of 3 (in "
        "brackets), 2 x 64 units, gradients none; rows: weight bits, "
        "columns: activation bits.")
    assert table.splitlines()[-1] == '| 1 | 4.50 (2) | 3.25 (3) |'


def test_the_files_carry_the_reported_epoch(tmp_path):
    pytest.importorskip('matplotlib')
    grid = plan(tmp_path, '--weight-bits', 1, '--act-bits', '2,none')
    rows = rows_of([4.5, 3.25], [3, 3])
    sweep_results.write_results(grid, rows)
    assert sorted(os.listdir(str(tmp_path))) == [
        'results.csv', 'results.md', 'results.png']
    with open(str(tmp_path / 'results.csv')) as f:
        read = list(csv.DictReader(f))
    assert [(r['act_quant'], r['test_error'], r['reported_epoch'],
             r['chosen_by']) for r in read] == [
        ('linear:2', '4.5', '3', 'last'), ('none', '3.25', '3', 'last')]
    with open(str(tmp_path / 'results.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_a_cell_without_a_row_is_nan(tmp_path):
    grid = plan(tmp_path, '--weight-bits', '1,2', '--act-bits', '2,none')
    table = sweep_results.markdown_table(grid, rows_of([4.5, 3.25], [3, 3]))
    assert table.splitlines()[-1] == '| 2 | nan | nan |'
