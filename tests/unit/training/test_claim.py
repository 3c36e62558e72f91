"""claim.py: one run per directory, and a new run never touches another
run's files. (That the kernel releases the lock of a killed run is
test_faults.py's.)"""
import os

import pytest

from quantized_net.training import claim
from quantized_net.training import result_dir
from quantized_net import errors


def write(directory, *names):
    for name in names:
        with open(os.path.join(directory, name), 'w') as f:
            f.write(name)


def listing(directory):
    return sorted(os.listdir(directory))


def test_a_directory_is_held_by_one_lock_at_a_time(tmp_path):
    out = str(tmp_path)
    with claim.DirectoryLock(out) as lock:
        with open(lock.path) as f:
            assert f.read() == str(os.getpid())
        with pytest.raises(errors.ResultError) as e:
            claim.DirectoryLock(out).acquire()
        assert str(e.value) == (
            '{} is in use by another run (process {}); wait for it to end, '
            'or choose another directory.'.format(out, os.getpid()))
    assert os.listdir(out) == []  # the lock file goes with the lock
    claim.DirectoryLock(out).acquire().release()


def test_a_claim_holds_the_lock_and_creates_the_directory(tmp_path):
    out = str(tmp_path / 'a' / 'b')
    with claim.claim(out):
        assert listing(out) == [result_dir.LOCK_FILE]
        with pytest.raises(errors.ResultError, match='is in use by'):
            with claim.claim(out):
                pass
    assert os.listdir(out) == []


def test_a_file_is_no_directory(tmp_path):
    path = str(tmp_path / 'file')
    write(str(tmp_path), 'file')
    with pytest.raises(errors.ResultError,
                       match='^--out {} is a file, not a directory.$'.format(
                           path)):
        with claim.claim(path):
            pass


def test_another_runs_files_are_refused_untouched(tmp_path):
    out = str(tmp_path)
    write(out, 'args.json', 'log', 'snapshot_iter_12', 'snapshot_iter_24',
          'snapshot_iter_1800.keep', 'notes.txt')
    before = {name: os.path.getmtime(os.path.join(out, name))
              for name in os.listdir(out)}
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(out):
            pass
    assert str(e.value) == (
        '{} holds the results of another run (args.json, log, '
        'snapshot_iter_12, snapshot_iter_24); continue it with --resume {}, '
        'choose another --out, or give --replace to delete them and start '
        'again.'.format(out, os.path.join(out, 'snapshot_iter_24')))
    assert {name: os.path.getmtime(os.path.join(out, name))
            for name in os.listdir(out)} == before


def test_replace_removes_a_runs_files_and_only_those(tmp_path):
    out = str(tmp_path)
    write(out, 'args.json', 'log', 'model.npz', 'model_best.npz', 'cg.dot',
          'loss.png', 'model.packed.npz', 'snapshot_iter_12',
          'snapshot_iter_1800.keep', 'notes.txt', '.log123.part')
    os.mkdir(os.path.join(out, 'tmpsnapshot_iter_99abc'))
    with claim.claim(out, replace=True):
        assert listing(out) == [result_dir.LOCK_FILE, 'notes.txt',
                                'snapshot_iter_1800.keep']


def test_resuming_in_its_own_directory_continues_the_run(tmp_path):
    out = str(tmp_path)
    write(out, 'args.json', 'log', 'snapshot_iter_12', '.snapshot_iter_24x'
          '.part')
    with claim.claim(out, resume=os.path.join(out, 'snapshot_iter_12')):
        # The killed writer's temporary file is gone, the run's files stay.
        assert listing(out) == [result_dir.LOCK_FILE, 'args.json', 'log',
                                'snapshot_iter_12']
    other = str(tmp_path / 'other')
    os.mkdir(other)
    write(other, 'snapshot_iter_12')
    with pytest.raises(errors.ResultError, match='holds the results of'):
        with claim.claim(out, resume=os.path.join(other,
                                                  'snapshot_iter_12')):
            pass
