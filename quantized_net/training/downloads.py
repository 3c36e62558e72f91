"""The files of a data set: found in a directory at hand, or downloaded
into a cache whole and verified, and read no further than they promise.

What the data set readers (:mod:`mnist`, :mod:`cifar10`, :mod:`svhn`)
share. A download is written to a temporary file beside its cache entry
and renamed over it only once its checksum matches
(:func:`~quantized_net.atomic_file.atomic_write`), so an interrupted,
oversized or wrong download leaves nothing in the cache; a cached file is
verified again each time it is used. Every read of a file is bounded:
:func:`read_at_most` reads in chunks, so that a file promising more than
it holds costs only what it holds.
"""
import hashlib
import os
import stat
import sys
import urllib.error
import urllib.request

import chainer

from quantized_net.atomic_file import atomic_write
from quantized_net import errors
from quantized_net import untrusted_file

#: Seconds without an answer before a source is given up.
DOWNLOAD_TIMEOUT = 60
#: Bytes read at a time: what a file that promises more than it holds
#: can make a reader allocate beyond what it holds.
READ_CHUNK = 2 ** 20
#: What to do when the cache cannot be used.
CACHE_HINT = ('Set CHAINER_DATASET_ROOT to a writable directory, or pass '
              '--dataset-dir.')


def cache_dir(*parts):
    """The directory ``parts`` inside Chainer's dataset root
    (``$CHAINER_DATASET_ROOT``, by default ``~/.chainer/dataset``)."""
    return os.path.join(chainer.dataset.get_dataset_root(), *parts)


def notice(message):
    """Says ``message`` on stderr as a notice, which is not an error."""
    print('notice: ' + message, file=sys.stderr)


class Rejected(Exception):
    """A download that failed or did not verify; the message says why."""


def read_at_most(f, count, data=b''):
    """``data`` followed by up to ``count`` more bytes of ``f``, read in
    chunks of :data:`READ_CHUNK`, as a bytearray: a file shorter than it
    claims costs only what it holds."""
    data = bytearray(data)
    count += len(data)
    while len(data) < count:
        chunk = f.read(min(READ_CHUNK, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def skip(f, count):
    """Reads and drops up to ``count`` bytes of ``f`` (a stream that
    cannot seek, such as a decompressor) a chunk at a time; returns how
    many there were."""
    skipped = 0
    while skipped < count:
        chunk = f.read(min(READ_CHUNK, count - skipped))
        if not chunk:
            break
        skipped += len(chunk)
    return skipped


def md5(f):
    """The MD5 of the open binary file ``f`` from its start, as hex."""
    f.seek(0)
    digest = hashlib.md5()
    for chunk in iter(lambda: f.read(READ_CHUNK), b''):
        digest.update(chunk)
    return digest.hexdigest()


def file_md5(path, error=errors.DatasetError):
    """The MD5 of the regular file ``path``, as hex.

    Raises:
        error: ``path`` is not a regular file, or cannot be read.
    """
    with untrusted_file.open_regular(path, error) as f:
        try:
            return md5(f)
        except OSError as e:
            raise error('cannot read {}: {}.'.format(path, e.strerror or e))


def check_directory(directory, holding):
    """DatasetError unless ``directory`` is a directory; ``holding`` says
    what it should hold (``'the four MNIST IDX files'``)."""
    try:
        mode = os.stat(directory).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as e:
        raise errors.DatasetError(
            'cannot use dataset directory {}: {}.'.format(
                directory, e.strerror or e))
    if mode is None or not stat.S_ISDIR(mode):
        raise errors.DatasetError(
            'dataset directory {} {}; give a directory that holds {}.'.format(
                directory, 'does not exist' if mode is None else
                'is {}, not a directory'.format(untrusted_file.kind(mode)),
                holding))


def locate(directory, names):
    """The first of ``names`` in ``directory`` that exists, of whatever
    kind (reading it says what is wrong with it rather than calling it
    missing), or None when none does.

    Raises:
        errors.DatasetError: None exists, but one is a symbolic link to
            nothing.
    """
    candidates = [os.path.join(directory, name) for name in names]
    path = next((p for p in candidates if os.path.exists(p)), None)
    if path is not None:
        return path
    dangling = next((p for p in candidates if os.path.lexists(p)), None)
    if dangling is not None:
        raise errors.DatasetError(
            '{} is a symbolic link to {}, which does not exist.'.format(
                dangling, os.readlink(dangling)))
    return None


def make_cache(directory, what):
    """Creates the cache ``directory`` of the data set ``what`` if it is
    missing.

    Raises:
        errors.DatasetError: It cannot be created.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        raise errors.DatasetError(
            'cannot create the {} cache {}: {}. {}'.format(
                what, directory, e.strerror, CACHE_HINT))


def cache_write_error(directory, what, e):
    """The DatasetError of a file of the data set ``what`` that could not
    be written into its cache ``directory`` (``e``, the
    :class:`errors.ResultError` of the write)."""
    return errors.DatasetError('cannot write to the {} cache {}: {} {}'.format(
        what, directory, e, CACHE_HINT))


def _network(call, *args, **kwargs):
    """``call(*args, **kwargs)``, its failures :class:`Rejected`."""
    try:
        return call(*args, **kwargs)
    except urllib.error.HTTPError as e:
        raise Rejected('HTTP {} {}'.format(e.code, e.reason))
    except (urllib.error.URLError, OSError) as e:
        raise Rejected(str(getattr(e, 'reason', e)))


def fetch(url, limit, what):
    """The bytes at ``url``, at most ``limit`` of them, or
    :class:`Rejected` (``what``: the data set, for the message)."""
    with _network(urllib.request.urlopen, url,
                  timeout=DOWNLOAD_TIMEOUT) as response:
        data = _network(response.read, limit + 1)
    if len(data) > limit:
        raise Rejected('more than {} bytes, larger than any {} file'.format(
            limit, what))
    return data


def download(url, path, checksum, limit, what):
    """Streams ``url`` into the cache file ``path``, which is written only
    if the MD5 of what came is ``checksum``: whole or not at all, never
    through a link, at most ``limit`` bytes.

    Args:
        url (str): Where the file is served.
        path (str): Its cache entry.
        checksum (str): Its MD5, as hex.
        limit (int): The most bytes it may have.
        what (str): The data set, for messages (``'CIFAR-10'``).

    Raises:
        Rejected: The download failed, was larger than ``limit`` or is
            not the file (checksum mismatch); nothing was written.
        errors.DatasetError: The cache entry cannot be written (a full
            disk, a link or a FIFO at its name).
    """
    try:
        with atomic_write(path, 'wb') as f:
            digest = hashlib.md5()
            size = 0
            # Only the network's failures are the source's: one of the
            # disk's ends the write with its own message.
            with _network(urllib.request.urlopen, url,
                          timeout=DOWNLOAD_TIMEOUT) as response:
                while True:
                    chunk = _network(response.read, READ_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > limit:
                        raise Rejected('more than {} bytes, larger than '
                                       'any {} file'.format(limit, what))
                    digest.update(chunk)
                    f.write(chunk)
            if digest.hexdigest() != checksum:
                raise Rejected('checksum mismatch')
    except errors.ResultError as e:
        raise cache_write_error(os.path.dirname(path), what, e)


def cached(directory, name, urls, checksum, limit, what, hint):
    """The path of the verified cache entry ``name`` in ``directory``,
    downloaded from the first of ``urls`` that serves it when it is
    missing or fails verification (its MD5 is not ``checksum``).

    Args:
        directory (str): The cache, which exists.
        name (str): The file's name in it.
        urls (sequence of str): Where the file is served, tried in order.
        checksum (str): Its MD5, as hex.
        limit (int): The most bytes a download may have.
        what (str): The data set, for messages (``'CIFAR-10'``).
        hint (str): What a user can do when no source serves it.

    Raises:
        errors.DatasetError: No source served a verified copy (each
            source's reason in the one line), or the cache cannot be
            written.
    """
    def verify(path):
        return path if file_md5(path) == checksum else None

    def fetch_into(url, path):
        download(url, path, checksum, limit, what)
        return path

    return cache_entry(os.path.join(directory, name), urls, what, hint,
                       verify, fetch_into)


def cache_entry(path, urls, what, hint, verify, fetch_into):
    """What ``verify`` makes of the cache file ``path``, or, when it is
    missing or fails verification, what ``fetch_into`` makes of the first
    of ``urls`` that serves a verified copy into it.

    Args:
        path (str): The cache entry.
        urls (sequence of str): Where it is served, tried in order.
        what (str): The data set, for messages (``'MNIST'``).
        hint (str): What a user can do when no source serves it.
        verify (callable): ``verify(path)``: the entry's value, or None
            when the file is not the data set's; may raise
            :class:`errors.DatasetError` for an unreadable file.
        fetch_into (callable): ``fetch_into(url, path)``: writes a
            verified copy to ``path`` and returns its value, or raises
            :class:`Rejected` having written nothing.

    Raises:
        errors.DatasetError: No source served a verified copy (each
            source's reason in the one line), or the cache cannot be
            written.
    """
    if os.path.isfile(path):
        try:
            value = verify(path)
        except errors.DatasetError:
            value = None
        if value is not None:
            return value
        notice('cached {} fails verification; downloading it '
               'again.'.format(path))
        try:
            os.remove(path)
        except OSError as e:
            raise errors.DatasetError(
                'cannot remove {} from the {} cache: {}. Remove it, or pass '
                '--dataset-dir.'.format(path, what, e.strerror or e))
    failures = []
    for url in urls:
        notice('downloading {}'.format(url))
        try:
            return fetch_into(url, path)
        except Rejected as e:
            failures.append('{}: {}'.format(url, e))
    raise errors.DatasetError('could not download {} ({}). {}'.format(
        os.path.basename(path), '; '.join(failures), hint))
