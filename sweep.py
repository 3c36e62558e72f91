#!/usr/bin/env python3
"""Test error against the bit widths of weights and activations.

    ./sweep.py --out sweep --epoch 3 --unit 256 --dataset-dir path/to/mnist
    mpiexec -n 2 ./sweep.py ...        # the cells spread over 2 processes

Trains one network per cell of the grid (weights x activations, each
``linear:K`` for K in --bits, or ``none``) with train_mnist.py; every other
flag of train_mnist.py's configuration (--grad-quant, --unit, --lr, ...)
is the same in every cell. Then writes ``results.csv``, ``results.md``
(a table of test error in %) and ``results.png`` (a heat map) in --out.
A cell already finished with the same configuration and seed is reused,
and one interrupted is resumed from its latest snapshot, so an interrupted
sweep continues where it stopped; a cell trained with another
configuration stops the sweep, unless --retrain asks to train it again.

Under mpiexec (requirements-mpi.txt), process R trains cells R, R + N, ...
one at a time, each on one thread, and process 0 gathers the results and
writes the files.
"""
import argparse
import csv
import io
import os
import subprocess
import sys
import time

import matplotlib
matplotlib.use('Agg')  # the figure goes to a file; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy  # noqa: E402

from quantized_net.atomic_file import atomic_write  # noqa: E402
from quantized_net import cli  # noqa: E402
from quantized_net.training import presets  # noqa: E402
from quantized_net.training import result_dir  # noqa: E402
from quantized_net import errors

PROG = 'sweep.py'
HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = ('weight_bits', 'act_bits', 'weight_quant', 'act_quant',
          'grad_quant', 'unit', 'layers', 'epoch', 'test_error',
          'train_loss', 'seconds')


def _bits_list(text):
    values = []
    for item in text.split(','):
        item = item.strip()
        if item == 'none':
            values.append(item)
            continue
        try:
            bits = int(item)
        except ValueError:
            bits = 0
        if not 1 <= bits <= 16:
            raise argparse.ArgumentTypeError(
                'expected bit widths from 1 to 16 or "none", separated by '
                'commas, got {!r}'.format(text))
        values.append(bits)
    return values


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Grid of weight x activation bit widths')
    parser.add_argument('--out', '-o', default='sweep',
                        help='Directory for the cells and the results')
    parser.add_argument('--bits', type=_bits_list,
                        default=[1, 2, 4, 8, 'none'],
                        help='Bit widths for weights and activations, e.g. '
                             '1,2,4,8,none (linear:K; 1 is sign)')
    parser.add_argument('--weight-bits', type=_bits_list,
                        help='Bit widths for weights (default: --bits)')
    parser.add_argument('--act-bits', type=_bits_list,
                        help='Bit widths for activations (default: --bits)')
    parser.add_argument('--seed', type=cli.int_at_least(0), default=0)
    parser.add_argument('--retrain', action='store_true',
                        help='Train again the cells trained before with '
                             'another configuration (their files are '
                             'replaced)')
    cli.add_device_flags(parser)
    cli.add_dataset_flag(parser)
    # Every cell's configuration; the grid sets the weight and activation
    # quantizers. Small and fast by default, in hard-tanh units.
    presets.add_config_flags(parser, skip=('weight_quant', 'act_quant'))
    parser.set_defaults(preset='float', grad_quant='none',
                        activation='htanh', epoch=3, unit=256, layers=2)
    args = cli.parse(parser, argv)
    args.weight_bits = args.weight_bits or args.bits
    args.act_bits = args.act_bits or args.bits
    return args


def spec(bits):
    return 'none' if bits == 'none' else 'linear:{}'.format(bits)


def cell_dir(out, weight_bits, act_bits):
    name = 'w{}_a{}'.format(weight_bits, act_bits)
    return os.path.join(out, 'cells', name)


def cell_config(args, weight_bits, act_bits):
    """The configuration a cell trains with."""
    return dict(presets.config_from_args(args),
                weight_quant=spec(weight_bits), act_quant=spec(act_bits))


def cell_state(args, directory, weight_bits, act_bits):
    """``('new' | 'done' | 'interrupted' | 'other', what differs)``."""
    if not os.path.isdir(directory) or not result_dir.run_files(directory):
        return 'new', None
    recorded = result_dir.read_args(directory) or {}
    wanted = {'config': cell_config(args, weight_bits, act_bits),
              'seed': args.seed}
    differs = [key for key in sorted(wanted['config'])
               if recorded.get('config', {}).get(key) !=
               wanted['config'][key]]
    if recorded.get('seed') != args.seed:
        differs.append('seed')
    if differs:
        return 'other', differs
    if os.path.isfile(os.path.join(directory, result_dir.MODEL_FILE)):
        return 'done', None
    return 'interrupted', None


def train_cell(args, directory, weight_bits, act_bits, resume=None,
               replace=False):
    command = [sys.executable, os.path.join(HERE, 'train_mnist.py'),
               '--preset', args.preset,
               '--weight-quant', spec(weight_bits),
               '--act-quant', spec(act_bits),
               '--seed', str(args.seed), '--noplot', '--out', directory]
    if resume:
        command += ['--resume', resume]
    if replace:
        command += ['--replace']
    for key in presets.CONFIG_FLAGS:
        if getattr(args, key, None) is not None:
            command += [presets.flag(key), str(getattr(args, key))]
    if args.device is not None:
        command += ['--device', args.device]
    elif args.gpu != -1:
        command += ['--gpu', str(args.gpu)]
    if args.dataset_dir is not None:
        command += ['--dataset-dir', args.dataset_dir]
    env = dict(os.environ)
    if under_mpiexec():  # the processes share the cores: a thread each
        env.update(OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    result = subprocess.run(command, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    if result.returncode != 0:
        raise errors.UsageError('cell w={} a={} failed:\n{}'.format(
            weight_bits, act_bits, result.stderr.strip()))


def read_cell(directory):
    last = result_dir.read_log(directory)[-1]
    accuracy = last.get('test/main/accuracy',
                        last['validation/main/accuracy'])
    return {'test_error': round(100 * (1 - accuracy), 2),
            'train_loss': round(last['main/loss'], 4),
            'seconds': round(last['elapsed_time'], 1)}


def write_csv(path, rows):
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def error_grid(rows, args):
    """Test errors, rows: weight bit widths, columns: activation ones."""
    grid = numpy.full((len(args.weight_bits), len(args.act_bits)), numpy.nan)
    for row in rows:
        grid[args.weight_bits.index(row['weight_bits']),
             args.act_bits.index(row['act_bits'])] = row['test_error']
    return grid


def markdown_table(rows, args):
    grid = error_grid(rows, args)
    lines = ['Test error (%) after {} epochs, {} x {} units, gradients '
             '{}; rows: weight bits, columns: activation bits.'.format(
                 args.epoch, args.layers, args.unit, args.grad_quant), '',
             '| weights \\ activations | ' + ' | '.join(
                 str(b) for b in args.act_bits) + ' |',
             '| --- |' + ' --- |' * len(args.act_bits)]
    for weight_bits, row in zip(args.weight_bits, grid):
        lines.append('| {} | '.format(weight_bits) + ' | '.join(
            '{:.2f}'.format(v) for v in row) + ' |')
    return '\n'.join(lines) + '\n'


def heat_map(path, rows, args):
    grid = error_grid(rows, args)
    figure, axes = plt.subplots(figsize=(6, 5))
    image = axes.imshow(grid, cmap='viridis_r')
    axes.set_xticks(range(len(args.act_bits)),
                    [str(b) for b in args.act_bits])
    axes.set_yticks(range(len(args.weight_bits)),
                    [str(b) for b in args.weight_bits])
    axes.set_xlabel('activation bits (linear:K)')
    axes.set_ylabel('weight bits (linear:K)')
    axes.set_title('MNIST test error (%), {} epochs, {}x{} units'.format(
        args.epoch, args.layers, args.unit))
    for (i, j), error in numpy.ndenumerate(grid):
        axes.text(j, i, '{:.2f}'.format(error), ha='center', va='center',
                  bbox={'facecolor': 'white', 'alpha': 0.7,
                        'edgecolor': 'none'})
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png', dpi=100)
    plt.close(figure)
    with atomic_write(path, 'wb') as f:
        f.write(buffer.getvalue())


def run_cell(args, weight_bits, act_bits):
    """Trains, resumes or reuses one cell; whether it was done before."""
    directory = cell_dir(args.out, weight_bits, act_bits)
    state, differs = cell_state(args, directory, weight_bits, act_bits)
    if state == 'done':
        return True
    if state == 'other' and not args.retrain:
        raise errors.UsageError(
            '{} was trained with another configuration ({} differ); give '
            '--retrain to train it again, or choose another --out.'.format(
                directory, ', '.join(differs)))
    latest = result_dir.snapshots(directory) if state == 'interrupted' \
        else []
    print('{} weights {} activations {} ...'.format(
        'resuming' if latest else 'training', spec(weight_bits),
        spec(act_bits)), flush=True)
    train_cell(args, directory, weight_bits, act_bits,
               resume=os.path.join(directory, latest[-1][1]) if latest
               else None, replace=state != 'new' and not latest)
    return False


def sweep(args, mpi=None):
    """Runs the sweep; with ``mpi`` (an mpi4py communicator), this
    process's share of it."""
    rank, size = (mpi.rank, mpi.size) if mpi else (0, 1)
    lock = None
    if rank == 0:
        result_dir.make_directory(args.out)
        lock = result_dir.DirectoryLock(args.out).acquire()
    try:
        if mpi:
            mpi.barrier()  # the directory is held before any cell starts
        cells = [(w, a) for w in args.weight_bits for a in args.act_bits]
        rows = [run_one(args, w, a) for w, a in cells[rank::size]]
        if mpi:
            shares = mpi.gather(rows)
            if rank:
                return
            rows = [shares[i % size][i // size] for i in range(len(cells))]
        write_results(args, rows)
    finally:
        if lock:
            lock.release()


def run_one(args, weight_bits, act_bits):
    """The row of one cell, trained, resumed or reused."""
    finished = run_cell(args, weight_bits, act_bits)
    directory = cell_dir(args.out, weight_bits, act_bits)
    row = dict(read_cell(directory), weight_bits=weight_bits,
               act_bits=act_bits, weight_quant=spec(weight_bits),
               act_quant=spec(act_bits), grad_quant=args.grad_quant,
               unit=args.unit, layers=args.layers, epoch=args.epoch)
    print('{:>7} {:>7}: test error {:.2f}%{}'.format(
        spec(weight_bits), spec(act_bits), row['test_error'],
        ' (done before)' if finished else ''), flush=True)
    return row


def write_results(args, rows):
    write_csv(os.path.join(args.out, 'results.csv'), rows)
    table = markdown_table(rows, args)
    with atomic_write(os.path.join(args.out, 'results.md')) as f:
        f.write(table)
    heat_map(os.path.join(args.out, 'results.png'), rows, args)
    print(table)
    print('wall time of this invocation: {:.0f} s'.format(
        time.time() - args.start))


def under_mpiexec():
    """Whether mpiexec started this process among several (MPICH's and
    Open MPI's variables)."""
    size = os.environ.get('PMI_SIZE') or os.environ.get(
        'OMPI_COMM_WORLD_SIZE')
    return size is not None and int(size) > 1


def main(argv=None):
    args = parse_args(argv)
    args.start = time.time()
    if not under_mpiexec():
        cli.run(PROG, lambda: sweep(args))
        return
    from quantized_net.training import multi_node  # needs MPI, which single-process sweeps do not
    multi_node.run(PROG, lambda: sweep(args, multi_node.world()))


if __name__ == '__main__':
    main()
