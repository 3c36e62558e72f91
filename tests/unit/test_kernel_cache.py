"""kernel_cache.py: a change to any kernel source, in any file, reaches
the compiled kernels without deleting a cache by hand."""
import os
import shutil
import subprocess
import sys

import pytest

import helpers
from quantized_net import kernel_cache

pytest.importorskip('numba')

# A kernel that compiles in a constant of another file: numba's own cache
# checks the kernel's file only, and would keep the old constant.
CONSTANT = 'VALUE = {}\n'
KERNEL = '''from quantized_net import kernel_cache
from quantized_net.quantization import probe_constant


@kernel_cache.njit
def probe():
    return probe_constant.VALUE
'''
RUN = ('from quantized_net import kernel_cache\n'
       'from quantized_net.quantization import probe_kernel\n'
       'print(probe_kernel.probe(), kernel_cache.cache_dir())\n')


@pytest.fixture
def package_copy(tmp_path):
    """A copy of the package with the probe kernel in its quantization
    folder; returns a function that runs the probe in a new process."""
    shutil.copytree(kernel_cache.PACKAGE, tmp_path / 'quantized_net',
                    ignore=shutil.ignore_patterns('__pycache__'))
    folder = tmp_path / 'quantized_net' / 'quantization'
    (folder / 'probe_kernel.py').write_text(KERNEL)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop('NUMBA_CACHE_DIR', None)

    def run(value):
        (folder / 'probe_constant.py').write_text(CONSTANT.format(value))
        result = subprocess.run([sys.executable, '-c', RUN], env=env,
                                cwd=str(tmp_path), capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr
        printed, directory = result.stdout.split()
        return int(printed), directory
    return run


def test_a_change_in_another_file_reaches_the_cached_kernel(package_copy):
    first, first_dir = package_copy(1)
    assert first == 1
    assert any(name.endswith('.nbi') for _, _, names in os.walk(first_dir)
               for name in names)  # compiled and cached
    second, second_dir = package_copy(2)
    assert second == 2
    assert second_dir != first_dir
    # Back to the first sources: their cache is the first one again.
    assert package_copy(1) == (1, first_dir)


def test_the_directory_is_named_by_the_kernel_sources(monkeypatch,
                                                      tmp_path):
    here = kernel_cache.cache_dir()
    assert os.path.dirname(here) == os.path.join(kernel_cache.PACKAGE,
                                                 '__pycache__')
    assert os.path.basename(here) == 'numba-' + kernel_cache.sources_hash()
    monkeypatch.setenv('NUMBA_CACHE_DIR', str(tmp_path))
    assert kernel_cache.cache_dir() == str(
        tmp_path / ('quantized_net-' + kernel_cache.sources_hash()))


def test_every_cached_kernel_is_in_the_hashed_sources():
    hashed = set(kernel_cache.source_files())
    for folder, _, names in os.walk(kernel_cache.PACKAGE):
        for name in names:
            path = os.path.join(folder, name)
            if not name.endswith('.py'):
                continue
            with open(path) as f:
                source = f.read()
            if 'kernel_cache.njit' in source or 'cache=True' in source:
                assert path in hashed, os.path.relpath(path, helpers.ROOT)


def test_parallel_kernels_run_on_the_calling_thread_within():
    numba = pytest.importorskip('numba')
    before = kernel_cache.threads()
    with pytest.raises(KeyError):
        with kernel_cache.calling_thread_only():
            assert numba.get_num_threads() == 1
            raise KeyError('the count comes back after an error too')
    assert numba.get_num_threads() == before


def test_a_cache_that_cannot_be_written_leaves_the_kernel_running(
        tmp_path, monkeypatch):
    # A full disk: every write of the cache fails with ENOSPC.
    import errno
    from numba.core import caching
    monkeypatch.setattr(kernel_cache, '_CACHE_DIR', str(tmp_path))

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(caching.IndexDataCacheFile, 'save', full)

    @kernel_cache.njit
    def twice(x):
        return 2 * x
    assert twice(21) == 42
    assert twice(1.5) == 3.0
