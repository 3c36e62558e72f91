"""safe_npz.py: .npz files read as data, never unpickled, never read
beyond what they declare."""
import io
import os
import pickle
import zipfile

import numpy
import pytest

import chainer
import chainer.links as L

from quantized_net.training import safe_npz
from quantized_net import errors

REFUSED = 'is not an archive of arrays ({}); it was not loaded.'
PICKLED = 'it holds pickled data, which could run any code'


class Planted(object):
    """Unpickling this creates a file: proof that the pickle was run."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def refused(path):
    with pytest.raises(errors.ResultError) as e:
        safe_npz.read_npz(path)
    assert '\n' not in str(e.value)
    return str(e.value)


def npy(array_header, data):
    """A .npy file's bytes: the header of ``array_header`` and ``data``."""
    buffer = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(buffer, array_header)
    return buffer.getvalue() + data


def zip_of(path, members):
    with zipfile.ZipFile(path, 'w') as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_arrays_round_trip(tmp_path):
    path = str(tmp_path / 'a.npz')
    numpy.savez_compressed(path, w=numpy.arange(6.).reshape(2, 3),
                           n=numpy.array(2), s=numpy.array('["x"]'))
    arrays = safe_npz.read_npz(path)
    assert sorted(arrays) == ['n', 's', 'w']
    numpy.testing.assert_array_equal(arrays['w'], numpy.arange(6.).reshape(
        2, 3))
    assert int(arrays['n']) == 2 and str(arrays['s']) == '["x"]'


def test_no_pickle_is_ever_run(tmp_path):
    evidence = str(tmp_path / 'the_pickle_ran')
    bare = str(tmp_path / 'bare')
    with open(bare, 'wb') as f:
        pickle.dump(Planted(evidence), f)
    inside = zip_of(str(tmp_path / 'inside.npz'), {
        'x.npy': npy({'descr': '|O', 'fortran_order': False, 'shape': (1,)},
                     pickle.dumps([Planted(evidence)]))})
    for path in (bare, inside):
        assert REFUSED.format(PICKLED) in refused(path)
    objects = str(tmp_path / 'objects.npz')
    numpy.savez(objects, x=numpy.array([Planted(evidence)], dtype=object))
    assert REFUSED.format(PICKLED) in refused(objects)
    assert not os.path.exists(evidence)


@pytest.mark.parametrize('content,why', [
    (b'', 'empty, damaged, or not an .npz file'),
    (b'PK\x03\x04 not a zip', 'empty, damaged, or not an .npz file'),
    (b'hello', 'empty, damaged, or not an .npz file')])
def test_what_is_not_an_archive(tmp_path, content, why):
    path = tmp_path / 'f'
    path.write_bytes(content)
    assert refused(str(path)) == '{} {}'.format(str(path),
                                                REFUSED.format(why))


def test_a_single_array_and_a_member_that_is_no_array(tmp_path):
    single = str(tmp_path / 'single.npy')
    numpy.save(single, numpy.zeros(3))
    assert REFUSED.format('a single array') in refused(single)
    text = zip_of(str(tmp_path / 'text.npz'), {'x.npy': b'just text'})
    assert REFUSED.format('x is not an array') in refused(text)


def test_a_member_declaring_more_than_it_holds_is_not_read(tmp_path):
    path = zip_of(str(tmp_path / 'big.npz'), {
        'x.npy': npy({'descr': '<f4', 'fortran_order': False,
                      'shape': (10 ** 12,)}, b'\0' * 8)})
    assert 'damaged: x declares 4000000000000 bytes but holds 8' in \
        refused(path)


def test_a_truncated_archive(tmp_path):
    whole = str(tmp_path / 'whole.npz')
    numpy.savez_compressed(whole, x=numpy.random.RandomState(0).rand(1000))
    with open(whole, 'rb') as f:
        content = f.read()
    for cut in (3, 2):
        path = tmp_path / 'cut{}.npz'.format(cut)
        path.write_bytes(content[:len(content) // cut])
        assert 'is not an archive of arrays (' in refused(str(path))


def test_load_npz_fills_a_link_and_deserialize_takes_optional_keys(
        tmp_path):
    link = L.Linear(3, 2)
    path = str(tmp_path / 'link.npz')
    chainer.serializers.save_npz(path, link)
    other = L.Linear(3, 2)
    safe_npz.load_npz(path, other)
    numpy.testing.assert_array_equal(other.W.array, link.W.array)
    arrays = safe_npz.read_npz(path)
    del arrays['b']
    with pytest.raises(KeyError):
        safe_npz.deserialize(arrays, other)
    kept = other.b.array.copy()
    safe_npz.deserialize(arrays, other, optional=lambda key: key == 'b')
    numpy.testing.assert_array_equal(other.b.array, kept)


def patch_directory(path, member, offset, fmt, value):
    """Rewrites a field of ``member``'s entry in the zip directory of the
    file ``path``: ``offset`` bytes into the entry, packed as ``fmt``."""
    import struct
    with open(path, 'rb') as f:
        data = bytearray(f.read())
    name = member.encode()
    entry = data.find(b'PK\x01\x02')
    while data[entry + 46:entry + 46 + len(name)] != name:
        entry = data.find(b'PK\x01\x02', entry + 1)
    struct.pack_into(fmt, data, entry + offset, value)
    with open(path, 'wb') as f:
        f.write(bytes(data))
    return path


def test_what_is_not_a_regular_file_is_refused_before_it_is_opened(
        tmp_path):
    fifo = str(tmp_path / 'fifo.npz')
    os.mkfifo(fifo)  # opened for reading, it would wait for a writer
    assert refused(fifo) == '{} is a FIFO, not a regular file; give a ' \
        'file.'.format(fifo)
    assert refused(str(tmp_path)).endswith('is a directory, not a regular '
                                           'file; give a file.')
    assert refused('/dev/zero') == '/dev/zero is a character device, not a ' \
        'regular file; give a file.'
    missing = str(tmp_path / 'missing.npz')
    assert refused(missing) == '{} does not exist.'.format(missing)


def test_a_single_array_is_not_read(tmp_path):
    import tracemalloc
    path = tmp_path / 'huge.npy'
    path.write_bytes(npy({'descr': '<f8', 'fortran_order': False,
                          'shape': (2 ** 40,)}, b''))
    tracemalloc.start()
    try:
        assert REFUSED.format('a single array') in refused(str(path))
        assert tracemalloc.get_traced_memory()[1] < 2 ** 20
    finally:
        tracemalloc.stop()


def test_a_member_numpy_did_not_write_is_refused_in_one_line(tmp_path):
    data = npy({'descr': '<f4', 'fortran_order': False, 'shape': (2,)},
               b'\0' * 8)
    # A compression method zipfile does not know (it would raise
    # NotImplementedError), and one it knows but NumPy never writes.
    for method in (99, zipfile.ZIP_BZIP2):
        path = zip_of(str(tmp_path / 'm{}.npz'.format(method)),
                      {'x.npy': data})
        patch_directory(path, 'x.npy', 10, '<H', method)
        assert REFUSED.format('x is compressed by method {}, which NumPy '
                              'does not write'.format(method)) in \
            refused(path)
    # A header NumPy's parser fails on with tokenize.TokenError.
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,"
    broken = zip_of(str(tmp_path / 'broken.npz'), {
        'x.npy': b'\x93NUMPY\x01\x00' + len(header).to_bytes(2, 'little') +
        header + b'\0' * 8})
    assert refused(broken).startswith('{} is not an archive of arrays '
                                      '(damaged: '.format(broken))
    # A member's name that would break the line or reach the terminal.
    named = zip_of(str(tmp_path / 'named.npz'), {'x\n\x1b[31m': b'text'})
    message = refused(named)
    assert message.isprintable() and '\\x1b[31m' in message


def test_a_zip_entry_promising_more_than_the_file_holds_is_not_read(
        tmp_path):
    data = npy({'descr': '<f4', 'fortran_order': False, 'shape': (2,)},
               b'\0' * 8)
    # Stored: 2 GiB said to be in a file of a few hundred bytes.
    stored = zip_of(str(tmp_path / 'stored.npz'), {'x.npy': data})
    for offset in (20, 24):  # compressed and uncompressed size
        patch_directory(stored, 'x.npy', offset, '<I', 2 ** 31)
    assert REFUSED.format('damaged: x ends beyond the end of the file') in \
        refused(stored)
    # Deflated: more than deflate can make of the bytes stored.
    deflated = str(tmp_path / 'deflated.npz')
    with zipfile.ZipFile(deflated, 'w', zipfile.ZIP_DEFLATED) as archive:
        archive.writestr('x.npy', data)
    patch_directory(deflated, 'x.npy', 24, '<I', 2 ** 31)
    assert 'damaged: x claims 2147483648 bytes but stores ' in \
        refused(deflated)


def test_the_arrays_together_are_bounded(tmp_path):
    path = str(tmp_path / 'a.npz')
    numpy.savez(path, a=numpy.zeros(100, numpy.float32),
                b=numpy.zeros(100, numpy.float32))
    assert sorted(safe_npz.read_npz(path, limit=800)) == ['a', 'b']
    with pytest.raises(errors.ResultError) as e:
        safe_npz.read_npz(path, limit=799)
    assert str(e.value) == '{} holds 800 bytes of arrays, more than the 799 ' \
        'it may hold; it was not loaded.'.format(path)
    # Only the members asked for are read, and counted.
    assert list(safe_npz.read_npz(path, limit=400, names=('b', 'c'))) == [
        'b']
    with pytest.raises(errors.ResultError) as e:
        safe_npz.read_npz(path, limit=399, names=('b',))
    assert str(e.value) == '{} holds 400 bytes of arrays in b, more than ' \
        'the 399 it may hold; it was not loaded.'.format(path)
    # The default holds a bnn snapshot of 4096 units and 3 layers (its
    # weights and Adam's two moments) four times over.
    sizes = [784, 4096, 4096, 4096, 10]
    params = sum(a * b + 5 * b for a, b in zip(sizes, sizes[1:]))
    assert 4 * 3 * 4 * params < safe_npz.MAX_ARRAY_BYTES
