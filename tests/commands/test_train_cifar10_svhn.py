"""train_cifar10.py and train_svhn.py as a user runs them, on generated
files in the real formats: the paper's ConvNet, narrowed, trains,
evaluates and resumes exactly; bad input ends in one line."""
import os
import signal
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error, assert_same_run
from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training.result_dir import read_args, read_log

# The paper's ConvNet a sixteenth as wide, on 250 training images.
FAST = ['--width', '0.0625', '--validation', '50', '--noplot']
COMMANDS = {'cifar10': ('train_cifar10.py', helpers.write_cifar10),
            'svhn': ('train_svhn.py', lambda path: helpers.write_svhn(
                path, n_train=300, n_test=100))}


@pytest.fixture(scope='module', params=sorted(COMMANDS))
def command(request, tmp_path_factory):
    """``(data set, its command, a directory of its files)``."""
    script, write = COMMANDS[request.param]
    data = write(str(tmp_path_factory.mktemp(request.param) / 'data'))
    return request.param, script, data


def test_the_papers_convnet_trains_evaluates_and_resumes(command,
                                                         tmp_path):
    dataset, script, data = command
    out = str(tmp_path / 'run')
    result = helpers.run_script(script, '--dataset-dir', data, '--epoch', 2,
                                '--seed', 4, '--out', out, *FAST)
    assert result.returncode == 0, result.stderr
    assert '# preset: {}'.format(dataset) in result.stdout
    assert '# layers: {} x 0.0625 wide, htanh'.format(
        presets.ARCHITECTURES[dataset]) in result.stdout
    assert '# model: ' in result.stdout
    config = read_args(out)['config']
    assert (config['dataset'], config['architecture']) == (dataset, dataset)
    assert [entry['epoch'] for entry in read_log(out)] == [1, 2]
    evaluated = helpers.run_script('evaluate.py', out, '--dataset-dir', data)
    assert evaluated.returncode == 0, evaluated.stderr
    assert '(100 images)' in evaluated.stdout
    # Killed after its first epoch's snapshot and resumed: the same run.
    part = str(tmp_path / 'part')
    killed = subprocess.run(
        [sys.executable, os.path.join(helpers.SCRIPTS, 'fault_runner.py'),
         '--kill-after-snapshot', '1', '--', script, '--dataset-dir', data,
         '--epoch', '2', '--seed', '4', '--out', part] + FAST,
        capture_output=True, text=True, env=helpers.SCRIPT_ENV)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    snapshot = os.path.join(part, result_dir.snapshots(part)[-1][1])
    resumed = helpers.run_script(script, '--dataset-dir', data, '--epoch', 2,
                                 '--out', part, '--resume', snapshot, *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_run(part, out)


@pytest.mark.parametrize('script', ['train_cifar10.py', 'train_svhn.py'])
def test_a_directory_without_the_files_ends_in_one_line(script, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = helpers.run_script(script, '--dataset-dir', empty, '--out',
                                tmp_path / 'out', *FAST)
    assert_one_line_error(result, '{}: error: '.format(script), str(empty))
    assert not os.path.exists(str(tmp_path / 'out'))
