"""Fixtures and the ``gpu`` marker; the helpers are in helpers.py."""
import pytest

import helpers


def pytest_collection_modifyitems(config, items):
    if helpers.gpu_available():
        return
    skip = pytest.mark.skip(reason='needs CuPy and a CUDA GPU')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def signal_handlers():
    """Gives the test process its own SIGINT and SIGTERM handlers back
    after a test that installs the commands' (cli.run, signals)."""
    import signal
    previous = {signum: signal.getsignal(signum)
                for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.fixture
def fifo(tmp_path):
    """The path of a FIFO in this test's directory: what a reader must
    refuse rather than wait on."""
    import os
    path = str(tmp_path / 'fifo')
    os.mkfifo(path)
    return path


@pytest.fixture
def synthetic_dir(tmp_path):
    """:func:`helpers.write_synthetic` in a directory of this test's own,
    which it may change."""
    return helpers.write_synthetic(str(tmp_path / 'synthetic'))


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    """:func:`helpers.write_synthetic` shared by a module's tests, which
    only read it: runs of a few seconds, 12 iterations an epoch at batch
    50."""
    return helpers.write_synthetic(str(tmp_path_factory.mktemp('tiny')))


@pytest.fixture(scope='session')
def describe_run():
    """``describe(*argv)``: the run description of train_mnist.py's
    command-line arguments ``argv``, as the command builds it."""
    import argparse
    from quantized_net.training import flags
    from quantized_net.training import run_description

    def describe(*argv):
        argv = [str(a) for a in argv]
        parser = argparse.ArgumentParser(prog='train_mnist.py')
        flags.add_train_flags(parser)
        return run_description.describe(flags.parse_train_args(parser, argv),
                                        argv)
    return describe


@pytest.fixture(scope='session')
def train_here(describe_run):
    """``train(*argv)``: train_mnist.py's training of the arguments
    ``argv``, run in this process (errors raise as they are); returns the
    :class:`session.Training`."""
    from quantized_net.training import session

    def train(*argv):
        training = session.Training(describe_run(*argv))
        training()
        return training
    return train
