"""train_cifar10.py as a user runs it, on generated files in the real format:
the paper's ConvNet, narrowed, trains, evaluates and resumes; bad input
ends in one line."""
import os
import signal
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error, assert_same_run
from quantized_net.training import result_dir
from quantized_net.training.result_dir import read_args, read_log

# The paper's ConvNet a sixteenth as wide, on 250 training images.
FAST = ['--width', '0.0625', '--validation', '50', '--noplot']


def run(*args):
    return helpers.run_script('train_cifar10.py', *args)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('cifar10')
    return helpers.write_cifar10(str(tmp / 'data'))


def test_the_papers_convnet_trains_and_evaluates(data, tmp_path):
    out = str(tmp_path / 'run')
    result = run('--dataset-dir', data, '--epoch', 2, '--seed', 4, '--out',
                 out, *FAST)
    assert result.returncode == 0, result.stderr
    assert '# preset: cifar10' in result.stdout
    assert '# layers: 128C3-128C3-P2-256C3-256C3-P2-512C3-512C3-P2-1024FC-1024FC x 0.0625 wide, htanh' in result.stdout
    assert '# model: ' in result.stdout
    config = read_args(out)['config']
    assert (config['dataset'], config['architecture']) == ('cifar10', 'cifar10')
    log = read_log(out)
    assert [entry['epoch'] for entry in log] == [1, 2]
    evaluated = helpers.run_script('evaluate.py', out, '--dataset-dir', data)
    assert evaluated.returncode == 0, evaluated.stderr
    assert '(100 images)' in evaluated.stdout
    # Killed after its first epoch's snapshot and resumed: the same run.
    part = str(tmp_path / 'part')
    killed = subprocess.run(
        [sys.executable, os.path.join(helpers.SCRIPTS, 'fault_runner.py'),
         '--kill-after-snapshot', '1', '--', 'train_cifar10.py', '--dataset-dir',
         data, '--epoch', '2', '--seed', '4', '--out', part] + FAST,
        capture_output=True, text=True, env=helpers.SCRIPT_ENV)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    snapshot = os.path.join(part, result_dir.snapshots(part)[-1][1])
    resumed = run('--dataset-dir', data, '--epoch', 2, '--out', part,
                  '--resume', snapshot, *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(part, out)


def test_bad_files_end_in_one_line(tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = run('--dataset-dir', empty, '--out', tmp_path / 'out', *FAST)
    assert_one_line_error(result, 'train_cifar10.py: error: ')
    assert not os.path.exists(str(tmp_path / 'out'))
