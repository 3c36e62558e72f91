#!/usr/bin/env python3
"""Exports a trained binarized MLP or ConvNet to a packed file for
infer_packed.py.

    ./export.py result                  # writes result/model.packed.npz
    ./export.py result -o bnn.packed.npz
    ./export.py result -o bnn.packed.npz --replace

The weights become bits and each hidden unit's bias, batch normalisation
and sign an integer threshold (see quantized_net/packed/export.py); the
model must be binarized, as ``--preset bnn`` and the ConvNet presets
(``bnn-conv``, ``cifar10``, ``svhn``) make it.

The output is written only where a file may be: never through a link,
never onto a directory, FIFO or device, and over an existing file only if
it is a packed network exported from the same model file (its metadata
records the model's SHA-256) or ``--replace`` says so.
"""
import quantized_net  # first: a signal from here on ends in one line
import argparse
import os
import stat

from quantized_net import cli
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.training import claim
from quantized_net.training import saved_model
from quantized_net import errors
from quantized_net import untrusted_file

PROG = 'export.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Pack a trained binarized MLP or ConvNet into '
                               '1-bit weights and integer thresholds')
    cli.add_model_flags(parser)
    parser.add_argument('--out', '-o', default=None,
                        help='Packed file to write (default: RESULT/{})'
                        .format(packed_format.PACKED_FILE))
    parser.add_argument('--replace', action='store_true',
                        help='Replace an existing file at the output path '
                             'that is not a packed network of this model '
                             '(a regular file only)')
    return cli.parse(parser, argv)


def check_kind(out):
    """Refuses an ``out`` that a file cannot be written to: a directory, a
    symbolic link (dangling or not), a FIFO, a device. Only ``lstat`` is
    used: nothing is opened, so nothing waits.

    Raises:
        errors.UsageError: What ``out`` is, in one line.
    """
    try:
        mode = os.lstat(out).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there: check_out says what is missing
    except OSError as e:  # a name too long, say
        raise errors.UsageError('cannot write {}: {}.'.format(
            out, e.strerror or e))
    if not stat.S_ISREG(mode):
        raise errors.UsageError('cannot write {}: it is {}; give a file '
                                'name.'.format(out, 'a symbolic link'
                                               if stat.S_ISLNK(mode) else
                                               untrusted_file.kind(mode)))


def check_out(out):
    """:func:`check_kind`, and refuses a name in a missing directory."""
    check_kind(out)
    save_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(save_dir):
        raise errors.UsageError('cannot write {}: directory {} does not '
                                'exist.'.format(out, save_dir))


def check_ours(out, source):
    """Refuses an existing ``out`` unless it is a packed network exported
    from the model file of fingerprint ``source``
    (:func:`packed_export.fingerprint`): an earlier export of the same
    model, which a new one may replace.

    Raises:
        errors.UsageError: ``out`` is another file; it is not touched.
    """
    if not os.path.lexists(out):
        return
    try:
        theirs = packed_export.source_of(packed_format.load(out))
    except errors.PackedFormatError:
        why = 'it is not a packed network'
    else:
        if theirs == source:
            return
        why = ('a packed network of another model' if theirs else
               'a packed network that does not record its model')
    raise errors.UsageError(
        '{} exists ({}); it was not overwritten; give --replace to replace '
        'it, or another -o.'.format(out, why))


def export(args):
    out = args.out or os.path.join(args.result, packed_format.PACKED_FILE)
    check_kind(out)  # before anything is read
    model, config = saved_model.load_model(args.result, args.model_file)
    check_out(out)
    source = packed_export.fingerprint(os.path.join(args.result,
                                                    args.model_file))
    if not args.replace:
        check_ours(out, source)
    network = packed_export.export(model, config, source)
    # Not into a directory that a training run is writing.
    with claim.DirectoryLock(os.path.dirname(os.path.abspath(out))):
        # What is there now, the lock held, is what is replaced.
        check_out(out)
        if not args.replace:
            check_ours(out, source)
        packed_format.save(out, network)
    float_bytes = sum(link.W.array.nbytes
                      for link in model.predictor.weight_layers())
    print('wrote {} ({} bytes): layers {}'.format(
        out, os.path.getsize(out), network.describe()))
    print('weights: {} bytes packed, {} bytes as float32 ({:.1f}x '
          'smaller)'.format(network.weight_bytes(), float_bytes,
                            float_bytes / network.weight_bytes()))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: export(args))


if __name__ == '__main__':
    main()
