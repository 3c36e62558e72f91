"""Runs a command of the project with a fault injected, for
test_faults.py and test_train_mnist_mn.py: the command runs as ``python
SCRIPT ARGS`` would run it, with one of

``--kill-at ITERATION``
    SIGKILL right after that iteration's update, before its extensions.
``--kill-after-snapshot N``
    SIGKILL right after the N-th snapshot is written.
``--kill-in-snapshot N BYTES``
    SIGKILL while the N-th snapshot is being written, after BYTES bytes
    (-1: after all of them, before the file is renamed into place).
``--poison-at ITERATION``
    Make every parameter NaN after that iteration's update.
``--signal-at ITERATION SIGNAL``
    Send SIGNAL (INT or TERM) to the process after that iteration.
``--pause-at ITERATION``
    Sleep for a minute after that iteration (to be killed from outside).
``--keep-snapshots DIR``
    Copy every snapshot to DIR as it is written (they are pruned).
``--raise-at ITERATION RANK``
    Raise an error after that iteration in that MPI rank only.
``--save-params DIR``
    After training, save this process's parameters to DIR/rankR.npz.
``--signal-in-temp N SIGNAL``
    Send SIGNAL (INT or TERM) to the process from inside the creation of
    the N-th snapshot's temporary file (atomic_write's mkstemp), right
    after the file exists and before its name is returned.
``--file-size-limit BYTES``
    Let no file grow beyond BYTES (RLIMIT_FSIZE, SIGXFSZ ignored): a write
    past it fails with EFBIG, as one on a full disk fails.
``--pid-file DIR``
    Write this process's id to DIR/rankR.pid once the command starts.

    python fault_runner.py --kill-at 17 -- train_mnist.py --out r ...
"""
import argparse
import contextlib
import os
import resource
import runpy
import shutil
import signal
import sys
import tempfile
import time

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net import errors
from quantized_net.training import snapshot
from chainer import training
from chainer.training import updaters

#: The project's root, where the commands are.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))


def after_iteration(action):
    """Calls ``action(iteration)`` after every update."""
    update = updaters.StandardUpdater.update

    def patched(self):
        update(self)
        action(self.iteration)
    updaters.StandardUpdater.update = patched


def on_snapshot(action):
    """Calls ``action(count, path)`` after each snapshot is written."""
    call = snapshot.Snapshot.__call__
    count = [0]

    def patched(self, trainer):
        call(self, trainer)
        count[0] += 1
        action(count[0], os.path.join(trainer.out, self.written[-1]))
    snapshot.Snapshot.__call__ = patched


def kill_in_snapshot(n, limit):
    real = snapshot.atomic_write
    count = [0]

    class Dying(object):
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            if self.written + len(data) > limit:
                self.f.write(bytes(data)[:limit - self.written])
                self.f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            self.written += len(data)
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    @contextlib.contextmanager
    def patched(path, mode='w'):
        with real(path, mode) as f:
            dying = os.path.basename(path).startswith('snapshot_iter_')
            if dying:
                count[0] += 1
                dying = count[0] == n
            yield Dying(f) if dying and limit >= 0 else f
            if dying:
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    snapshot.atomic_write = patched


def signal_in_temp(n, signum):
    """Sends ``signum`` from inside the creation of the ``n``-th snapshot's
    temporary file."""
    real = tempfile.mkstemp
    count = [0]

    def mkstemp(*args, **kwargs):
        made = real(*args, **kwargs)
        if kwargs.get('prefix', '').startswith('.snapshot_iter_'):
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signum)
        return made
    tempfile.mkstemp = mkstemp


def limit_file_size(limit):
    """Writes past ``limit`` bytes fail (EFBIG) rather than kill. The
    command's own files are under test, not matplotlib's font cache, which
    its first import on a new machine writes (and, failing, warns about
    on stderr): that is built first, where matplotlib is installed."""
    with contextlib.suppress(ImportError):
        import matplotlib.font_manager  # noqa: F401
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def save_params(directory, rank):
    """Saves the parameters each process ends training with."""
    import numpy
    run = training.Trainer.run

    def patched(trainer, *args, **kwargs):
        run(trainer, *args, **kwargs)
        target = trainer.updater.get_optimizer('main').target
        os.makedirs(directory, exist_ok=True)
        numpy.savez(os.path.join(directory, 'rank{}.npz'.format(rank)),
                    **{name: param.array
                       for name, param in target.namedparams()})
    training.Trainer.run = patched


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--kill-at', type=int)
    parser.add_argument('--kill-after-snapshot', type=int)
    parser.add_argument('--kill-in-snapshot', type=int, nargs=2)
    parser.add_argument('--poison-at', type=int)
    parser.add_argument('--signal-at', nargs=2)
    parser.add_argument('--pause-at', type=int)
    parser.add_argument('--keep-snapshots')
    parser.add_argument('--raise-at', type=int, nargs=2)
    parser.add_argument('--save-params')
    parser.add_argument('--signal-in-temp', nargs=2)
    parser.add_argument('--file-size-limit', type=int)
    parser.add_argument('--pid-file')
    parser.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args()
    kill = lambda: os.kill(os.getpid(), signal.SIGKILL)  # noqa: E731
    if args.kill_at is not None:
        after_iteration(lambda i: i == args.kill_at and kill())
    if args.kill_after_snapshot is not None:
        on_snapshot(lambda n, _: n == args.kill_after_snapshot and kill())
    if args.kill_in_snapshot:
        kill_in_snapshot(*args.kill_in_snapshot)
    if args.poison_at is not None:
        def poison(self):
            update(self)
            if self.iteration == args.poison_at:
                for param in self.get_optimizer('main').target.params():
                    param.array[...] = float('nan')
        update = updaters.StandardUpdater.update
        updaters.StandardUpdater.update = poison
    if args.signal_at:
        # As in a terminal's foreground: a shell starts background jobs
        # (the test suite under `... &`) with SIGINT ignored, and Python
        # then installs no KeyboardInterrupt handler.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        at, name = int(args.signal_at[0]), 'SIG' + args.signal_at[1]
        after_iteration(lambda i: i == at and os.kill(
            os.getpid(), getattr(signal, name)))
    if args.pause_at is not None:
        after_iteration(lambda i: i == args.pause_at and time.sleep(60))
    if args.keep_snapshots:
        os.makedirs(args.keep_snapshots, exist_ok=True)
        on_snapshot(lambda _, path: shutil.copy(path, args.keep_snapshots))
    rank = int(os.environ.get('PMI_RANK', 0))
    if args.raise_at and args.raise_at[1] == rank:
        def fail(i):
            if i == args.raise_at[0]:
                raise errors.UsageError('injected failure in rank {}'.format(
                    rank))
        after_iteration(fail)
    if args.save_params:
        save_params(args.save_params, rank)
    if args.signal_in_temp:
        signal_in_temp(int(args.signal_in_temp[0]),
                       getattr(signal, 'SIG' + args.signal_in_temp[1]))
    if args.pid_file:
        os.makedirs(args.pid_file, exist_ok=True)
        with open(os.path.join(args.pid_file, 'rank{}.pid'.format(rank)),
                  'w') as f:
            f.write(str(os.getpid()))
    if args.file_size_limit is not None:
        limit_file_size(args.file_size_limit)
    script, *rest = args.command[1:] if args.command[0] == '--' \
        else args.command
    sys.argv = [script] + rest
    runpy.run_path(os.path.join(ROOT, script), run_name='__main__')


if __name__ == '__main__':
    main()
