"""numba's on-disk cache of the project's compiled kernels, keyed on their
sources.

numba checks a cached function against its own file only: a change to
another file whose functions or constants it compiles in (an inlined
helper, a bit layout) would leave the old machine code in use. So every
kernel of the project is compiled with :func:`njit`, which caches it in a
directory named by a hash of every kernel source
(:data:`KERNEL_SOURCES`): a change to any of them starts an empty cache.

The directory is ``__pycache__/numba-HASH`` beside this file, or
``$NUMBA_CACHE_DIR/quantized_net-HASH`` where that variable is set. Where
it cannot be written, numba falls back to its own locations.
"""
import contextlib
import hashlib
import os

try:
    import numba
except ImportError:  # installed but broken is as good as missing
    numba = None

#: Whether numba imports: every compiled CPU kernel needs it (the
#: quantizers then have their NumPy forms, the packed network its BLAS
#: engine).
HAVE_NUMBA = numba is not None

PACKAGE = os.path.dirname(os.path.abspath(__file__))
#: The files and folders, relative to the package, that hold the kernels
#: and what they compile in.
KERNEL_SOURCES = ('kernel_cache.py', 'c_order.py', 'quantization', 'packed',
                  'benchmarks',
                  os.path.join('training', 'fused_adam.py'),
                  os.path.join('training', 'binary_products.py'),
                  os.path.join('training', 'columns.py'),
                  os.path.join('training', 'batch_normalization.py'),
                  os.path.join('training', 'max_pooling.py'),
                  os.path.join('training', 'clip.py'))


def source_files():
    """The ``.py`` files of :data:`KERNEL_SOURCES`, sorted."""
    files = []
    for entry in KERNEL_SOURCES:
        path = os.path.join(PACKAGE, entry)
        if os.path.isfile(path):
            files.append(path)
            continue
        for folder, subfolders, names in os.walk(path):
            subfolders[:] = [d for d in subfolders if d != '__pycache__']
            files.extend(os.path.join(folder, name) for name in names
                         if name.endswith('.py'))
    return sorted(files)


def sources_hash():
    """A hash of the names and contents of :func:`source_files`."""
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(os.path.relpath(path, PACKAGE).encode() + b'\0')
        with open(path, 'rb') as f:
            digest.update(f.read() + b'\0')
    return digest.hexdigest()[:16]


def cache_dir():
    """Where the kernels of these sources are cached."""
    user = os.environ.get('NUMBA_CACHE_DIR')
    if user:
        return os.path.join(user, 'quantized_net-' + sources_hash())
    return os.path.join(PACKAGE, '__pycache__', 'numba-' + sources_hash())


_CACHE_DIR = None


@contextlib.contextmanager
def _caching_in(directory):
    # numba picks a function's cache directory when it is decorated.
    previous = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = directory
    try:
        yield
    finally:
        numba.config.CACHE_DIR = previous


def threads():
    """numba's number of threads, its pool of threads started.

    Python calls every cached kernel that runs parallel code with this
    first: a cached function that is not parallel itself but calls one
    that is does not start the pool when it is loaded from the cache, and
    its first parallel region then ends the process with a segmentation
    fault (numba issue 8578)."""
    return numba.get_num_threads()


@contextlib.contextmanager
def calling_thread_only():
    """Runs the parallel kernels called within on the calling thread
    alone. Between OpenBLAS's products numba's idle threads spin on the
    cores the next product needs (and OpenBLAS's on those a parallel
    kernel needs): a training step's elementwise passes run faster on one
    thread than on all (docs/speed.md)."""
    count = threads()
    numba.set_num_threads(1)  # for this thread's parallel loops only
    try:
        yield
    finally:
        numba.set_num_threads(count)


def _keeping_going(dispatcher):
    """``dispatcher`` whose compiled kernels run when its cache cannot be
    written (a full disk, a file size limit): they are in memory, and the
    next process compiles them again. numba would raise the OSError from
    the call that compiled them."""
    cache = getattr(dispatcher, '_cache', None)
    if cache is None or not hasattr(cache, 'save_overload'):
        return dispatcher
    save = cache.save_overload

    def save_overload(sig, data):
        try:
            save(sig, data)
        except OSError:
            pass
    cache.save_overload = save_overload
    return dispatcher


def njit(*args, **options):
    """``numba.njit(..., cache=True)``, cached in :func:`cache_dir`; used
    as ``@njit`` or ``@njit(parallel=True)``."""
    global _CACHE_DIR
    if _CACHE_DIR is None:
        _CACHE_DIR = cache_dir()
    options['cache'] = True

    def decorate(function):
        with _caching_in(_CACHE_DIR):
            return _keeping_going(numba.njit(**options)(function))
    if args and callable(args[0]):
        return decorate(args[0])
    return decorate
