"""packed_format.py: bit packing, saving and the checks made on loading."""
import json
import os

import numpy
import pytest

import helpers
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net import errors


@pytest.mark.parametrize('n', [1, 63, 64, 65, 130, 784])
def test_pack_signs_round_trip(n):
    x = numpy.random.RandomState(n).choice([-1., 1.], (5, n))
    packed = packed_format.pack_signs(x)
    assert packed.dtype == numpy.uint64
    assert packed.shape == (5, packed_format.words(n))
    numpy.testing.assert_array_equal(packed_format.unpack_signs(packed, n),
                                     x)


def test_pack_signs_bit_order_padding_and_zero():
    x = -numpy.ones((1, 70), numpy.float32)
    x[0, [0, 3, 64, 69]] = 1
    x[0, 5] = 0.0  # sign(0) is +1
    x[0, 6] = -0.0  # and so is sign(-0)
    packed = packed_format.pack_signs(x)
    assert packed.tolist() == [[1 | 8 | 32 | 64, 1 | 32]]  # padding is 0


@pytest.fixture
def network():
    model, config = helpers.binarized_model(units=70, layers=2)
    return packed_export.export(model, config)


def test_save_load_round_trip(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, network)
    loaded = packed_format.load(path)
    assert loaded.meta == network.meta
    assert loaded.sizes == [784, 70, 70, 10]
    for name, array in network.arrays().items():
        if name != 'meta':
            assert loaded.arrays()[name].dtype == array.dtype
            numpy.testing.assert_array_equal(loaded.arrays()[name], array)
    assert os.listdir(str(tmp_path)) == ['net.npz']  # no temporary left


def rewrite(path, network, **changes):
    """Saves ``network``'s arrays with ``changes`` (None removes one)."""
    arrays = network.arrays()
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)


def load_error(path):
    with pytest.raises(errors.PackedFormatError) as e:
        packed_format.load(path)
    message = str(e.value)
    assert path in message and '\n' not in message
    return message


def test_load_rejects_another_version(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    meta = dict(network.meta, version=packed_format.VERSION + 1)
    rewrite(path, network, meta=numpy.array(json.dumps(meta)))
    message = load_error(path)
    assert 'format version {}'.format(packed_format.VERSION + 1) in message
    assert 'reads versions 1 and 2' in message and 'export' in message


def test_load_rejects_wrong_shapes(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    rewrite(path, network, W1=network.weights[1][:, :1])
    assert 'W1 is uint64 of shape (70, 1), expected uint64 of shape ' \
        '(70, 2)' in load_error(path)
    rewrite(path, network, T0=network.thresholds[0].astype(numpy.int64))
    assert 'T0 is int64' in load_error(path)
    meta = dict(network.meta, sizes=[784, 70, 71, 10])
    rewrite(path, network, meta=numpy.array(json.dumps(meta)))
    assert 'W1' in load_error(path)


def test_load_rejects_missing_arrays_and_metadata(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    rewrite(path, network, gamma=None)
    assert 'array gamma is missing' in load_error(path)
    rewrite(path, network, meta=None)
    assert 'no metadata' in load_error(path)
    rewrite(path, network, meta=numpy.array('{"format": "other"}'))
    assert 'quantized_net.packed' in load_error(path)


def test_load_rejects_other_files(tmp_path, network):
    missing = str(tmp_path / 'missing.npz')
    assert 'cannot read' in load_error(missing)
    text = str(tmp_path / 'text.npz')
    with open(text, 'w') as f:
        f.write('not an archive')
    assert 'not a packed network' in load_error(text)
    single = str(tmp_path / 'single.npy')
    numpy.save(single, numpy.zeros(3))
    assert 'single array' in load_error(single)
    good = str(tmp_path / 'net.npz')
    packed_format.save(good, network)
    with open(good, 'rb') as f:
        data = f.read()
    truncated = str(tmp_path / 'truncated.npz')
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])
    load_error(truncated)


def replace_member(path, name, data):
    """Rewrites member ``name`` of the archive at ``path`` as ``data``
    (the bytes of a .npy file), deflated."""
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = {info.filename: z.read(info) for info in z.infolist()}
    members[name + '.npy'] = data
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for member, content in members.items():
            z.writestr(member, content)


def npy_header(dtype, shape):
    import io
    buffer = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(buffer, {
        'descr': numpy.dtype(dtype).str, 'fortran_order': False,
        'shape': shape})
    return buffer.getvalue()


def test_load_reads_headers_before_data(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, network)
    # A member declaring 104 TiB: refused from its header, nothing read.
    replace_member(path, 'W0', npy_header(numpy.uint64, (2 ** 31, 2 ** 13)))
    assert 'W0 declares uint64 of shape (2147483648, 8192) but holds' in \
        load_error(path)
    # A member that inflates to far more than its header declares: a
    # small file that would expand to 64 MiB is refused unread.
    packed_format.save(path, network)
    bomb = npy_header(numpy.uint64, (70, 13)) + bytes(64 * 2 ** 20)
    replace_member(path, 'W0', bomb)
    assert os.path.getsize(path) < 2 ** 20
    assert 'W0 declares uint64 of shape (70, 13) but holds 67108864 bytes' \
        in load_error(path)
    # Sizes beyond what a file may declare.
    meta = dict(network.meta, sizes=[784, 2 ** 20, 10])
    rewrite(path, network, meta=numpy.array(json.dumps(meta)))
    assert 'fully connected layers take and give [784, 1048576, 10] ' \
        'values: at most 65536 each' in load_error(path)
    # An object (pickled) member is never unpickled.
    packed_format.save(path, network)
    replace_member(path, 'W0', npy_header(object, (70, 13)) + b'\x80\x04.')
    assert 'W0 declares object' in load_error(path)


def test_load_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = str(tmp_path / 'fifo.packed.npz')
    os.mkfifo(fifo)  # opened for reading, it would wait for a writer
    assert load_error(fifo) == '{} is a FIFO, not a regular file; give a ' \
        'file.'.format(fifo)
    assert load_error('/dev/zero') == '/dev/zero is a character device, ' \
        'not a regular file; give a file.'
    assert load_error(str(tmp_path)).endswith(
        'is a directory, not a regular file; give a file.')
    missing = str(tmp_path / 'missing.npz')
    assert load_error(missing) == 'cannot read {}: it does not exist; give ' \
        'a file that export.py wrote.'.format(missing)


def test_load_refuses_metadata_that_is_not_json_of_bounded_depth(
        tmp_path, network):
    path = str(tmp_path / 'net.npz')
    rewrite(path, network, meta=numpy.array('[' * 100000 + ']' * 100000))
    assert load_error(path) == '{} is not a packed network: its JSON nests ' \
        '100000 deep (at most 32).'.format(path)
    rewrite(path, network, meta=numpy.array('{"format": "\ud800"}'))
    assert load_error(path).startswith('{} is not a packed network: '
                                       "'utf-8' codec can't decode".format(
                                           path))
    rewrite(path, network, meta=numpy.array('{"format": '))
    assert load_error(path).startswith('{} is not a packed network: '
                                       'Expecting value'.format(path))


def test_load_refuses_a_header_numpy_cannot_parse(tmp_path, network):
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, network)
    # An unclosed bracket: NumPy's parser raises tokenize.TokenError.
    header = b"{'descr': '<i4', 'fortran_order': False, 'shape': (70,"
    replace_member(path, 'T0', b'\x93NUMPY\x01\x00' + len(header).to_bytes(
        2, 'little') + header + bytes(280))
    assert load_error(path).startswith('{} is corrupt ('.format(path))


def test_load_refuses_a_compression_numpy_does_not_write(tmp_path,
                                                         network):
    import zipfile
    path = str(tmp_path / 'net.npz')
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_BZIP2) as z:
        for name, array in network.arrays().items():
            z.writestr(name + '.npy', npy_header(array.dtype, array.shape) +
                       array.tobytes())
    assert load_error(path) == '{} is corrupt (meta is compressed by method ' \
        '12, which NumPy does not write); export it again.'.format(path)


def test_the_source_fingerprint_round_trips(tmp_path):
    model, config = helpers.binarized_model(units=24)
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, packed_export.export(model, config, 'ab' * 32))
    assert packed_export.source_of(packed_format.load(path)) == 'ab' * 32
    packed_format.save(path, packed_export.export(model, config))
    assert packed_export.source_of(packed_format.load(path)) is None


@pytest.fixture
def convnet():
    model, config = helpers.binarized_convnet('5C3-P2-7C3-P2-9FC')
    return packed_export.export(model, config)


def conv_meta(network, **changes):
    """``network``'s metadata with the second convolution changed."""
    convolutions = [dict(c) for c in network.meta['convolutions']]
    convolutions[1].update(changes)
    return dict(network.meta, convolutions=convolutions)


@pytest.mark.parametrize('meta,message', [
    (lambda n: conv_meta(n, ksize=16),
     'convolution 1 is not 1 to 65536 filters of size 1 to 15'),
    (lambda n: conv_meta(n, pad=3),
     'convolution 1 is not 1 to 65536 filters'),
    (lambda n: conv_meta(n, pool=1), 'pooling 0 or 2 to 15'),
    (lambda n: conv_meta(n, stride=True), 'stride 1 to 15'),
    (lambda n: conv_meta(n, in_shape=[5, 14]),
     'convolution 1 takes [5, 14], not [channels, height, width]'),
    (lambda n: conv_meta(n, in_shape=[5, 14, 5000]),
     'at most 65536 channels and 4096 pixels a side'),
    (lambda n: conv_meta(n, extra=1), 'does not have exactly the fields'),
    (lambda n: conv_meta(n, in_shape=[5, 14, 13]),
     'convolution 1 maps 910 values to 294, not sizes 980 to 343'),
    (lambda n: conv_meta(n, in_shape=[5, 1, 1], ksize=1, pad=0,
                         pool=2), 'convolution 1 leaves no output'),
    (lambda n: dict(n.meta, convolutions={'a': 1}),
     'convolutions are not a list of at most 3 layers'),
    (lambda n: dict(n.meta, convolutions=n.meta['convolutions'] * 2),
     'convolutions are not a list of at most 3 layers'),
    (lambda n: dict(n.meta, version=1), 'version 1 has no convolutions'),
    (lambda n: dict(n.meta, input={'value': '3p'}),
     "the input's integer value is not one of 2p - 255, p"),
    (lambda n: dict(n.meta, input=[]), "the input's integer value"),
])
def test_load_refuses_convolutions_that_do_not_add_up(
        tmp_path, convnet, meta, message):
    path = str(tmp_path / 'net.npz')
    rewrite(path, convnet, meta=numpy.array(json.dumps(meta(convnet))))
    assert message in load_error(path)


def test_a_filter_row_is_checked_against_its_taps(tmp_path, convnet):
    path = str(tmp_path / 'net.npz')
    rewrite(path, convnet, T1=convnet.thresholds[1][:6])
    assert 'T1 is int32 of shape (6,), expected int32 of shape (7,)' in \
        load_error(path)
    meta = conv_meta(convnet, filters=8)
    meta['sizes'] = [784, 980, 392, 9, 10]
    rewrite(path, convnet, meta=numpy.array(json.dumps(meta)))
    assert 'W1 is uint64 of shape (7, 1), expected uint64 of shape ' \
        '(8, 1)' in load_error(path)
