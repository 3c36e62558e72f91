"""Where export.py writes: never through a link, never onto a FIFO, a
device or another's file, and a failure to write (a full disk) leaves
nothing behind: no lock, no temporary file, the earlier file whole."""
import os
import resource
import signal
import subprocess
import sys

import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.training import result_dir

PACKED = packed_format.PACKED_FILE


#: Runs export.py as ``python export.py ARGS`` does, but with every
#: write of an array archive failing as on a full disk.
FULL_DISK = """
import errno, os, runpy, sys
import numpy
def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
numpy.savez = full
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def run(*args, prelude=None, **options):
    """export.py with ``args`` (after the Python code ``prelude``, if
    given); a run that waits (on a FIFO, say) fails the test instead of
    hanging it."""
    script = os.path.join(helpers.ROOT, 'export.py')
    return subprocess.run(
        [sys.executable] + (['-c', prelude] if prelude else []) +
        [script] + [str(a) for a in args], capture_output=True, text=True,
        env=dict(helpers.SCRIPT_ENV, PYTHONDONTWRITEBYTECODE='1'),
        timeout=60, **options)


def succeeds(*args):
    done = run(*args)
    assert done.returncode == 0, done.stderr
    return done


def listing(directory):
    """The names in ``directory`` and the bytes of its files."""
    found = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        found[name] = (os.readlink(path) if os.path.islink(path) else
                       open(path, 'rb').read() if os.path.isfile(path)
                       else None)
    return found


@pytest.fixture(scope='module')
def result(tmp_path_factory):
    """A result directory of a small binarized model."""
    return helpers.write_result(str(tmp_path_factory.mktemp('result')),
                                *helpers.binarized_model(units=64))


@pytest.fixture(scope='module')
def other_result(tmp_path_factory):
    """A result directory of another binarized model."""
    return helpers.write_result(str(tmp_path_factory.mktemp('other')),
                                *helpers.binarized_model(units=64, seed=1))


def test_a_link_fifo_or_device_as_output_is_refused_touching_nothing(
        result, tmp_path):
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    victim = tmp_path / 'precious.txt'
    victim.write_bytes(b'precious ' * 150)
    os.symlink(str(victim), str(out_dir / 'link.npz'))
    os.symlink(str(tmp_path / 'nowhere.npz'), str(out_dir / 'dangling.npz'))
    os.mkfifo(str(out_dir / 'fifo.npz'))
    before = listing(str(out_dir)), listing(result)
    for name, what in (('link.npz', 'a symbolic link'),
                       ('dangling.npz', 'a symbolic link'),
                       ('fifo.npz', 'a FIFO')):
        out = str(out_dir / name)
        assert assert_one_line_error(run(result, '-o', out)) == (
            'export.py: error: cannot write {}: it is {}; give a file '
            'name.'.format(out, what))
    assert assert_one_line_error(run(result, '-o', '/dev/null')) == (
        'export.py: error: cannot write /dev/null: it is a character '
        'device; give a file name.')
    # Not even with --replace, which replaces regular files only.
    assert_one_line_error(run(result, '-o', str(out_dir / 'link.npz'),
                              '--replace'), 'it is a symbolic link')
    assert (listing(str(out_dir)), listing(result)) == before
    assert victim.read_bytes() == b'precious ' * 150
    assert not os.path.exists(str(tmp_path / 'nowhere.npz'))


def test_another_file_is_replaced_only_with_replace(result, tmp_path):
    out = tmp_path / 'notes.npz'
    out.write_bytes(b'mine')
    before = listing(str(tmp_path))
    assert assert_one_line_error(run(result, '-o', out)) == (
        'export.py: error: {} exists (it is not a packed network); it was '
        'not overwritten; give --replace to replace it, or another -o.'
        .format(out))
    assert listing(str(tmp_path)) == before  # no lock, no temporary
    done = run(result, '-o', out, '--replace')
    assert done.returncode == 0, done.stderr
    assert packed_export.source_of(packed_format.load(str(out))) == \
        packed_export.fingerprint(os.path.join(result, 'model.npz'))
    assert sorted(os.listdir(str(tmp_path))) == ['notes.npz']


def refusal(*args):
    return assert_one_line_error(run(*args)).split(': error: ', 1)[1]


def test_an_earlier_export_of_the_same_model_is_replaced(
        result, other_result, tmp_path):
    out = str(tmp_path / 'net.packed.npz')
    succeeds(result, '-o', out)
    first = listing(str(tmp_path))
    succeeds(result, '-o', out)  # the same model: replaced, the same
    assert listing(str(tmp_path)) == first
    # Another model's packed file, and one that records no model.
    assert refusal(other_result, '-o', out) == (
        '{} exists (a packed network of another model); it was not '
        'overwritten; give --replace to replace it, or another -o.'
        .format(out))
    packed_format.save(out, packed_export.export(
        *helpers.binarized_model(units=64)))
    unrecorded = listing(str(tmp_path))
    assert refusal(result, '-o', out) == (
        '{} exists (a packed network that does not record its model); it '
        'was not overwritten; give --replace to replace it, or another -o.'
        .format(out))
    assert listing(str(tmp_path)) == unrecorded
    succeeds(other_result, '-o', out, '--replace')
    assert packed_export.source_of(packed_format.load(out)) == \
        packed_export.fingerprint(os.path.join(other_result, 'model.npz'))
    # The default output, in the result directory, follows the same rule.
    default = os.path.join(result, PACKED)
    try:
        succeeds(result)
        succeeds(result)
        assert packed_format.load(default).sizes == [784, 64, 64, 10]
    finally:
        os.remove(default)


def test_a_full_disk_leaves_no_lock_no_temporary_and_the_old_file(
        result, tmp_path):
    out = str(tmp_path / 'net.packed.npz')
    succeeds(result, '-o', out)
    before = listing(str(tmp_path))
    assert assert_one_line_error(run(result, '-o', out, prelude=FULL_DISK)) \
        == 'export.py: error: cannot write {}: No space left on device.' \
        .format(out)
    assert listing(str(tmp_path)) == before
    assert not os.path.exists(os.path.join(str(tmp_path),
                                           result_dir.LOCK_FILE))


def test_a_file_size_limit_ends_in_one_line_leaving_nothing(result,
                                                             tmp_path):
    out = tmp_path / 'out'
    out.mkdir()

    def limited():
        # A write beyond the limit fails with EFBIG, as one on a full
        # disk fails with ENOSPC, once the signal the kernel sends first
        # is ignored.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
    target = str(out / 'net.packed.npz')
    failed = run(result, '-o', target, preexec_fn=limited)
    assert assert_one_line_error(failed) == (
        'export.py: error: cannot write {}: File too large.'.format(target))
    assert os.listdir(str(out)) == []
