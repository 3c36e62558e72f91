#!/usr/bin/env python3
"""Exports a trained binarized MLP to a packed file for infer_packed.py.

    ./export.py result                  # writes result/model.packed.npz
    ./export.py result -o bnn.packed.npz

The weights become bits and each hidden unit's bias, batch normalisation
and sign an integer threshold (see quantized_net/packed/export.py); the
model must be binarized, as ``--preset bnn`` makes it.
"""
import argparse
import os

from quantized_net import cli
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.training import claim
from quantized_net.training import saved_model
from quantized_net import errors

PROG = 'export.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description='Pack a trained binarized MLP into 1-bit '
                               'weights and integer thresholds')
    cli.add_model_flags(parser)
    parser.add_argument('--out', '-o', default=None,
                        help='Packed file to write (default: RESULT/{})'
                        .format(packed_format.PACKED_FILE))
    return cli.parse(parser, argv)


def check_out(out):
    """Refuses an ``out`` that is a directory, in a missing directory, or
    an existing file other than a packed network (not overwritten)."""
    save_dir = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(out):
        raise errors.UsageError('cannot write {}: it is a directory; give '
                                'a file name.'.format(out))
    if not os.path.isdir(save_dir):
        raise errors.UsageError('cannot write {}: directory {} does not '
                                'exist.'.format(out, save_dir))
    if os.path.exists(out):
        try:
            packed_format.load(out)
        except errors.PackedFormatError:
            raise errors.UsageError('{} exists and is not a packed '
                                    'network; it was not overwritten.'
                                    .format(out))


def export(args):
    out = args.out or os.path.join(args.result, packed_format.PACKED_FILE)
    model, config = saved_model.load_model(args.result, args.model_file)
    check_out(out)
    network = packed_export.export(model, config)
    # Not into a directory that a training run is writing.
    with claim.DirectoryLock(os.path.dirname(os.path.abspath(out))):
        try:
            packed_format.save(out, network)
        except OSError as e:
            raise errors.UsageError('cannot write {}: {}.'.format(
                out, e.strerror or e))
    float_bytes = sum(link.W.array.nbytes
                      for link in model.predictor.linear_layers())
    print('wrote {} ({} bytes): layers {}'.format(
        out, os.path.getsize(out), ' - '.join(map(str, network.sizes))))
    print('weights: {} bytes packed, {} bytes as float32 ({:.1f}x '
          'smaller)'.format(network.weight_bytes(), float_bytes,
                            float_bytes / network.weight_bytes()))


def main(argv=None):
    args = parse_args(argv)
    cli.run(PROG, lambda: export(args))


if __name__ == '__main__':
    main()
