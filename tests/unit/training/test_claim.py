"""claim.py: one run per directory, and a new run never touches another
run's files, nor anything a link, a FIFO or a planted name points to.
(That the kernel releases the lock of a killed run is test_faults.py's.)"""
import errno
import os
import stat

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
    # Chainer's temporary snapshot directories are not the project's: a
    # directory of that name may be another run's results.
    os.mkdir(os.path.join(out, 'tmpsnapshot_iter_results'))
    write(os.path.join(out, 'tmpsnapshot_iter_results'), 'model.npz')
    with claim.claim(out, replace=True):
        assert listing(out) == [result_dir.LOCK_FILE, 'notes.txt',
                                'snapshot_iter_1800.keep',
                                'tmpsnapshot_iter_results']
    assert listing(os.path.join(out, 'tmpsnapshot_iter_results')) == [
        'model.npz']


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


def snapshot_of(directory):
    """``{name: (mode, size, bytes or link target)}`` of everything in
    ``directory``, links not followed: what a refused run must leave as it
    is."""
    found = {}
    for folder, subfolders, names in os.walk(directory):
        for name in subfolders + names:
            path = os.path.join(folder, name)
            status = os.lstat(path)
            if stat.S_ISLNK(status.st_mode):
                content = os.readlink(path)
            elif stat.S_ISREG(status.st_mode):
                with open(path, 'rb') as f:
                    content = f.read()
            else:
                content = None
            found[os.path.relpath(path, directory)] = (
                status.st_mode, status.st_mtime_ns, content)
    return found


def test_a_refused_run_touches_nothing(tmp_path):
    out = str(tmp_path / 'out')
    os.mkdir(out)
    write(out, 'args.json', 'snapshot_iter_12', '.log123.part',
          '.snapshot_iter_24abcdefgh.part')
    os.mkdir(os.path.join(out, 'tmpsnapshot_iter_results'))
    before = snapshot_of(out)
    with pytest.raises(errors.ResultError, match='holds the results of'):
        with claim.claim(out):
            pass
    assert snapshot_of(out) == before


def test_leftovers_are_removed_once_the_run_is_accepted(tmp_path):
    out = str(tmp_path / 'out')
    other = str(tmp_path / 'other')
    os.mkdir(out)
    os.mkdir(other)
    write(other, 'precious.txt')
    write(out, '.log123.part', 'keep.part')
    # Links and directories of a temporary file's name are not a killed
    # writer's leftovers: they stay, and what they point to too.
    os.symlink(os.path.join(other, 'precious.txt'),
               os.path.join(out, '.model.npzabcdefgh.part'))
    os.mkdir(os.path.join(out, '.snapshot_iter_12abcdefgh.part'))
    with claim.claim(out):
        assert listing(out) == [
            '.model.npzabcdefgh.part', '.quantized_net.lock',
            '.snapshot_iter_12abcdefgh.part', 'keep.part']
    assert listing(other) == ['precious.txt']


def test_replace_removes_links_not_what_they_point_to(tmp_path):
    out = str(tmp_path / 'out')
    other = str(tmp_path / 'other')
    os.mkdir(out)
    os.mkdir(other)
    write(other, 'model.npz')
    os.symlink(os.path.join(other, 'model.npz'),
               os.path.join(out, 'model.npz'))
    with claim.claim(out, replace=True):
        assert listing(out) == [result_dir.LOCK_FILE]
    with open(os.path.join(other, 'model.npz')) as f:
        assert f.read() == 'model.npz'


def test_replace_refuses_a_directory_of_a_run_files_name(tmp_path):
    out = str(tmp_path / 'out')
    os.mkdir(out)
    write(out, 'args.json')
    os.mkdir(os.path.join(out, 'log'))
    write(os.path.join(out, 'log'), 'inside')
    before = snapshot_of(out)
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(out, replace=True):
            pass
    assert str(e.value) == (
        '{} is a directory, not a file a run wrote; --replace removes only '
        'those. Move it away, or choose another --out.'.format(
            os.path.join(out, 'log')))
    assert snapshot_of(out) == before


def test_resuming_in_place_from_an_earlier_snapshot_is_refused(tmp_path):
    out = str(tmp_path)
    write(out, 'args.json', 'log', 'snapshot_iter_12', 'snapshot_iter_24')
    before = snapshot_of(out)
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(out, resume=os.path.join(out, 'snapshot_iter_12')):
            pass
    assert str(e.value) == (
        '{0} holds a later snapshot than {1} (snapshot_iter_24), which '
        'continuing from it here would overwrite; resume from {2}, or resume '
        'into another --out.'.format(
            out, os.path.join(out, 'snapshot_iter_12'),
            os.path.join(out, 'snapshot_iter_24')))
    assert snapshot_of(out) == before
    with claim.claim(out, resume=os.path.join(out, 'snapshot_iter_24')):
        pass


@pytest.mark.parametrize('make,kind', [
    (lambda path: os.symlink(path + '.missing', path), 'link'),
    (lambda path: os.mkfifo(path), 'a FIFO'),
    (lambda path: os.symlink('/dev/null', path), 'a character device'),
    (lambda path: open(path, 'w').close(), 'a file')])
def test_an_out_that_is_no_directory_says_what_it_is(tmp_path, make, kind):
    path = str(tmp_path / 'out')
    make(path)
    before = snapshot_of(str(tmp_path))
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(path):
            pass
    if kind == 'link':
        assert str(e.value) == (
            '--out {0} is a symbolic link to {0}.missing, which does not '
            'exist; create that directory, or give another --out.'.format(
                path))
    else:
        assert str(e.value) == '--out {} is {}, not a directory.'.format(
            path, kind)
    assert snapshot_of(str(tmp_path)) == before


def test_an_out_too_long_for_a_runs_files_is_refused_up_front(tmp_path):
    name_max = os.pathconf(str(tmp_path), 'PC_NAME_MAX')
    path_max = os.pathconf(str(tmp_path), 'PC_PATH_MAX')
    long_name = str(tmp_path / ('n' * (name_max + 1)))
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(long_name):
            pass
    assert str(e.value) == (
        '--out {} has a name of {} bytes, longer than this system allows '
        '({}); choose a shorter name.'.format(long_name, name_max + 1,
                                               name_max))
    # Room for the lock's name, not for a snapshot's temporary file.
    depth = str(tmp_path)
    while len(depth) + 1 + 60 < path_max - result_dir.LONGEST_NAME - 2:
        depth = os.path.join(depth, 'd' * 50)
    out = depth + 'x' * (path_max - result_dir.LONGEST_NAME - len(depth))
    assert len(out) + 1 + len(result_dir.LOCK_FILE) < path_max
    with pytest.raises(errors.ResultError) as e:
        with claim.claim(out):
            pass
    assert str(e.value).startswith('--out {} is too long: the files a run '
                                   'writes there would have paths of '
                                   .format(out))
    assert str(e.value).endswith('more than this system allows ({}); choose '
                                 'a shorter path.'.format(path_max - 1))
    assert os.listdir(str(tmp_path)) == []  # nothing was created


def test_a_planted_lock_link_is_refused_and_its_target_untouched(tmp_path):
    out = str(tmp_path / 'out')
    os.mkdir(out)
    target = tmp_path / 'precious.txt'
    target.write_bytes(b'x' * 1400)
    os.symlink(str(target), os.path.join(out, result_dir.LOCK_FILE))
    with pytest.raises(errors.ResultError) as e:
        claim.DirectoryLock(out).acquire()
    assert str(e.value) == (
        '{} is a symbolic link, not a lock a run made; it was left as it is. '
        'Remove it, or choose another directory.'.format(
            os.path.join(out, result_dir.LOCK_FILE)))
    assert target.read_bytes() == b'x' * 1400
    assert os.path.islink(os.path.join(out, result_dir.LOCK_FILE))


def test_a_hard_linked_lock_is_refused_not_truncated(tmp_path):
    out = str(tmp_path / 'out')
    os.mkdir(out)
    target = tmp_path / 'precious.txt'
    target.write_bytes(b'x' * 1400)
    os.link(str(target), os.path.join(out, result_dir.LOCK_FILE))
    with pytest.raises(errors.ResultError, match=r'is a file of 2 names \(a '
                       r'hard link\), not a lock a run made'):
        claim.DirectoryLock(out).acquire()
    assert target.read_bytes() == b'x' * 1400
    assert os.path.exists(os.path.join(out, result_dir.LOCK_FILE))


@pytest.mark.parametrize('make,kind', [
    (os.mkfifo, 'a FIFO'), (os.mkdir, 'a directory')])
def test_a_lock_name_taken_by_another_kind_is_refused(tmp_path, make, kind):
    out = str(tmp_path)
    make(os.path.join(out, result_dir.LOCK_FILE))
    with pytest.raises(errors.ResultError, match='^{} is {}, not a lock'
                       .format(os.path.join(out, result_dir.LOCK_FILE),
                               kind)):
        claim.DirectoryLock(out).acquire()


def test_a_stale_lock_of_a_killed_process_is_taken_over(tmp_path):
    out = str(tmp_path)
    # What a killed process leaves: the file, with its id, but no lock.
    with open(os.path.join(out, result_dir.LOCK_FILE), 'w') as f:
        f.write('999999999')
    with claim.DirectoryLock(out) as lock:
        with open(lock.path) as f:
            assert f.read() == str(os.getpid())
    assert os.listdir(out) == []


def test_release_removes_only_the_file_it_locked(tmp_path):
    out = str(tmp_path)
    lock = claim.DirectoryLock(out).acquire()
    os.remove(lock.path)
    write(out, result_dir.LOCK_FILE)  # another's, made meanwhile
    lock.release()
    assert listing(out) == [result_dir.LOCK_FILE]


def test_a_full_disk_when_the_lock_is_written(tmp_path, monkeypatch):
    out = str(tmp_path)

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(claim.os, 'write', full)
    with pytest.raises(errors.ResultError) as e:
        claim.DirectoryLock(out).acquire()
    assert str(e.value) == 'cannot write {}: No space left on device.'.format(
        os.path.join(out, result_dir.LOCK_FILE))
    assert os.listdir(out) == []
