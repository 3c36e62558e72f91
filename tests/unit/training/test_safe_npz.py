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
