"""run_description.py: the run a command line describes, frozen, and the
run a resume trains: checked against what the snapshot records of its run
(run_record.py), wherever it is; the record a run's snapshots carry."""
import dataclasses
import json
import os
import pickle
import shutil

import numpy
import pytest

from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import run_description
from quantized_net.training import run_record
from quantized_net import errors


@pytest.fixture(scope='module')
def describe(describe_run):
    return describe_run


def test_the_flags_described(describe):
    run = describe('--unit', 30, '--out', 'r', '--seed', 4, '--noplot',
                   '-f', 2, '--device', '@numpy', '--dataset-dir', 'd')
    assert run.config == dict(presets.PRESETS['seed'], preset='seed',
                              unit=30)
    assert (run.seed, run.out, run.resume, run.replace, run.frequency,
            run.plot, run.dataset_dir, run.device, run.device_flag) == (
        4, 'r', None, False, 2, False, 'd', '@numpy', '--device @numpy')
    assert run.argv == ('--unit', '30', '--out', 'r', '--seed', '4',
                        '--noplot', '-f', '2', '--device', '@numpy',
                        '--dataset-dir', 'd')
    assert not run.on_gpu and describe('--gpu', 1).on_gpu
    assert describe('-d', '@cupy:0').on_gpu
    assert not describe('-d', '-1').on_gpu


def test_a_description_is_not_changed(describe):
    run = describe('--unit', 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3
    config = run.config
    config['unit'] = 1
    assert run.config['unit'] == 30
    # The order of the keys is the order args.json records.
    assert list(run.config) == list(presets.PRESETS['seed']) + ['preset']


def write_snapshot(path, record=None, iteration=40, **members):
    """A file as a snapshot of iteration ``iteration`` is to what a resume
    reads before it loads: its record (where given) and iteration."""
    arrays = {'updater/iteration': numpy.array(iteration)}
    if record is not None:
        arrays.update(run_record.to_arrays(record))
    arrays.update(members)
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)
    return path


def record_of(describe, *argv, seed=7, data='d' * 64):
    return run_record.Record(
        config_items=describe(*argv).config_items, seed=seed,
        run_id=run_record.new_run_id(), data=data)


@pytest.fixture
def run_dir(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    return out


@pytest.fixture
def recorded(run_dir, describe):
    """A snapshot that records its run (unit 30, seed 7), alone in its
    directory."""
    return write_snapshot(str(run_dir / 'snapshot_iter_40'),
                          record_of(describe, '--unit', 30))


@pytest.fixture
def older(run_dir, describe):
    """A snapshot that records no run, as an older version wrote it, and
    the args.json of its run (unit 30, seed 7) beside it."""
    result_dir.write_args(str(run_dir), describe('--unit', 30).config, 7, [])
    return write_snapshot(str(run_dir / 'snapshot_iter_40'))


def test_a_run_without_resume_is_itself(describe):
    run = describe()
    assert run_description.resumed(run) is run


def test_a_resumed_run_keeps_its_recorded_seed(recorded, describe):
    run = describe('--unit', 30, '--resume', recorded, '--epoch', 40)
    assert run.seed is None
    resumed = run_description.resumed(run)
    record = run_record.read(recorded)
    assert (resumed.seed, resumed.continues) == (7, record)
    assert resumed == dataclasses.replace(run, seed=7, continues=record)
    # The same seed given is the same run.
    given = describe('--unit', 30, '--resume', recorded, '--seed', 7)
    assert run_description.resumed(given).seed == 7


def test_another_seed_is_refused(recorded, run_dir, describe):
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--unit', 30, '--resume', recorded,
                                         '--seed', 6))
    assert str(e.value) == (
        'cannot resume from {}: --seed 6 was given, but its run was trained '
        'with seed 7; leave --seed out, or start a new run.'.format(
            recorded))
    unseeded = write_snapshot(str(run_dir / 'snapshot_iter_41'), record_of(
        describe, '--unit', 30, seed=None), iteration=41)
    resumed = run_description.resumed(describe('--unit', 30, '--resume',
                                               unseeded))
    assert resumed.seed is None
    with pytest.raises(errors.UsageError, match=r'--seed 0 was given, but '
                       r'its run was trained without a seed;'):
        run_description.resumed(describe('--unit', 30, '--resume', unseeded,
                                         '--seed', 0))


@pytest.mark.parametrize('where,message', [
    ('missing', 'cannot resume: snapshot {} does not exist.'),
    ('directory', 'cannot resume: {} is a directory; give one of its '
                  'snapshot_iter_* files.'),
    ('fifo', 'cannot resume: {} is a FIFO, not a regular file; give a '
             'snapshot_iter_* file.'),
    ('/dev/null', 'cannot resume: {} is a character device, not a regular '
                  'file; give a snapshot_iter_* file.')])
def test_no_snapshot_to_resume_from(tmp_path, where, message, describe):
    path = {'directory': str(tmp_path), 'missing': str(tmp_path / 'none'),
            'fifo': str(tmp_path / 'fifo')}.get(where, where)
    if where == 'fifo':
        os.mkfifo(path)
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--resume', path))
    assert str(e.value) == message.format(path)


def test_a_run_resumes_with_its_own_configuration(recorded, older, describe):
    for snapshot in (recorded, older):
        with pytest.raises(errors.UsageError) as e:
            run_description.resumed(describe('--resume', snapshot, '--unit',
                                             31))
        assert str(e.value) == (
            "cannot resume from {}: its run was trained with other value "
            "(unit 30, not 31); give the same flags, or start a new run."
            .format(snapshot))
        with pytest.raises(errors.UsageError, match=r'other values \(lr '
                           r'0.001, not 0.5, unit 30, not 31\)'):
            run_description.resumed(describe('--resume', snapshot, '--unit',
                                             31, '--lr', 0.5))


def test_the_snapshot_is_checked_not_its_neighbourhood(recorded, run_dir,
                                                       tmp_path, describe):
    # Copied elsewhere, without args.json: the same checks.
    alone = tmp_path / 'alone'
    alone.mkdir()
    copy = str(alone / 'snapshot_iter_40')
    shutil.copy(recorded, copy)
    for flags in (['--batchsize', 50], ['--preset', 'float'],
                  ['--lr', 0.5], ['--weight-quant', 'sign']):
        with pytest.raises(errors.UsageError, match='its run was trained '
                           'with other value'):
            run_description.resumed(describe('--unit', 30, '--resume', copy,
                                             *flags))
    assert run_description.resumed(describe(
        '--unit', 30, '--resume', copy)).seed == 7
    # An args.json beside it that says otherwise is not what is checked.
    result_dir.write_args(str(run_dir), describe('--unit', 99).config, 3,
                          [])
    assert run_description.resumed(describe(
        '--unit', 30, '--resume', recorded)).seed == 7


def test_an_older_snapshot_is_checked_against_its_args_json(
        older, run_dir, tmp_path, describe):
    run = describe('--unit', 30, '--resume', older)
    resumed = run_description.resumed(run)
    assert (resumed.seed, resumed.continues) == (7, None)
    # A seed given is the seed, as these snapshots always had it.
    assert run_description.resumed(describe(
        '--unit', 30, '--resume', older, '--seed', 2)).seed == 2
    # Without a readable args.json beside it, nothing says what it is.
    for args in (None, b'[]', b'\xff\xfe', b'{"config": {"unit": 30}}'):
        path = run_dir / result_dir.ARGS_FILE
        if args is None:
            path.unlink()
        else:
            path.write_bytes(args)
        with pytest.raises(errors.UsageError) as e:
            run_description.resumed(run)
        assert str(e.value).startswith(
            'cannot resume from {}: it does not record its run (an older '
            'version wrote it) and no record of its run is beside it ('
            .format(older))
        assert str(e.value).endswith(
            '); resume it in its own result directory, or start a new run.')
        assert '\n' not in str(e.value)


def tampered_record(describe, **changes):
    arrays = run_record.to_arrays(record_of(describe, '--unit', 30))
    for key, value in changes.items():
        if value is None:
            del arrays[key]
        else:
            arrays[key] = numpy.asarray(value)
    return arrays


@pytest.mark.parametrize('changes,why', [
    ({run_record.SEED_KEY: 2 ** 32}, 'run/seed is 4294967296, not an '
     'integer in [-1, 4294967296)'),
    ({run_record.SEED_KEY: -2}, 'run/seed is -2, not an integer in'),
    ({run_record.SEED_KEY: 5.0}, 'run/seed is 5.0, not an integer in'),
    ({run_record.SEED_KEY: [5, 6]}, 'run/seed is [5 6], not an integer in'),
    ({run_record.ID_KEY: '../../x'}, "run/id is '../../x', not a run id"),
    ({run_record.ID_KEY: 7}, 'run/id is not a string'),
    ({run_record.DATA_KEY: 'abc'}, "run/data is 'abc', not a SHA-256 in "
     "hexadecimal"),
    ({run_record.CONFIG_KEY: 'not JSON'}, 'run/config is not a '
     'configuration: Expecting value'),
    ({run_record.CONFIG_KEY: '[' * 100 + ']' * 100}, 'run/config is not a '
     'configuration: its JSON nests 100 deep (at most 32)'),
    ({run_record.CONFIG_KEY: '{"unit": 8192}'}, 'run/config: it lacks '),
    ({run_record.DATA_KEY: None}, 'it lacks run/data of its record'),
])
def test_a_tampered_record_is_refused_in_one_line(run_dir, describe,
                                                  changes, why):
    path = str(run_dir / 'snapshot_iter_40')
    with open(path, 'wb') as f:
        numpy.savez(f, **tampered_record(describe, **changes))
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--unit', 30, '--resume', path))
    line = str(e.value)
    assert line.startswith('cannot resume from {}: it was damaged or '
                           'altered ({}'.format(path, why))
    assert line.endswith('); give a snapshot_iter_* file as a run wrote it.')
    assert '\n' not in line


def test_a_record_larger_than_a_record_may_be_is_not_read(run_dir,
                                                          describe):
    path = str(run_dir / 'snapshot_iter_40')
    arrays = tampered_record(describe, **{run_record.CONFIG_KEY: 'x' * 70000})
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--unit', 30, '--resume', path))
    assert str(e.value) == (
        'cannot resume: {} holds {} bytes of arrays, more than the {} it '
        'may hold; it was not loaded.'.format(
            path, sum(a.nbytes for a in arrays.values()),
            run_record.RECORD_LIMIT))


def test_the_configuration_recorded_is_checked(run_dir, describe):
    config = describe('--unit', 30).config
    config['unit'] = 10 ** 6
    path = str(run_dir / 'snapshot_iter_40')
    with open(path, 'wb') as f:
        numpy.savez(f, **tampered_record(
            describe, **{run_record.CONFIG_KEY: json.dumps(config)}))
    with pytest.raises(errors.UsageError, match=r'altered \(run/config: '
                       r'unit is 1000000; it must be an integer from 1 to '):
        run_description.resumed(describe('--unit', 30, '--resume', path))


@pytest.mark.parametrize('content,why', [
    (pickle.dumps({'a': 1}), 'it holds pickled data, which could run any '
                             'code'),
    (b'\x93NUMPY\x01\x00' + b'x' * 100, 'a single array'),
    (b'PK\x03\x04 not a zip', 'empty, damaged, or not an .npz file'),
    (b'', 'empty, damaged, or not an .npz file')])
def test_a_file_that_is_not_a_snapshot(run_dir, describe, content, why):
    path = run_dir / 'snapshot_iter_40'
    path.write_bytes(content)
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--resume', str(path)))
    assert str(e.value) == ('cannot resume: {} is not an archive of arrays '
                            '({}); it was not loaded.'.format(path, why))


def test_the_record_of_a_run(recorded, describe):
    new = describe('--unit', 30, '--seed', 3)
    first = run_description.record(new, 'a' * 64)
    second = run_description.record(new, 'a' * 64)
    assert (first.config, first.seed, first.data) == (new.config, 3,
                                                      'a' * 64)
    assert len(first.run_id) == 32 and first.run_id != second.run_id
    # A resumed run keeps its id, and its data.
    resumed = run_description.resumed(describe(
        '--unit', 30, '--resume', recorded, '--epoch', 50,
        '--dataset-dir', 'elsewhere'))
    record = run_description.record(resumed, 'd' * 64)
    assert record.run_id == resumed.continues.run_id
    assert record.config['epoch'] == 50
    with pytest.raises(errors.UsageError) as e:
        run_description.record(resumed, 'e' * 64)
    assert str(e.value) == (
        'cannot resume from {}: its run was trained on other data than '
        '--dataset-dir elsewhere holds; give the data set it was trained '
        'on, or start a new run.'.format(recorded))


def test_the_fingerprint_tells_data_sets_apart():
    import chainer
    images = numpy.arange(12, dtype=numpy.float32).reshape(3, 4)
    labels = numpy.array([0, 1, 2], numpy.int32)
    data = chainer.datasets.TupleDataset(images, labels)
    print_ = run_record.fingerprint(data, None, data)
    assert len(print_) == 64
    assert run_record.fingerprint(
        chainer.datasets.TupleDataset(images.copy(), labels.copy()), None,
        data) == print_
    other = labels.copy()
    other[2] = 1
    assert run_record.fingerprint(
        chainer.datasets.TupleDataset(images, other), None, data) != print_
    assert run_record.fingerprint(data, data, None) != print_
    # A split is hashed as the examples it holds.
    half = chainer.datasets.split_dataset(data, 2)[0]
    assert run_record.fingerprint(half) == run_record.fingerprint(
        chainer.datasets.TupleDataset(images[:2], labels[:2]))
