import os
import stat

import pytest

from quantized_net import atomic_file
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
