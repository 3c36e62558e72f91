"""One process's part of a training run, from its description to the saved
model: what ``train_mnist.py`` and ``train_mnist_mn.py`` run.

The files it writes, and the rules that keep them safe, are described in
:mod:`result_dir` and :mod:`claim`; the trainer is :mod:`trainer`'s.
"""
import argparse
import os
import random
import sys

import numpy

from chainer.backends import cuda

from quantized_net import cli
from quantized_net.training import datasets
from quantized_net.training import flags
from quantized_net.training import heap
from quantized_net.training import presets
from quantized_net.training import processes as processes_module
from quantized_net.training import result_dir
from quantized_net.training import run_description
from quantized_net.training import run_record
from quantized_net.training import saved_model
from quantized_net.training import summary
from quantized_net.training import trainer as trainer_module
from quantized_net import errors


def seed_everything(seed, device):
    """Seeds every generator a run draws from on ``device``."""
    random.seed(seed)
    numpy.random.seed(seed)
    if device.xp is cuda.cupy:
        cuda.cupy.random.seed(seed)


def print_header(device, config, seed, processes=1):
    """The lines a run prints before its table."""
    print('Device: {}'.format(device))
    if processes > 1:
        print('# processes: {}'.format(processes))
    print('# preset: {}'.format(config['preset']))
    print('# quantizers: weight {weight_quant}, activation {act_quant}, '
          'gradient {grad_quant}, input {input_quant}'.format(**config))
    layers = presets.architecture(config)
    if layers is None:
        print('# unit: {} x {} layers, {}'.format(
            presets.hidden_units(config), config['layers'],
            config['activation']))
    else:
        print('# layers: {}{}, {}'.format(
            layers, '' if presets.with_defaults(config)['width'] == 1 else
            ' x {:g} wide'.format(config['width']), config['activation']))
    print(summary.totals_line(config))
    bn_batches = presets.with_defaults(config)['bn_batches']
    if bn_batches:
        print('# batch normalisation: evaluated with the statistics of {} '
              'training batches'.format(bn_batches))
    print('# Minibatch-size: {}'.format(config['batchsize']))
    print('# epoch: {}'.format(config['epoch']))
    print('# seed: {}'.format(seed))
    print('')


def check_batchsize(batchsize, train_set, processes=1):
    """UsageError unless each of ``processes`` gets a whole, non-empty
    share of the batch, and the batch fits in the training set."""
    if batchsize > len(train_set):
        raise errors.UsageError(
            '--batchsize {} is larger than the training set ({} images); '
            'give at most {}.'.format(batchsize, len(train_set),
                                      len(train_set)))
    if batchsize % processes:
        raise errors.UsageError(
            '--batchsize {} does not split evenly over {} processes; give a '
            'multiple of {}.'.format(batchsize, processes, processes))


class Training(object):
    """Trains a run when called; :meth:`resume_hint` says, when it is
    interrupted, where to resume from.

    Args:
        run (run_description.Run): The run as its flags describe it.
        processes (callable): Makes the object that spreads the run over
            processes (see :mod:`processes`); called when training starts,
            so that its errors end the command as one line. One process by
            default.
    """

    def __init__(self, run, processes=processes_module.SingleProcess):
        self.described = run
        self.make_processes = processes
        self.out = None  # the directory this process holds, once it does

    def __call__(self):
        # Each step frees what the next allocates again: kept, the system
        # need not zero it again (heap.py).
        heap.keep_freed_memory()
        processes = self.make_processes()
        run = processes.first(lambda: run_description.resumed(
            self.described))
        device = processes.device(run)
        if run.seed is not None:
            seed_everything(processes.seed(run.seed), device)
        config = run.config
        splits = (None, None, None)
        if processes.writer:
            print_header(device, config, run.seed, processes.size)
            splits = datasets.load_splits(config, run.dataset_dir)
            check_batchsize(config['batchsize'], splits[0], processes.size)
        # What its snapshots record; a resumed run is checked against it
        # before the directory is touched.
        record = processes.first(lambda: run_description.record(
            run, run_record.fingerprint(*splits)))
        train_set = processes.shard(splits[0], shuffle_seed=run.seed or 0)
        val_set = processes.shard(splits[1]) if config['validation'] \
            else None
        test_set = processes.shard(splits[2])

        model = processes.model(presets.build_classifier(config))
        model.to_device(device)
        optimizer = processes.optimizer(presets.build_optimizer(model,
                                                                config))
        trainer = trainer_module.build_trainer(
            run, model, optimizer, train_set, val_set, test_set, device,
            processes, record)
        if run.resume:
            # Loaded and checked before the directory is touched: a
            # snapshot refused leaves --out as it was.
            processes.load_snapshot(run.resume, trainer)
        with processes.claim(run.out, run.resume, run.replace):
            self.out = run.out
            processes.start(optimizer)
            if processes.writer:
                result_dir.write_args(run.out, config, run.seed, run.argv,
                                      processes=processes.recorded_size)
            trainer_module.run(trainer)
            if processes.writer:
                saved_model.save_model(model, run.out)

    def resume_hint(self):
        """What to say when the run is interrupted: the latest snapshot of
        the directory this process holds."""
        latest = result_dir.snapshots(self.out) if self.out else []
        if not latest:
            return 'no snapshot was written yet'
        return 'resume with --resume {}'.format(
            os.path.join(self.out, latest[-1][1]))


def train_command(prog, description, argv=None, dataset=datasets.DEFAULT,
                  preset='seed'):
    """What a single-process training command does (``train_mnist.py``,
    ``train_cifar10.py``, ``train_svhn.py``): reads the flags of
    :func:`flags.add_train_flags` for ``dataset`` and ``preset``, and
    trains the run they describe, ending as :func:`cli.run` ends."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog=prog, description=description)
    flags.add_train_flags(parser, dataset=dataset, preset=preset)
    run = run_description.describe(flags.parse_train_args(parser, argv),
                                   argv)
    training = Training(run)
    cli.run(prog, training, interrupted=training.resume_hint)
