"""signals.py: Ctrl-C and SIGTERM raise where the program is, once; held
back while a file is being created, in this thread or another; the line
of an MPI rank. (The stages of a real command, its imports included, are
tests/commands/test_hostile_paths.py's.)"""
import os
import signal
import threading
import time

import pytest

from quantized_net import signals


# cli.run and the signals module install the commands' handlers.
pytestmark = pytest.mark.usefixtures('signal_handlers')


def wait_for_signals():
    time.sleep(0.05)  # the handler runs at the next instruction


@pytest.mark.parametrize('signum,raised', [
    (signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, signals.Terminated)])
def test_the_first_signal_raises_and_the_later_ones_are_ignored(signum,
                                                                raised):
    signals.install_raising()
    with pytest.raises(raised) as e:
        os.kill(os.getpid(), signum)
        wait_for_signals()
    assert signals.ending(e.value) == signals.ENDINGS[signum]
    for again in (signal.SIGINT, signal.SIGTERM):
        os.kill(os.getpid(), again)
    wait_for_signals()  # nothing raised


def test_a_signal_waits_for_the_end_of_a_deferred_block():
    signals.install_raising()
    done = []
    with pytest.raises(signals.Terminated):
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for_signals()
            done.append('inside')
    assert done == ['inside']


def test_nested_blocks_wait_for_the_outermost():
    signals.install_raising()
    done = []
    with pytest.raises(KeyboardInterrupt):
        with signals.deferred():
            with signals.deferred():
                os.kill(os.getpid(), signal.SIGINT)
                wait_for_signals()
            done.append('between')
    assert done == ['between']


def test_a_signal_another_thread_takes_waits_too():
    """A process's signal may go to any thread that does not block it (a
    BLAS thread's); Python runs the handler in the main thread, which
    holds it back until the block ends."""
    signals.install_raising()

    def take():  # a thread of its own, which unblocks the signal
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM])
        os.kill(os.getpid(), signal.SIGTERM)
    done = []
    with pytest.raises(signals.Terminated):
        with signals.deferred():
            thread = threading.Thread(target=take)
            thread.start()
            thread.join()
            wait_for_signals()
            done.append('inside')
    assert done == ['inside']


def test_ignore_leaves_both_signals_without_effect():
    signals.ignore()
    os.kill(os.getpid(), signal.SIGINT)
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for_signals()


def test_early_handlers_only_for_the_projects_commands(monkeypatch):
    before = signal.getsignal(signal.SIGTERM)
    signals.install_early()  # pytest is the main program here
    assert signal.getsignal(signal.SIGTERM) is before
    assert not signals.running_a_command()


@pytest.mark.parametrize('env,rank', [
    ({}, 0), ({'PMI_RANK': '2'}, 2), ({'OMPI_COMM_WORLD_RANK': '1'}, 1),
    ({'PMI_RANK': 'x'}, 0)])
def test_the_line_of_a_signal_names_a_rank_but_the_first(monkeypatch, env,
                                                        rank):
    for name in ('PMI_RANK', 'OMPI_COMM_WORLD_RANK'):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(signals.sys, 'argv', ['train_mnist_mn.py'])
    assert signals.mpi_rank() == rank
    assert signals.line('terminated', signals.mpi_rank()) == (
        'train_mnist_mn.py: terminated' +
        (' (process {})'.format(rank) if rank else ''))
