"""sweep.py (the library): the grid, each cell's state, the command that
trains it, and the MPI split. (Cells trained for real are
tests/commands/test_sweep.py's.)"""
import argparse
import json
import os
import signal
import sys
import threading
import time

import pytest

from quantized_net.training import flags
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import sweep
from quantized_net import errors
from quantized_net import signals


def parse(*argv):
    parser = argparse.ArgumentParser(prog='sweep.py')
    sweep.add_flags(parser)
    return parser.parse_args([str(a) for a in argv])


def plan(*argv):
    return sweep.describe(parse(*argv), 'train_mnist.py')


def test_bit_widths():
    assert sweep.bits_list('1, 2,none') == [1, 2, 'none']
    for text in ('0,2', '17', 'two', ''):
        with pytest.raises(argparse.ArgumentTypeError,
                           match='expected bit widths from 1 to 16 or '
                                 '"none"'):
            sweep.bits_list(text)


@pytest.mark.parametrize('argv,message', [
    (['--bits', '0,2'], 'expected bit widths from 1 to 16 or "none"'),
    (['--grad-quant', 'log:1'], 'Valid forms'),
    (['--weight-quant', 'sign'], 'unrecognized arguments: --weight-quant')])
def test_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_the_grid_and_its_defaults():
    grid = plan('--out', 'o', '--weight-bits', '1,8', '--act-bits', 'none')
    assert grid.cells() == [(1, 'none'), (8, 'none')]
    assert grid.cell_dir(8, 'none') == os.path.join('o', 'cells', 'w8_anone')
    assert grid.cell_config(1, 'none') == dict(
        presets.PRESETS['float'], preset='float', activation='htanh',
        epoch=3, unit=256, layers=2, weight_quant='linear:1',
        act_quant='none')
    assert plan().cells()[:2] == [(1, 1), (1, 2)]
    assert len(plan().cells()) == 25


def test_a_cell_is_trained_with_every_configuration_flag():
    grid = plan('--out', 'o', '--bits', 2, '--epoch', 1, '--unit', 16,
                '--layers', 1, '--lr', '0.002', '--batchsize', 30,
                '--grad-quant', 'log:6', '--dataset-dir', 'd', '--gpu', 1)
    command = sweep.train_command(grid, 2, 2, resume='o/s', replace=True)
    assert command[1] == 'train_mnist.py'
    parser = argparse.ArgumentParser()
    flags.add_train_flags(parser)
    args = flags.parse_train_args(parser, command[2:])
    assert flags.config_from_args(args) == grid.cell_config(2, 2)
    assert (args.seed, args.plot, args.out, args.resume, args.replace,
            args.dataset_dir, args.gpu) == (
        0, False, grid.cell_dir(2, 2), 'o/s', True, 'd', 1)


def write_cell(grid, weight_bits, act_bits, config=None, seed=0,
               finished=True):
    directory = grid.cell_dir(weight_bits, act_bits)
    os.makedirs(directory)
    result_dir.write_args(directory, config or grid.cell_config(
        weight_bits, act_bits), seed, [])
    if finished:
        with open(os.path.join(directory, 'model.npz'), 'w') as f:
            f.write('x')
    return directory


def test_the_state_of_a_cell(tmp_path):
    grid = plan('--out', tmp_path, '--bits', '1,2,4,8')
    assert sweep.cell_state(grid, 1, 1) == ('new', None)
    os.makedirs(grid.cell_dir(1, 1))
    assert sweep.cell_state(grid, 1, 1) == ('new', None)
    write_cell(grid, 1, 2)
    assert sweep.cell_state(grid, 1, 2) == ('done', None)
    write_cell(grid, 1, 4, finished=False)
    assert sweep.cell_state(grid, 1, 4) == ('interrupted', None)
    write_cell(grid, 1, 8, config=dict(grid.cell_config(1, 8), unit=32),
               seed=1)
    assert sweep.cell_state(grid, 1, 8) == ('other', ['unit', 'seed'])
    directory = write_cell(grid, 2, 1)
    with open(os.path.join(directory, 'args.json'), 'w') as f:
        f.write('damaged')
    state, differs = sweep.cell_state(grid, 2, 1)
    assert state == 'other' and 'unit' in differs


def test_what_is_done_with_each_state(tmp_path, monkeypatch, capsys):
    trained = []
    monkeypatch.setattr(sweep, 'train_cell', lambda *args, **kwargs:
                        trained.append((args[1:], kwargs)))
    grid = plan('--out', tmp_path, '--bits', '1,2,4,8')
    write_cell(grid, 1, 2)
    assert sweep.run_cell(grid, 1, 2) is True
    directory = write_cell(grid, 1, 4, finished=False)
    for name in ('snapshot_iter_12', 'snapshot_iter_24'):
        with open(os.path.join(directory, name), 'w') as f:
            f.write('x')
    assert sweep.run_cell(grid, 1, 4) is False
    assert sweep.run_cell(grid, 1, 1) is False
    write_cell(grid, 1, 8, config=dict(grid.cell_config(1, 8), unit=32))
    with pytest.raises(errors.UsageError) as e:
        sweep.run_cell(grid, 1, 8)
    assert str(e.value) == (
        '{} was trained with another configuration (unit differ); give '
        '--retrain to train it again, or choose another --out.'.format(
            grid.cell_dir(1, 8)))
    retrain = plan('--out', tmp_path, '--bits', '1,2,4,8', '--retrain')
    assert sweep.run_cell(retrain, 1, 8) is False
    assert trained == [
        ((1, 4), {'resume': os.path.join(directory, 'snapshot_iter_24'),
                  'replace': False}),
        ((1, 1), {'resume': None, 'replace': False}),
        ((1, 8), {'resume': None, 'replace': True})]
    assert capsys.readouterr().out.splitlines() == [
        'resuming weights linear:1 activations linear:4 ...',
        'training weights linear:1 activations linear:1 ...',
        'training weights linear:1 activations linear:8 ...']


def test_a_cell_reports_its_run_reported_result(tmp_path):
    directory = str(tmp_path)
    log = [{'epoch': e, 'main/loss': 1 / e, 'elapsed_time': 10. * e,
            'validation/main/accuracy': a, 'test/main/accuracy': t}
           for e, a, t in ((1, 0.9, 0.91), (2, 0.95, 0.94), (3, 0.93, 0.97))]
    with open(os.path.join(directory, 'log'), 'w') as f:
        json.dump(log, f)
    assert sweep.read_cell(directory) == {
        'test_error': 6.0, 'train_loss': 0.5, 'seconds': 30.0,
        'reported_epoch': 2, 'chosen_by': 'best validation'}
    for entry in log:
        del entry['test/main/accuracy']
    with open(os.path.join(directory, 'log'), 'w') as f:
        json.dump(log, f)
    assert sweep.read_cell(directory) == {
        'test_error': 7.0, 'train_loss': 0.3333, 'seconds': 30.0,
        'reported_epoch': 3, 'chosen_by': 'last'}


@pytest.mark.parametrize('log,why', [
    (None, 'log does not exist'),
    ('[{"epoch": 1', 'log is not a LogReport log: Expecting'),
    ('{}', 'log is not a LogReport log: it holds an object'),
    ('[1, 2]', 'log is not a LogReport log: entry 1 is a number'),
    ('[' * 100 + ']' * 100, 'its JSON nests 100 deep'),
    ('[{"epoch": 1, "validation/main/accuracy": "0.9"}]',
     'the log of {} reports no test error')])
def test_a_finished_cell_whose_log_is_damaged_is_one_line(tmp_path, log,
                                                           why):
    directory = str(tmp_path)
    if log is not None:
        (tmp_path / 'log').write_text(log)
    with pytest.raises(errors.ResultError) as e:
        sweep.read_cell(directory)
    message = str(e.value)
    assert why.format(directory) in message and '\n' not in message
    assert message.endswith('; remove {} to train the cell again, or choose '
                            'another --out.'.format(directory))


def test_a_cell_without_its_time_reports_none(tmp_path):
    (tmp_path / 'log').write_text(
        '[{"epoch": 1, "validation/main/accuracy": 0.9, "elapsed_time": '
        '"long"}]')
    assert sweep.read_cell(str(tmp_path))['seconds'] is None


def test_a_failed_cell_is_one_line(tmp_path, monkeypatch):
    grid = plan('--out', tmp_path, '--bits', '1')
    monkeypatch.setattr(sweep, 'train_command', lambda *a, **k: [
        sys.executable, '-c', 'import sys; sys.stderr.write("notice: '
        'something\\ntrain_mnist.py: error: --out x is a FIFO, not a '
        'directory.\\n"); sys.exit(1)'])
    with pytest.raises(errors.UsageError) as e:
        sweep.train_cell(grid, 1, 1)
    assert str(e.value) == ('cell w=1 a=1 failed: train_mnist.py: error: '
                            '--out x is a FIFO, not a directory.')


@pytest.mark.usefixtures('signal_handlers')
def test_a_signal_to_the_sweep_ends_its_cell_cleanly(tmp_path, monkeypatch):
    grid = plan('--out', tmp_path, '--bits', '1')
    ended = tmp_path / 'ended'
    started = tmp_path / 'started'
    # A cell that, as a run does, cleans up on SIGTERM and says so.
    monkeypatch.setattr(sweep, 'train_command', lambda *a, **k: [
        sys.executable, '-c', 'import os, signal, sys, time\n'
        'def end(*_):\n'
        '    open({!r}, "w").write("143")\n'
        '    sys.exit(143)\n'
        'signal.signal(signal.SIGTERM, end)\n'
        'open({!r}, "w").close()\n'
        'time.sleep(60)\n'.format(str(ended), str(started))])
    signals.install_raising()

    def terminate_when_started():
        deadline = time.time() + 30
        while not started.exists() and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=terminate_when_started, daemon=True).start()
    with pytest.raises(signals.Terminated):
        sweep.train_cell(grid, 1, 1)
    # The cell got the signal and ended by itself, rather than killed.
    assert ended.read_text() == '143'


def test_the_cells_spread_over_processes_and_back():
    cells = list(range(7))
    shares = [sweep.share(cells, rank, 3) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert sweep.interleave(shares) == cells
    assert sweep.interleave([cells]) == cells


def test_under_mpiexec(monkeypatch):
    for name in ('PMI_SIZE', 'OMPI_COMM_WORLD_SIZE'):
        monkeypatch.delenv(name, raising=False)
    assert not sweep.under_mpiexec()
    monkeypatch.setenv('PMI_SIZE', '1')
    assert not sweep.under_mpiexec()
    monkeypatch.setenv('PMI_SIZE', '2')
    assert sweep.under_mpiexec()
    for junk in ('abc', '', '-3', '2.5'):  # not mpiexec's: no traceback
        monkeypatch.setenv('PMI_SIZE', junk)
        assert not sweep.under_mpiexec()


@pytest.mark.parametrize('make,kind', [
    (lambda path, tmp: os.symlink(str(tmp), path), 'a symbolic link'),
    (lambda path, tmp: open(path, 'w').close(), 'a regular file'),
    (lambda path, tmp: os.mkfifo(path), 'a FIFO')])
def test_the_cells_are_written_in_the_sweeps_own_directory_only(
        tmp_path, make, kind):
    grid = plan('--out', tmp_path / 'out', '--bits', '1')
    os.makedirs(grid.out)
    make(grid.cells_dir(), tmp_path)
    with pytest.raises(errors.UsageError) as e:
        sweep.run(grid)
    assert str(e.value) == (
        '{} is {}, not a directory of this sweep; sweep.py writes its cells '
        'inside its own --out only. Remove it, or choose another '
        '--out.'.format(grid.cells_dir(), kind))
    assert os.listdir(grid.out) == ['cells']
    os.remove(grid.cells_dir())
    os.makedirs(grid.cells_dir())
    make(grid.cell_dir(1, 1), tmp_path)
    with pytest.raises(errors.UsageError) as e:
        sweep.run_cell(grid, 1, 1)
    assert str(e.value).startswith('{} is {}, not a directory of this '
                                   'sweep'.format(grid.cell_dir(1, 1), kind))
