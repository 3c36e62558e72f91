"""A sweep's results, each cell's reported test error (:mod:`reported`):
``results.csv`` (a row per cell), ``results.md`` (the grid as a table) and
``results.png`` (the grid as a heat map), each saying which epoch it
reports."""
import csv
import os

import numpy

from quantized_net.atomic_file import atomic_write, write_figure
from quantized_net.training import reported

FIELDS = ('weight_bits', 'act_bits', 'weight_quant', 'act_quant',
          'grad_quant', 'unit', 'layers', 'epoch', 'test_error',
          'train_loss', 'seconds', 'reported_epoch', 'chosen_by')
CSV_FILE = 'results.csv'
TABLE_FILE = 'results.md'
FIGURE_FILE = 'results.png'


def write_csv(path, rows):
    """Writes the rows, one per cell, whole or not at all."""
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def error_grid(rows, weight_bits, act_bits):
    """Test errors, rows: weight bit widths, columns: activation ones; NaN
    where no row is."""
    grid = numpy.full((len(weight_bits), len(act_bits)), numpy.nan)
    for row in rows:
        grid[list(weight_bits).index(row['weight_bits']),
             list(act_bits).index(row['act_bits'])] = row['test_error']
    return grid


def common_epoch(rows):
    """The words for the epoch every row reports (``'epoch 3 (last)'``);
    None where the rows report different epochs."""
    epochs = {(row['reported_epoch'], row['chosen_by']) for row in rows}
    if len(epochs) != 1:
        return None
    return reported.describe_epoch(*epochs.pop())


def which_epoch(rows, epochs):
    """What the table and the figure say of the epochs their errors are
    of: the epoch every row reports, or each cell's of ``epochs``."""
    common = common_epoch(rows)
    if common:
        return common
    chosen = sorted({row['chosen_by'] for row in rows})
    return "each cell's {} epoch of {}".format(' or '.join(chosen), epochs)


def markdown_table(sweep, rows):
    """``results.md``: the grid of test errors in %; where the cells
    report different epochs, each error is followed by its epoch."""
    config = sweep.config
    grid = error_grid(rows, sweep.weight_bits, sweep.act_bits)
    epochs = {(row['weight_bits'], row['act_bits']): row['reported_epoch']
              for row in rows}
    apart = common_epoch(rows) is None
    lines = ['Test error (%) at {}{}, {} x {} units, gradients {}; rows: '
             'weight bits, columns: activation bits.'.format(
                 which_epoch(rows, config['epoch']),
                 ' (in brackets)' if apart else '', config['layers'],
                 config['unit'], config['grad_quant']), '',
             '| weights \\ activations | ' + ' | '.join(
                 str(b) for b in sweep.act_bits) + ' |',
             '| --- |' + ' --- |' * len(sweep.act_bits)]
    for weight_bits, errors in zip(sweep.weight_bits, grid):
        cells = []
        for act_bits, error in zip(sweep.act_bits, errors):
            cell = '{:.2f}'.format(error)
            if apart and (weight_bits, act_bits) in epochs:
                cell += ' ({})'.format(epochs[weight_bits, act_bits])
            cells.append(cell)
        lines.append('| {} | '.format(weight_bits) + ' | '.join(cells) +
                     ' |')
    return '\n'.join(lines) + '\n'


def heat_map(path, sweep, rows):
    """Writes ``results.png``, the grid as a heat map, whole or not at
    all."""
    import matplotlib
    matplotlib.use('Agg')  # the figure goes to a file; no display needed
    import matplotlib.pyplot as plt

    config = sweep.config
    grid = error_grid(rows, sweep.weight_bits, sweep.act_bits)
    figure, axes = plt.subplots(figsize=(6, 5))
    image = axes.imshow(grid, cmap='viridis_r')
    axes.set_xticks(range(len(sweep.act_bits)),
                    [str(b) for b in sweep.act_bits])
    axes.set_yticks(range(len(sweep.weight_bits)),
                    [str(b) for b in sweep.weight_bits])
    axes.set_xlabel('activation bits (linear:K)')
    axes.set_ylabel('weight bits (linear:K)')
    axes.set_title('MNIST test error (%), {}, {}x{} units'.format(
        which_epoch(rows, config['epoch']), config['layers'],
        config['unit']))
    for (i, j), error in numpy.ndenumerate(grid):
        axes.text(j, i, '{:.2f}'.format(error), ha='center', va='center',
                  bbox={'facecolor': 'white', 'alpha': 0.7,
                        'edgecolor': 'none'})
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    write_figure(figure, path)


def write_results(sweep, rows):
    """Writes the three result files to ``sweep.out`` and prints the
    table."""
    write_csv(os.path.join(sweep.out, CSV_FILE), rows)
    table = markdown_table(sweep, rows)
    with atomic_write(os.path.join(sweep.out, TABLE_FILE)) as f:
        f.write(table)
    heat_map(os.path.join(sweep.out, FIGURE_FILE), sweep, rows)
    print(table)
