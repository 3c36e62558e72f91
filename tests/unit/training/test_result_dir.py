"""result_dir.py: the names of a run's files and its JSON records."""
import json
import os

import pytest

from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net import errors


def small_config(**changes):
    return dict(presets.PRESETS['seed'], preset='seed', unit=16, **changes)


def test_args_round_trip(tmp_path):
    out = str(tmp_path)
    config = small_config()
    result_dir.write_args(out, config, 3, ('--unit', '16'))
    with open(os.path.join(out, 'args.json')) as f:
        assert json.load(f) == {'config': config, 'seed': 3,
                                'argv': ['--unit', '16']}
    assert result_dir.read_args(out)['config'] == config
    assert os.listdir(out) == ['args.json']  # no temporary left
    # A multi-process run records the number of processes.
    result_dir.write_args(out, config, None, [], processes=2)
    assert result_dir.read_args(out)['processes'] == 2


@pytest.mark.parametrize('text,message', [
    (None, 'args.json does not exist.'),
    ('not json', 'is not a configuration written by train_mnist.py ('),
    ('[1]', '(it holds no configuration)'),
    ('{"seed": 1}', '(it holds no configuration)'),
    ('{"config": {"unit": 5}}', '(no good)')])
def test_what_read_args_refuses(tmp_path, text, message):
    if text is not None:
        (tmp_path / 'args.json').write_text(text)

    def check(config):
        raise ValueError('no good')
    with pytest.raises(errors.ResultError) as e:
        result_dir.read_args(str(tmp_path), check=check)
    assert message in str(e.value)
    assert '\n' not in str(e.value)


def test_snapshots_in_order_and_the_files_of_a_run(tmp_path):
    for name in ('snapshot_iter_100', 'snapshot_iter_20', 'log', 'mine.txt',
                 'snapshot_iter_1800.keep', 'model.npz'):
        (tmp_path / name).write_text('x')
    assert result_dir.snapshots(str(tmp_path)) == [
        (20, 'snapshot_iter_20'), (100, 'snapshot_iter_100')]
    assert result_dir.snapshot_name(20) == 'snapshot_iter_20'
    assert result_dir.run_files(str(tmp_path)) == [
        'log', 'model.npz', 'snapshot_iter_100', 'snapshot_iter_20']


def test_leftovers_are_temporaries_of_a_runs_files(tmp_path):
    for name in ('.log1234.part', '.snapshot_iter_12abc.part',
                 '.mine1.part', 'log.part'):
        (tmp_path / name).write_text('x')
    (tmp_path / 'tmpsnapshot_iter_99abc').mkdir()
    (tmp_path / 'tmpsnapshot_iter_file').write_text('x')
    assert result_dir.leftovers(str(tmp_path)) == (
        ['.log1234.part', '.snapshot_iter_12abc.part'],
        ['tmpsnapshot_iter_99abc'])


def test_read_log(tmp_path):
    (tmp_path / 'log').write_text('[{"epoch": 1}]')
    assert result_dir.read_log(str(tmp_path)) == [{'epoch': 1}]
