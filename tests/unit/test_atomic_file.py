import errno
import os
import signal
import stat
import tempfile

import pytest

from quantized_net import atomic_file
from quantized_net import errors
from quantized_net import signals
from quantized_net.atomic_file import atomic_write


def test_writes_whole_file_with_usual_permissions(tmp_path):
    path = str(tmp_path / 'out.txt')
    with atomic_write(path) as f:
        f.write('hello')
    with open(path) as f:
        assert f.read() == 'hello'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~mask
    assert os.listdir(str(tmp_path)) == ['out.txt']


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / 'out.bin')
    with open(path, 'wb') as f:
        f.write(b'old')
    with pytest.raises(RuntimeError):
        with atomic_write(path, 'wb') as f:
            f.write(b'half')
            raise RuntimeError('interrupted')
    with open(path, 'rb') as f:
        assert f.read() == b'old'
    assert os.listdir(str(tmp_path)) == ['out.bin']


def test_flushes_the_file_before_the_rename_and_the_directory_after(
        tmp_path, monkeypatch):
    from quantized_net import atomic_file
    path = str(tmp_path / 'out.txt')
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(('fsync', stat.S_ISDIR(os.fstat(fd).st_mode)))
        real_fsync(fd)

    def replace(src, dst):
        events.append(('replace', os.path.basename(dst)))
        real_replace(src, dst)
    monkeypatch.setattr(atomic_file.os, 'fsync', fsync)
    monkeypatch.setattr(atomic_file.os, 'replace', replace)
    with atomic_write(path) as f:
        f.write('data')
    # The file's data, then its name, then the directory holding the name.
    assert events == [('fsync', False), ('replace', 'out.txt'),
                      ('fsync', True)]


def test_a_figure_is_written_in_its_suffix_format_or_not_at_all(tmp_path):
    plt = pytest.importorskip('matplotlib.pyplot')
    figure, _ = plt.subplots()
    atomic_file.write_figure(figure, str(tmp_path / 'a.png'))
    assert (tmp_path / 'a.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert not plt.fignum_exists(figure.number)
    figure, _ = plt.subplots()
    with pytest.raises(ValueError):
        atomic_file.write_figure(figure, str(tmp_path / 'a.docx'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a.png']
    assert not plt.fignum_exists(figure.number)


def test_a_full_disk_is_one_line_and_leaves_no_temporary(tmp_path,
                                                         monkeypatch):
    path = str(tmp_path / 'log')
    with open(path, 'w') as f:
        f.write('old')

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic_file.os, 'fsync', full)
    with pytest.raises(errors.ResultError) as e:
        with atomic_write(path) as f:
            f.write('new')
    assert str(e.value) == 'cannot write {}: No space left on device.'.format(
        path)
    assert os.listdir(str(tmp_path)) == ['log']
    with open(path) as f:
        assert f.read() == 'old'


def test_a_name_too_long_is_one_line(tmp_path):
    path = str(tmp_path / ('n' * 250))  # the temporary's name is longer
    with pytest.raises(errors.ResultError) as e:
        with atomic_write(path) as f:
            f.write('x')
    assert str(e.value) == 'cannot write {}: File name too long.'.format(path)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('make,kind', [
    (lambda path: os.symlink(path + '.target', path), 'a symbolic link'),
    (os.mkfifo, 'a FIFO'), (os.mkdir, 'a directory')])
def test_a_link_or_special_file_is_never_replaced(tmp_path, make, kind):
    path = str(tmp_path / 'model.npz')
    make(path)
    before = sorted(os.listdir(str(tmp_path)))
    with pytest.raises(errors.ResultError) as e:
        with atomic_write(path, 'wb') as f:
            f.write(b'x')
    assert str(e.value) == ('{} is {}; it was not replaced. Remove it, or '
                            'write elsewhere.'.format(path, kind))
    assert sorted(os.listdir(str(tmp_path))) == before
    assert not os.path.exists(path + '.target')


def test_a_signal_as_the_temporary_is_created_leaves_none(tmp_path,
                                                          monkeypatch):
    previous = {signum: signal.getsignal(signum)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    real = tempfile.mkstemp

    def mkstemp(**kwargs):
        made = real(**kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # held back until it is known
        return made
    monkeypatch.setattr(atomic_file.tempfile, 'mkstemp', mkstemp)
    signals.install_raising()
    try:
        with pytest.raises(signals.Terminated):
            with atomic_write(str(tmp_path / 'snapshot_iter_12'), 'wb') as f:
                f.write(b'x')
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert os.listdir(str(tmp_path)) == []


def test_what_stopped_the_write_is_reported_where_nothing_can_be_removed(
        tmp_path, monkeypatch):
    # An append-only directory: files are created, but neither renamed
    # over nor removed.
    path = str(tmp_path / 'args.json')

    def refused(*args):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), args[0])
    monkeypatch.setattr(atomic_file.os, 'replace', refused)
    monkeypatch.setattr(atomic_file.os, 'remove', refused)
    with pytest.raises(errors.ResultError) as e:
        with atomic_write(path) as f:
            f.write('new')
    assert str(e.value) == 'cannot write {}: Operation not permitted.'.format(
        path)
