"""Damaged files, as a hostile or unlucky user gives them: a few hundred
seeded byte flips, runs and truncations of a real packed file and of a
real model.npz. Each loads (and then runs) or is refused with the
reader's one-line error naming the file; never any other exception, and
never more memory than the file's own arrays take."""
import random
import tracemalloc

import numpy
import pytest

import chainer

import helpers
from quantized_net.packed import engine
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.training import safe_npz
from quantized_net import errors

# Far below what a header or zip entry could ask for (terabytes), far
# above what a file of a few tens of kilobytes needs to be read.
MEMORY_CEILING = 16 * 2 ** 20


def zip_offsets(data):
    """Offsets of the zip format's own fields: each local header and
    directory entry (compression method, sizes, offsets, name lengths)
    and the end record."""
    offsets = []
    start = data.find(b'PK')
    while start >= 0:
        offsets.extend(range(start, min(start + 46, len(data))))
        start = data.find(b'PK', start + 1)
    return offsets


def npy_offsets(data):
    """Offsets of the .npy headers' text (dtype, order, shape), which
    NumPy parses as a Python literal."""
    offsets = []
    start = data.find(b'\x93NUMPY')
    while start >= 0:
        end = data.find(b'\n', start)
        offsets.extend(range(start, end if end > 0 else len(data)))
        start = data.find(b'\x93NUMPY', start + 1)
    return offsets


#: What a header's text is made of, to put in place of a byte of it.
PUNCTUATION = b"(){}[]'\",:L#\\ 0123456789"


def mutations(data, count, seed):
    """``count`` damaged copies of ``data``: single byte flips, runs of
    random bytes, bytes made extreme, a header's punctuation moved, and
    truncations; most aimed at the zip format's fields and the .npy
    headers, the rest anywhere."""
    rng = random.Random(seed)
    # Deflated members hide their .npy headers: there, anywhere instead.
    regions = [zip_offsets(data)] * 2 + [npy_offsets(data) or
                                         range(len(data))] * 3 + \
        [range(len(data))] * 2
    for _ in range(count):
        damaged = bytearray(data)
        where = rng.choice(rng.choice(regions))
        kind = rng.randrange(5)
        if kind == 0:
            damaged[where] ^= rng.randrange(1, 256)
        elif kind == 1:
            run = rng.randrange(2, 17)
            damaged[where:where + run] = bytes(
                rng.randrange(256) for _ in range(run))
        elif kind == 2:
            damaged[where] = rng.choice((0x00, 0x7f, 0x80, 0xff))
        elif kind == 3:
            damaged[where] = rng.choice(PUNCTUATION)
        else:
            damaged = damaged[:where]
        yield bytes(damaged)


def outcome(read, path):
    """``(result or None, error or None, peak bytes allocated)`` of
    ``read(path)``; any exception but the readers' own propagates."""
    tracemalloc.start()
    try:
        return read(path), None, tracemalloc.get_traced_memory()[1]
    except (errors.PackedFormatError, errors.ResultError) as e:
        return None, e, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check_refusal(error, path, kind):
    assert type(error) is kind, error
    message = str(error)
    # One line, and nothing a damaged file put in it reaches the terminal
    # as a control character.
    assert message.isprintable() and path in message, message


@pytest.fixture(scope='module')
def packed_bytes(tmp_path_factory):
    model, config = helpers.binarized_model(units=24, layers=2, seed=3)
    path = str(tmp_path_factory.mktemp('packed') / 'net.packed.npz')
    packed_format.save(path, packed_export.export(model, config, 'f' * 64))
    with open(path, 'rb') as f:
        return f.read()


def test_damaged_packed_files_load_and_run_or_are_refused_in_one_line(
        packed_bytes, tmp_path):
    images = helpers.random_pixels(numpy.random.RandomState(0), 5, 784)
    path = str(tmp_path / 'net.packed.npz')
    refused = loaded = 0
    for damaged in mutations(packed_bytes, 300, seed=22):
        with open(path, 'wb') as f:
            f.write(damaged)
        network, error, peak = outcome(packed_format.load, path)
        assert peak < MEMORY_CEILING, (peak, error)
        if error is not None:
            check_refusal(error, path, errors.PackedFormatError)
            refused += 1
            continue
        labels = engine.select(network, kind='blas').classify(images)
        assert labels.shape == (5,) and labels.dtype.kind in 'iu'
        loaded += 1
    # Both outcomes are exercised: the test sees damage that is caught
    # and damage that leaves a file NumPy reads.
    assert refused > 100 and loaded > 0, (refused, loaded)


@pytest.fixture(scope='module')
def model_bytes(tmp_path_factory):
    model, _ = helpers.binarized_model(units=24, layers=2, seed=4)
    path = str(tmp_path_factory.mktemp('model') / 'model.npz')
    chainer.serializers.save_npz(path, model)  # deflated, as a run saves
    with open(path, 'rb') as f:
        return f.read()


def test_damaged_model_files_read_or_are_refused_in_one_line(model_bytes,
                                                             tmp_path):
    path = str(tmp_path / 'model.npz')
    refused = 0
    for damaged in mutations(model_bytes, 200, seed=23):
        with open(path, 'wb') as f:
            f.write(damaged)
        arrays, error, peak = outcome(safe_npz.read_npz, path)
        assert peak < MEMORY_CEILING, (peak, error)
        if error is not None:
            check_refusal(error, path, errors.ResultError)
            refused += 1
        else:
            assert all(isinstance(a, numpy.ndarray) and not a.dtype.hasobject
                       for a in arrays.values())
    assert refused > 100, refused
