"""untrusted_file.py: only a regular file is read, never more than its
kind may hold, and JSON of bounded nesting; every refusal one line, and
nothing waits on a FIFO or reads a device without end."""
import os
import socket
import stat

import pytest

from quantized_net import errors
from quantized_net import untrusted_file


def make_socket(path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    return server


@pytest.mark.parametrize('make,kind', [
    (os.mkfifo, 'a FIFO'),
    (os.mkdir, 'a directory'),
    (make_socket, 'a socket'),
    (lambda path: os.symlink('/dev/zero', path), 'a character device'),
    (lambda path: os.symlink('/dev/null', path), 'a character device')])
def test_what_is_not_a_regular_file_is_refused_before_it_is_read(
        tmp_path, make, kind):
    path = str(tmp_path / 'input')
    made = make(path)
    try:
        for read in (
                lambda: untrusted_file.open_regular(path, errors.UsageError),
                lambda: untrusted_file.read_bytes(path, 10,
                                                  errors.UsageError),
                lambda: untrusted_file.read_json(path, 10,
                                                 errors.ResultError)):
            with pytest.raises(errors.UsageError) as e:
                read()
            assert str(e.value) == (
                '{} is {}, not a regular file; give a file.'.format(path,
                                                                    kind))
    finally:
        if made is not None:
            made.close()


def test_a_missing_file_and_a_link_to_nothing(tmp_path):
    path = str(tmp_path / 'missing')
    with pytest.raises(errors.DatasetError) as e:
        untrusted_file.read_bytes(path, 10, errors.DatasetError)
    assert str(e.value) == '{} does not exist.'.format(path)
    os.symlink(path, str(tmp_path / 'link'))
    with pytest.raises(errors.DatasetError) as e:
        untrusted_file.open_regular(str(tmp_path / 'link'),
                                    errors.DatasetError)
    assert str(e.value) == '{} does not exist.'.format(tmp_path / 'link')


def test_an_unreadable_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip('root reads any file')
    path = tmp_path / 'secret'
    path.write_text('x')
    path.chmod(0)
    with pytest.raises(errors.UsageError, match='^cannot read .*: '
                       'Permission denied.$'):
        untrusted_file.read_bytes(str(path), 10, errors.UsageError)


def test_a_link_to_a_regular_file_is_read(tmp_path):
    (tmp_path / 'file').write_bytes(b'data')
    os.symlink(str(tmp_path / 'file'), str(tmp_path / 'link'))
    assert untrusted_file.read_bytes(str(tmp_path / 'link'), 4,
                                     errors.UsageError) == b'data'
    with untrusted_file.open_regular(str(tmp_path / 'link'),
                                     errors.UsageError) as f:
        assert f.read() == b'data'
        # Opened without waiting, then read as a file normally is.
        assert os.get_blocking(f.fileno())


def test_a_link_is_refused_where_links_are_not_followed(tmp_path):
    (tmp_path / 'file').write_bytes(b'data')
    link = str(tmp_path / 'link')
    os.symlink(str(tmp_path / 'file'), link)
    with pytest.raises(errors.ResultError) as e:
        untrusted_file.open_regular(link, errors.ResultError, follow=False)
    assert str(e.value) == ('{} is a symbolic link, not a regular file; give '
                            'a file.'.format(link))
    with untrusted_file.open_regular(str(tmp_path / 'file'),
                                     errors.ResultError, follow=False) as f:
        assert f.read() == b'data'


def test_the_limit_of_a_kind_of_file(tmp_path):
    path = tmp_path / 'args.json'
    path.write_bytes(b'x' * 11)
    assert untrusted_file.read_bytes(str(path), 11, errors.UsageError) == \
        b'x' * 11
    with pytest.raises(errors.ResultError) as e:
        untrusted_file.read_bytes(str(path), 10, errors.ResultError,
                                  'configuration')
    assert str(e.value) == ('{} is 11 bytes, more than a configuration may '
                            'hold (10); it was not read.'.format(path))


@pytest.mark.parametrize('data,depth', [
    (b'1', 0), (b'[]', 1), (b'{"a": [[1]]}', 3), (b'"[[[[[["', 0),
    (b'["\\"[[[", [{}]]', 3), (b'[' * 40 + b']' * 40, 40)])
def test_json_depth_leaves_strings_out(data, depth):
    assert untrusted_file.json_depth(data) == depth


def test_json_nested_too_deep_is_refused_without_parsing(tmp_path):
    path = str(tmp_path / 'log')
    deep = b'[' * 1000000 + b']' * 1000000  # recursion would end Python
    with pytest.raises(errors.ResultError) as e:
        untrusted_file.parse_json(deep, path, errors.ResultError, 'log')
    assert str(e.value) == ('{} is not a log: its JSON nests 1000000 deep '
                            '(at most 32).'.format(path))
    limit = untrusted_file.MAX_JSON_DEPTH
    assert untrusted_file.parse_json(b'[' * limit + b']' * limit, path,
                                     errors.ResultError) == eval(
        '[' * limit + ']' * limit)


@pytest.mark.parametrize('data,message', [
    (b'', 'Expecting value: line 1 column 1 (char 0).'),
    (b'{"a": 1', "Expecting ',' delimiter"),
    (b'\xff\xfe[]', "'utf-8' codec can't decode byte 0xff"),
    (b'[1] [2]', 'Extra data')])
def test_what_is_not_json_is_one_line(tmp_path, data, message):
    path = tmp_path / 'args.json'
    path.write_bytes(data)
    with pytest.raises(errors.ResultError) as e:
        untrusted_file.read_json(str(path), 100, errors.ResultError,
                                 'configuration')
    text = str(e.value)
    assert text.startswith('{} is not a configuration: '.format(path))
    assert message in text and '\n' not in text


def test_kinds_in_words(tmp_path):
    assert untrusted_file.kind(os.stat(str(tmp_path)).st_mode) == \
        'a directory'
    (tmp_path / 'f').write_text('x')
    assert untrusted_file.kind(os.stat(str(tmp_path / 'f')).st_mode) == \
        'a regular file'
    assert untrusted_file.kind(stat.S_IFBLK) == 'a block device'
    assert untrusted_file.kind(stat.S_IFLNK) == 'a symbolic link'


@pytest.mark.parametrize('number', ['9223372036854775808',
                                    '-9223372036854775809', '1' + '0' * 400])
def test_json_integers_beyond_64_bits_are_refused(tmp_path, number):
    path = str(tmp_path / 'log')
    with pytest.raises(errors.ResultError) as e:
        untrusted_file.parse_json('[{{"epoch": {}}}]'.format(number).encode(),
                                  path, errors.ResultError, 'log')
    assert str(e.value) == (
        '{} is not a log: it holds an integer of {} digits, beyond 64 '
        'bits.'.format(path, len(number.lstrip('-'))))
    edge = [2 ** 63 - 1, -2 ** 63]
    assert untrusted_file.parse_json(str(edge).encode(), path,
                                     errors.ResultError) == edge
