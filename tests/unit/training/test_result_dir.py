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
    ('not json', 'args.json is not a configuration written by '
     'train_mnist.py: Expecting value: line 1 column 1 (char 0).'),
    (b'{"config": "\xff"}', 'args.json is not a configuration written by '
     "train_mnist.py: 'utf-8' codec can't decode byte 0xff"),
    ('[1]', '(it holds no configuration)'),
    ('[]', '(it holds no configuration)'),
    ('{"seed": 1}', '(it holds no configuration)'),
    ('{"config": ' * 40 + '{}' + '}' * 40, 'args.json is not a '
     'configuration written by train_mnist.py: its JSON nests 41 deep (at '
     'most 32).'),
    ('[' * 100000 + ']' * 100000, 'nests 100000 deep'),
    (' ' * (1 << 20) + '{}', 'args.json is 1048578 bytes, more than a '
     'configuration written by train_mnist.py may hold (1048576); it was not '
     'read.'),
    ('{"config": {"unit": 5}}', '(no good)')])
def test_what_read_args_refuses(tmp_path, text, message):
    if isinstance(text, bytes):
        (tmp_path / 'args.json').write_bytes(text)
    elif text is not None:
        (tmp_path / 'args.json').write_text(text)

    def check(config):
        raise ValueError('no good')
    with pytest.raises(errors.ResultError) as e:
        result_dir.read_args(str(tmp_path), check=check)
    assert message in str(e.value)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('make,kind', [
    (os.mkfifo, 'a FIFO'), (os.mkdir, 'a directory'),
    (lambda path: os.symlink('/dev/zero', path), 'a character device')])
def test_records_of_another_kind_are_refused_before_they_are_read(
        tmp_path, make, kind):
    for name, read in (('args.json', result_dir.read_args),
                       ('log', result_dir.read_log)):
        path = str(tmp_path / name)
        make(path)
        with pytest.raises(errors.ResultError) as e:
            read(str(tmp_path))
        assert str(e.value) == '{} is {}, not a regular file; give a ' \
            'file.'.format(path, kind)


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
    (tmp_path / '.model.npzabc.part').mkdir()
    (tmp_path / '.args.jsonabc.part').symlink_to('/etc/passwd')
    assert result_dir.leftovers(str(tmp_path)) == [
        '.log1234.part', '.snapshot_iter_12abc.part']


def test_read_log(tmp_path):
    (tmp_path / 'log').write_text('[{"epoch": 1}]')
    assert result_dir.read_log(str(tmp_path)) == [{'epoch': 1}]


@pytest.mark.parametrize('text,message', [
    (None, 'log does not exist.'),
    ('{}', 'log is not a LogReport log: it holds an object, not a list of '
     'entries.'),
    ('[1, 2]', 'log is not a LogReport log: entry 1 is a number, not an '
     'object.'),
    ('[{}, "x"]', 'log is not a LogReport log: entry 2 is a string, not an '
     'object.'),
    ('"log"', 'it holds a string, not a list of entries.'),
    ('[{"epoch": 1}', 'log is not a LogReport log: Expecting'),
    ('[' * 5000 + ']' * 5000, 'log is not a LogReport log: its JSON nests '
     '5000 deep (at most 32).'),
    (b'\xff\xfe', 'log is not a LogReport log: \'utf-8\' codec')])
def test_what_read_log_refuses(tmp_path, text, message):
    if isinstance(text, bytes):
        (tmp_path / 'log').write_bytes(text)
    elif text is not None:
        (tmp_path / 'log').write_text(text)
    with pytest.raises(errors.ResultError) as e:
        result_dir.read_log(str(tmp_path))
    assert str(e.value).startswith(str(tmp_path / 'log'))
    assert message in str(e.value)
    assert '\n' not in str(e.value)


def test_a_log_larger_than_a_log_may_be_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(result_dir, 'MAX_LOG_BYTES', 100)
    (tmp_path / 'log').write_text('[' + '{}, ' * 50 + '{}]')
    with pytest.raises(errors.ResultError) as e:
        result_dir.read_log(str(tmp_path))
    assert str(e.value) == ('{} is 204 bytes, more than a LogReport log may '
                            'hold (100); it was not read.'.format(
                                tmp_path / 'log'))


def test_the_longest_name_a_run_writes():
    # .snapshot_iter_ + 20 digits + 8 random characters + .part
    assert result_dir.LONGEST_NAME == 1 + 14 + 20 + 8 + 5
