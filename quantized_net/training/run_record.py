"""What a snapshot records of the run that wrote it, beside the trainer:
the run's configuration, its seed, its id and a fingerprint of the data
it trains on; read from a snapshot without loading the rest of it.

A resume compares this record with the flags and the data at hand (see
:mod:`run_description`), so that a snapshot continues its own run
wherever it was copied to. The run id, drawn when a run starts and kept
when it is resumed, is what makes "a snapshot this run wrote" checkable:
a run removes an older snapshot only if that file's own record names its
id (:func:`written_by`).

The record is four small members of the ``.npz`` snapshot (``run/...``);
a snapshot written before runs recorded them has none (:func:`read`
returns None).
"""
import dataclasses
import hashlib
import json
import os
import re
import secrets
from typing import Optional, Tuple

import numpy

import chainer

from quantized_net.training import presets
from quantized_net.training import safe_npz
from quantized_net import errors
from quantized_net import untrusted_file

CONFIG_KEY = 'run/config'
SEED_KEY = 'run/seed'
ID_KEY = 'run/id'
DATA_KEY = 'run/data'
KEYS = (CONFIG_KEY, SEED_KEY, ID_KEY, DATA_KEY)
#: The most bytes the record's members may hold together: a configuration
#: is about 500 characters.
RECORD_LIMIT = 1 << 16
#: Seeds are NumPy's: integers in [0, SEED_LIMIT).
SEED_LIMIT = 2 ** 32
#: What the seed member holds for a run without a seed.
NO_SEED = -1
#: Examples hashed at a time by :func:`fingerprint`.
CHUNK = 4096
_RUN_ID = re.compile('[0-9a-f]{32}', re.ASCII)
_DIGEST = re.compile('[0-9a-f]{64}', re.ASCII)


@dataclasses.dataclass(frozen=True)
class Record(object):
    """What a snapshot records of its run.

    Attributes:
        config_items (tuple): The configuration's ``(key, value)`` pairs;
            read it as :attr:`config`.
        seed (int): The run's seed, or None for none.
        run_id (str): The run's id, 32 hexadecimal digits.
        data (str): The SHA-256, in hexadecimal, of the data it trains on
            (:func:`fingerprint`).
    """

    config_items: Tuple[tuple, ...]
    seed: Optional[int]
    run_id: str
    data: str

    @property
    def config(self):
        """The configuration, a new dict at each call."""
        return dict(self.config_items)


def new_run_id():
    """A run id of its own for a run that starts."""
    return secrets.token_hex(16)


def fingerprint(*datasets):
    """The SHA-256, in hexadecimal, of the examples of ``datasets`` (each a
    dataset of ``(image, label)`` tuples, or None), in order: what tells
    one data set from another of the same size."""
    digest = hashlib.sha256()
    for dataset in datasets:
        if dataset is None:
            digest.update(b'none;')
            continue
        digest.update('{};'.format(len(dataset)).encode())
        for start in range(0, len(dataset), CHUNK):
            batch = chainer.dataset.concat_examples(
                dataset[start:start + CHUNK])
            for array in batch:
                array = numpy.ascontiguousarray(array)
                digest.update('{}{};'.format(array.dtype.str,
                                             array.shape[1:]).encode())
                digest.update(array)
    return digest.hexdigest()


def to_arrays(record):
    """The members of a snapshot that hold ``record``, by name."""
    return {
        CONFIG_KEY: numpy.array(json.dumps(record.config)),
        SEED_KEY: numpy.array(NO_SEED if record.seed is None
                              else record.seed, numpy.int64),
        ID_KEY: numpy.array(record.run_id),
        DATA_KEY: numpy.array(record.data)}


def altered(path, why):
    """The one-line error of a snapshot ``path`` holding a value no run
    writes, ``why`` saying which."""
    return errors.UsageError(
        'cannot resume from {}: it was damaged or altered ({}); give a '
        'snapshot_iter_* file as a run wrote it.'.format(
            path, ' '.join(str(why).split()).rstrip('.')))


def _text(arrays, key, pattern=None):
    value = arrays[key]
    if value.shape != () or value.dtype.kind != 'U':
        raise ValueError('{} is not a string'.format(key))
    text = str(value)
    if pattern is not None and not pattern.fullmatch(text):
        raise ValueError('{} is {!r}, not {}'.format(
            key, text[:80], 'a run id' if pattern is _RUN_ID
            else 'a SHA-256 in hexadecimal'))
    return text


def _integer(arrays, key, low, high):
    value = arrays[key]
    if value.shape != () or value.dtype.kind not in 'iu' or \
            not low <= int(value) < high:
        raise ValueError('{} is {}, not an integer in [{}, {})'.format(
            key, ' '.join(str(value)[:80].split()), low, high))
    return int(value)


def from_arrays(arrays):
    """The :class:`Record` in a snapshot's ``arrays`` (by name; those of
    :data:`KEYS` suffice), or None where it holds none (it was written
    before runs recorded one).

    Raises:
        ValueError: The record is incomplete or holds a value no run
            writes; the message names the member.
    """
    present = [key for key in KEYS if key in arrays]
    if not present:
        return None
    if len(present) < len(KEYS):
        raise ValueError('it lacks {} of its record'.format(
            ', '.join(key for key in KEYS if key not in arrays)))
    config = untrusted_file.parse_json(
        _text(arrays, CONFIG_KEY).encode('utf-8'), CONFIG_KEY, ValueError,
        'configuration')
    try:
        presets.check_config(config)
    except ValueError as e:
        raise ValueError('{}: {}'.format(CONFIG_KEY, e))
    seed = _integer(arrays, SEED_KEY, NO_SEED, SEED_LIMIT)
    return Record(config_items=tuple(config.items()),
                  seed=None if seed == NO_SEED else seed,
                  run_id=_text(arrays, ID_KEY, _RUN_ID),
                  data=_text(arrays, DATA_KEY, _DIGEST))


def read(path):
    """The :class:`Record` of the snapshot ``path``, or None where it holds
    none (written before runs recorded one); only its record is read.

    Raises:
        errors.UsageError: ``path`` is not a regular file, cannot be read,
            is not an archive of arrays, or holds a record no run writes;
            one line.
    """
    try:
        arrays = safe_npz.read_npz(path, RECORD_LIMIT, names=KEYS)
    except errors.ResultError as e:
        raise errors.UsageError('cannot resume: {}'.format(e))
    try:
        return from_arrays(arrays)
    except ValueError as e:
        raise altered(path, e)


def written_by(path, run_id):
    """The ``os.stat_result`` of ``path`` if it is a regular file (not a
    link) whose record names the run ``run_id``; else None. Only its
    record is read, and nothing is raised: a file that cannot be read
    was not written by the run."""
    try:
        with untrusted_file.open_regular(path, errors.ResultError,
                                         follow=False) as f:
            status = os.fstat(f.fileno())
            arrays = safe_npz.read_open_npz(f, path, RECORD_LIMIT,
                                            names=(ID_KEY,))
        recorded = _text(arrays, ID_KEY, _RUN_ID)
    except (OSError, errors.Error, ValueError, KeyError):
        return None
    return status if recorded == run_id else None
