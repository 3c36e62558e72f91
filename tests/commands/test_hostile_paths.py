"""The commands against what another user may have put in their way:
links, FIFOs and devices where files or directories are expected, a
planted lock, names a refused run must not touch, files too large or
nested too deep, a full disk, and signals at any moment, twice, or to one
MPI rank. Each ends in one line and a clean state, and nothing outside the
run's own directory changes. Tiny networks on a generated data set."""
import json
import os
import signal
import stat
import subprocess
import sys
import time

import numpy
import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.training import result_dir
from quantized_net.training import snapshot

RUNNER = os.path.join(helpers.SCRIPTS, 'fault_runner.py')
# 600 training images in batches of 50: 12 iterations an epoch.
FAST = ['--unit', '24', '--layers', '2', '--batchsize', '50', '--noplot']
TIMEOUT = 120  # a command that waits on a FIFO fails the test, not hangs


@pytest.fixture(scope='module')
def data(tiny_data):
    return tiny_data


def command(script, *args, fault=()):
    """The command line of ``script`` run by the fault runner."""
    return [sys.executable, RUNNER] + [str(f) for f in fault] + [
        '--', script] + [str(a) for a in args]


def run(script, *args, fault=()):
    return subprocess.run(command(script, *args, fault=fault),
                          capture_output=True, text=True,
                          env=helpers.SCRIPT_ENV, timeout=TIMEOUT)


def train(data, out, *flags, fault=()):
    return run('train_mnist.py', '--dataset-dir', data, '--out', out,
               *FAST, *flags, fault=fault)


def script(name, *args):
    return subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, name)] +
        [str(a) for a in args], capture_output=True, text=True,
        env=helpers.SCRIPT_ENV, timeout=TIMEOUT)


def state(directory):
    """``{path: (mode, mtime, bytes or link target)}`` of everything under
    ``directory``, links not followed: what must not change."""
    found = {}
    for folder, subfolders, names in os.walk(directory):
        for name in subfolders + names:
            path = os.path.join(folder, name)
            status = os.lstat(path)
            content = None
            if stat.S_ISLNK(status.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(status.st_mode):
                with open(path, 'rb') as f:
                    content = f.read()
            # A directory's time changes with the lock made and removed
            # in it; what it holds is compared.
            found[os.path.relpath(path, directory)] = (
                status.st_mode, None if stat.S_ISDIR(status.st_mode)
                else status.st_mtime_ns, content)
    return found


def clean(out):
    """No temporary file and no lock is left in ``out``."""
    names = os.listdir(out)
    assert [name for name in names if name.endswith('.part')] == [], names
    assert result_dir.LOCK_FILE not in names


def stderr_lines(result):
    return [line for line in result.stderr.strip().splitlines()
            if not line.startswith('notice: ')]


def wait_for(path, process, seconds=120):
    wait_until(lambda: os.path.exists(path), path, process, seconds)


def wait_until(condition, what, process, seconds=120):
    for _ in range(int(seconds * 20)):
        if condition():
            return
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError('{} did not appear'.format(what))


def any_snapshot(out):
    """Whether ``out`` holds a snapshot: a run that keeps one snapshot
    replaces it every epoch, faster than a test can poll for a given one."""
    return os.path.isdir(out) and any(
        snapshot.is_snapshot_name(name) for name in os.listdir(out))


# Signals.

def foreground():
    """As a terminal's foreground job: a shell starts background jobs (the
    test suite under `... &`) with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize('delay', [0.05, 0.2, 0.5, 1.0, 1.5])
@pytest.mark.parametrize('name,status,word', [
    ('SIGINT', 130, 'interrupted'), ('SIGTERM', 143, 'terminated')])
def test_a_signal_at_any_moment_from_the_start_is_one_line(
        data, tmp_path, delay, name, status, word):
    """From the command's first instruction (its imports) on: one line,
    the status a shell reports, and no temporary file or lock left."""
    out = str(tmp_path / 'run')
    process = subprocess.Popen(
        [sys.executable, os.path.join(helpers.ROOT, 'train_mnist.py'),
         '--dataset-dir', data, '--out', out, '--epoch', '20'] + FAST,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=helpers.SCRIPT_ENV, preexec_fn=foreground)
    time.sleep(delay)
    process.send_signal(getattr(signal, name))
    _, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == status, err
    assert 'Traceback' not in err
    lines = [line for line in err.strip().splitlines()
             if not line.startswith('notice: ')]
    assert len(lines) == 1 and lines[0].startswith(
        'train_mnist.py: {}'.format(word)), err
    if os.path.isdir(out):
        clean(out)


def test_ctrl_c_twice_mid_run_is_one_line(data, tmp_path):
    out = str(tmp_path / 'run')
    process = subprocess.Popen(
        command('train_mnist.py', '--dataset-dir', data, '--out', out,
                *FAST, '--epoch', 3, fault=['--pause-at', 14]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=helpers.SCRIPT_ENV, preexec_fn=foreground)
    try:
        wait_for(os.path.join(out, result_dir.snapshot_name(12)), process)
        time.sleep(0.3)  # into the pause after iteration 14
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert 'Traceback' not in err
    assert [line for line in err.strip().splitlines()
            if not line.startswith('notice: ')][-1:] == [
        'train_mnist.py: interrupted; resume with --resume {}'.format(
            os.path.join(out, result_dir.snapshot_name(12)))]
    clean(out)


def test_a_signal_as_a_snapshot_temporary_is_created_leaves_none(
        data, tmp_path):
    out = str(tmp_path / 'run')
    result = train(data, out, '--epoch', 3,
                   fault=['--signal-in-temp', 2, 'TERM'])
    assert result.returncode == 143, result.stderr
    first = os.path.join(out, result_dir.snapshot_name(12))
    assert stderr_lines(result) == [
        'train_mnist.py: terminated; resume with --resume {}'.format(first)]
    clean(out)
    assert [name for _, name in result_dir.snapshots(out)] == [
        result_dir.snapshot_name(12)]
    with numpy.load(first, allow_pickle=False) as archive:
        assert archive.files  # whole


# A full disk.

def test_a_full_disk_at_the_first_snapshot_is_one_line(data, tmp_path):
    """Every write past 20000 bytes fails as on a full disk: args.json and
    the log are written, the first snapshot is not."""
    out = str(tmp_path / 'run')
    result = train(data, out, '--epoch', 2,
                   fault=['--file-size-limit', 20000])
    assert_one_line_error(result, 'train_mnist.py: error: cannot write {}: '
                          'File too large.'.format(os.path.join(
                              out, result_dir.snapshot_name(12))))
    clean(out)
    assert result_dir.snapshots(out) == []
    assert result_dir.read_args(out)['config']['unit'] == 24
    assert [entry['epoch'] for entry in result_dir.read_log(out)] == [1]


def test_plot_error_on_a_full_disk_is_one_line(tmp_path):
    pytest.importorskip('matplotlib')
    with open(str(tmp_path / 'log'), 'w') as f:
        json.dump(helpers.LOG, f)
    result = run('plot_error.py', tmp_path,
                 fault=['--file-size-limit', 1000])
    assert_one_line_error(result, 'plot_error.py: error: cannot write {}: '
                          'File too large.'.format(tmp_path / 'error.png'))
    assert os.listdir(str(tmp_path)) == ['log']


# The result directory and its lock.

def test_a_planted_lock_link_leaves_its_target_whole(data, tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    precious = tmp_path / 'precious.txt'
    precious.write_bytes(b'p' * 1400)
    os.symlink(str(precious), str(out / result_dir.LOCK_FILE))
    before = state(str(tmp_path))
    assert_one_line_error(
        train(data, str(out), '--epoch', 1),
        'train_mnist.py: error: {} is a symbolic link, not a lock a run '
        'made; it was left as it is.'.format(out / result_dir.LOCK_FILE))
    assert state(str(tmp_path)) == before


def test_a_stale_lock_of_a_killed_run_is_taken_over(data, tmp_path):
    out = str(tmp_path / 'run')
    process = subprocess.Popen(
        command('train_mnist.py', '--dataset-dir', data, '--out', out,
                *FAST, '--epoch', 3, fault=['--pause-at', 2]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=helpers.SCRIPT_ENV)
    wait_for(os.path.join(out, result_dir.ARGS_FILE), process)
    process.kill()
    process.wait()
    assert result_dir.LOCK_FILE in os.listdir(out)  # left by kill -9
    again = train(data, out, '--epoch', 1, '--replace')
    assert again.returncode == 0, again.stderr
    clean(out)


def test_a_refused_run_touches_nothing_and_a_run_keeps_what_is_not_its(
        data, tmp_path):
    out = tmp_path / 'A'
    results = out / 'tmpsnapshot_iter_results'
    results.mkdir(parents=True)
    (results / 'model.npz').write_bytes(b'another run')
    (out / 'args.json').write_text('{}')
    (out / '.log1234abcd.part').write_text('a killed writer\'s')
    before = state(str(tmp_path))
    assert_one_line_error(train(data, str(out), '--epoch', 1),
                          'holds the results of another run (args.json)')
    assert state(str(tmp_path)) == before
    done = train(data, str(out), '--epoch', 1, '--replace')
    assert done.returncode == 0, done.stderr
    assert (results / 'model.npz').read_bytes() == b'another run'
    assert '.log1234abcd.part' not in os.listdir(str(out))
    clean(str(out))


@pytest.mark.parametrize('make,message', [
    (lambda path: os.symlink(path + '.missing', path),
     '--out {0} is a symbolic link to {0}.missing, which does not exist'),
    (os.mkfifo, '--out {} is a FIFO, not a directory.'),
    (lambda path: os.symlink('/dev/null', path),
     '--out {} is a character device, not a directory.'),
    (lambda path: None, '--out {} is too long: the files a run writes '
     'there would have paths of')])
def test_an_out_that_cannot_hold_a_run_is_one_line(data, tmp_path, make,
                                                   message):
    path = str(tmp_path / 'out')
    if message.startswith('--out {} is too long'):
        path = os.path.join(str(tmp_path), *['d' * 200] * 20)
    make(path)
    before = state(str(tmp_path))
    assert_one_line_error(train(data, path, '--epoch', 1),
                          message.format(path))
    assert state(str(tmp_path)) == before


def test_a_seed_beyond_numpys_range_is_a_usage_error(data, tmp_path):
    assert_one_line_error(
        train(data, str(tmp_path / 'run'), '--seed', 2 ** 32),
        'argument --seed: must be an integer from 0 to 4294967295, got '
        '4294967296', code=2)
    assert os.listdir(str(tmp_path)) == []


# Records read as anyone may have written them.

def test_evaluate_refuses_a_configuration_too_large_before_building_it(
        tmp_path):
    config = dict(helpers.binarized_model(units=8)[1], unit=8192, layers=32)
    (tmp_path / 'args.json').write_text(json.dumps({'config': config}))
    (tmp_path / 'model.npz').write_bytes(b'never read')
    # 8.6 GB would be built; a limit of 2 GiB of memory shows it is not.
    result = subprocess.run(
        [sys.executable, '-c', 'import resource, runpy, sys; '
         'resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)); '
         'sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], '
         'run_name="__main__")',
         os.path.join(helpers.ROOT, 'evaluate.py'), str(tmp_path)],
        capture_output=True, text=True, env=helpers.SCRIPT_ENV,
        timeout=TIMEOUT)
    assert_one_line_error(result, 'evaluate.py: error: ',
                          'a network of 32 x 8192 units has 2087665694 '
                          'parameters, more than 268435456')


@pytest.mark.parametrize('name', ['args.json', 'model.npz', 'log'])
def test_a_fifo_in_a_result_is_refused_not_waited_on(tmp_path, data, name):
    model, config = helpers.binarized_model(units=16)
    out = helpers.write_result(str(tmp_path / 'r'), model, config)
    with open(os.path.join(out, 'log'), 'w') as f:
        json.dump(helpers.LOG, f)
    path = os.path.join(out, name)
    os.remove(path)
    os.mkfifo(path)
    for command_line in (['evaluate.py', out, '--dataset-dir', data],
                         ['plot_error.py', out, '-o',
                          str(tmp_path / 'e.png')]):
        result = script(*command_line)
        if name == 'log' and command_line[0] == 'evaluate.py':
            # The epoch is left out of the report; the rest is read.
            assert result.returncode == 0, result.stderr
            continue
        if name != 'log' and command_line[0] == 'plot_error.py':
            continue
        assert_one_line_error(result, '{} is a FIFO, not a regular file; '
                              'give a file.'.format(path))


@pytest.mark.parametrize('text,fragment', [
    ('{}', 'log is not a LogReport log: it holds an object'),
    ('[1, 2]', 'log is not a LogReport log: entry 1 is a number'),
    ('[' * 100000 + ']' * 100000, 'its JSON nests 100000 deep'),
    ('[{"epoch": "x", "main/accuracy": [1]}]',
     'the log has no accuracy to plot')])
def test_a_tampered_log_is_one_line(tmp_path, text, fragment):
    pytest.importorskip('matplotlib')
    (tmp_path / 'log').write_text(text)
    assert_one_line_error(script('plot_error.py', tmp_path), fragment)
    assert os.listdir(str(tmp_path)) == ['log']


def test_plot_error_to_a_directory_is_one_line(tmp_path):
    pytest.importorskip('matplotlib')
    with open(str(tmp_path / 'log'), 'w') as f:
        json.dump(helpers.LOG, f)
    assert_one_line_error(
        script('plot_error.py', tmp_path, '-o', tmp_path),
        'plot_error.py: error: cannot write {}: it is a directory'.format(
            tmp_path))


def test_sweep_on_a_finished_cell_whose_log_is_damaged(data, tmp_path):
    import argparse
    from quantized_net.training import sweep
    out = str(tmp_path / 'sweep')
    flags = ['--out', out, '--bits', '1', '--epoch', '1', '--unit', '16',
             '--batchsize', '50', '--seed', '3']
    parser = argparse.ArgumentParser()
    sweep.add_flags(parser)
    plan = sweep.describe(parser.parse_args(flags), 'train_mnist.py')
    cell = plan.cell_dir(1, 1)
    os.makedirs(cell)
    result_dir.write_args(cell, plan.cell_config(1, 1), 3, [])
    (tmp_path / 'sweep' / 'cells' / 'w1_a1' / 'model.npz').write_bytes(b'x')
    (tmp_path / 'sweep' / 'cells' / 'w1_a1' / 'log').write_text('[{"epo')
    result = script('sweep.py', *flags, '--dataset-dir', data)
    assert_one_line_error(
        result, 'sweep.py: error: {} is not a LogReport log: '.format(
            os.path.join(cell, 'log')),
        'remove {} to train the cell again'.format(cell))
    assert result_dir.LOCK_FILE not in os.listdir(out)


def test_a_sweep_never_writes_through_a_planted_cells_link(data, tmp_path):
    out, outside = tmp_path / 'sweep', tmp_path / 'outside'
    out.mkdir()
    outside.mkdir()
    os.symlink(str(outside), str(out / 'cells'))
    result = script('sweep.py', '--out', out, '--bits', '1', '--epoch', '1',
                    '--unit', '16', '--batchsize', '50', '--seed', '3',
                    '--dataset-dir', data)
    assert_one_line_error(
        result, 'sweep.py: error: {} is a symbolic link, not a directory of '
        'this sweep; sweep.py writes its cells inside its own --out '
        'only.'.format(out / 'cells'))
    assert os.listdir(str(outside)) == []
    assert sorted(os.listdir(str(out))) == ['cells']


@pytest.mark.parametrize('name', ['new\nline', 'esc\x1b[2Jape', 'cr\rx'])
def test_a_path_with_a_control_character_is_escaped_in_its_one_line(
        data, tmp_path, name):
    taken = tmp_path / name
    taken.write_text('a file, not a directory')
    result = train(data, str(taken / 'out'))
    assert_one_line_error(result, 'train_mnist.py: error: ')
    line = stderr_lines(result)[-1]
    assert line.isprintable()
    assert repr(name)[1:-1] in line


def test_a_run_with_its_output_closed_trains_and_says_nothing(data,
                                                                tmp_path):
    out = str(tmp_path / 'out')
    result = subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, 'train_mnist.py'),
         '--dataset-dir', data, '--out', out] + FAST + ['--epoch', '1'],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, env=helpers.SCRIPT_ENV,
        timeout=TIMEOUT, preexec_fn=lambda: os.close(1))
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert os.path.isfile(os.path.join(out, result_dir.MODEL_FILE))


def test_text_an_ascii_terminal_cannot_show_is_escaped(data, tmp_path):
    out = str(tmp_path / 'r\u00e9sultat \u4e2d')
    assert train(data, out, '--epoch', 1).returncode == 0
    result = subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, 'evaluate.py'), out,
         '--dataset-dir', data], capture_output=True,
        env=dict(helpers.SCRIPT_ENV, PYTHONIOENCODING='ascii'),
        timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert b'r\\xe9sultat \\u4e2d' in result.stdout


@pytest.mark.parametrize('value', ['junk', 'float16'])
def test_a_chainer_dtype_other_than_float32_is_one_line(tmp_path, value):
    result = subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, 'evaluate.py'),
         str(tmp_path)], capture_output=True, text=True,
        env=dict(helpers.SCRIPT_ENV, CHAINER_DTYPE=value), timeout=TIMEOUT)
    assert_one_line_error(
        result, "evaluate.py: error: CHAINER_DTYPE is '{}', but "
        "quantized_net computes in float32; unset CHAINER_DTYPE, or set it "
        "to float32.".format(value))


@pytest.mark.parametrize('name', ['train_mnist.py', 'bench.py',
                                  'evaluate.py'])
def test_a_missing_chainer_is_one_line(tmp_path, name):
    # A Python without the requirements: a chainer that does not import
    # first on the path.
    fake = tmp_path / 'site' / 'chainer'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text(
        'raise ModuleNotFoundError("No module named \'chainer\'")\n')
    env = dict(helpers.SCRIPT_ENV, PYTHONPATH=os.pathsep.join(
        [str(tmp_path / 'site'), helpers.SCRIPT_ENV['PYTHONPATH']]))
    result = subprocess.run(
        [sys.executable, os.path.join(helpers.ROOT, name), '--help'],
        capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert_one_line_error(
        result, "{}: error: Chainer does not import (No module named "
        "'chainer'): install the requirements (make setup, see the "
        "README)".format(name), ".venv/bin/python")
    assert result.stdout == ''


def test_a_huge_integer_in_a_log_is_one_line(tmp_path):
    pytest.importorskip('matplotlib')
    (tmp_path / 'log').write_text(
        '[{"epoch": 1, "main/loss": 1' + '0' * 400 + '}]')
    assert_one_line_error(
        script('plot_error.py', tmp_path),
        'log is not a LogReport log: it holds an integer of 401 digits, '
        'beyond 64 bits')


# MPI.

@pytest.mark.mpi
def test_a_signal_to_one_rank_ends_the_job_with_one_line(data, tmp_path):
    why = helpers.mpi_missing()
    if why:
        pytest.skip(why)
    out = str(tmp_path / 'run')
    pids = str(tmp_path / 'pids')
    process = subprocess.Popen(
        [helpers.MPIEXEC, '-n', '2'] + command(
            'train_mnist_mn.py', '--dataset-dir', data, '--out', out,
            *FAST, '--batchsize', 100, '--epoch', 200,
            fault=['--pid-file', pids]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=helpers.SCRIPT_ENV)
    try:
        wait_until(lambda: any_snapshot(out), 'a snapshot', process)
        with open(os.path.join(pids, 'rank1.pid')) as f:
            os.kill(int(f.read()), signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 143, err
    assert 'Traceback' not in err
    lines = [line for line in err.strip().splitlines()
             if not line.startswith(('notice: ', 'Abort('))]
    assert lines == ['train_mnist_mn.py: terminated (process 1)'], err
