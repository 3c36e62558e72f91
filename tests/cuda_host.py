"""CUDA sources checked where there is no GPU: compiled by NVRTC from the
package index (:func:`compile_cuda`), and run on the host, built for this
CPU with the C compiler, so that a test can compare what a kernel computes
with the CPU forms on any machine.

:func:`compile_library` builds C (an elementwise body in a loop, as
``test_cuda_forms.py`` lays them out); :class:`RawModule` takes the
source of CuPy raw kernels as it stands and calls them as
``cupy.RawModule(code=...).get_function(name)(grid, block, args)`` would,
on NumPy arrays: each block in turn, its threads an OpenMP team of
``block`` threads, so that ``__shared__`` arrays are the team's and
``__syncthreads()`` is its barrier. Float operations are the host's,
without flushing: the raw kernels here are integer code, or are checked
away from subnormals.
"""
import ctypes
import glob
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy
import pytest

ARCHS = (75, 80, 90)
# Where each CUDA version's NVRTC wheel puts its library.
NVRTC_LIBRARIES = {12: 'nvidia/cuda_nvrtc/lib/libnvrtc.so.12',
                   13: 'nvidia/cu13/lib/libnvrtc.so.13'}
# What CuPy passes NVRTC besides the architecture and include paths
# (cupy/cuda/compiler.py, cupy/_core/core.pyx): flush-to-zero on, so
# that the kernels are checked as CuPy builds them.
OPTIONS = ('--std=c++17', '-ftz=true')


def skip_without_wheels(package):
    """Skips where requirements-test.txt installs no NVRTC and CuPy wheels
    (its platform markers)."""
    if platform.system() != 'Linux' or platform.machine() not in (
            'x86_64', 'aarch64'):
        pytest.skip('no {} wheel for {} {}'.format(
            package, platform.system(), platform.machine()))


def nvrtc_library(version):
    paths = [path for entry in sys.path for path in glob.glob(
        os.path.join(entry, NVRTC_LIBRARIES[version]))]
    if not paths:
        skip_without_wheels('NVRTC')
        pytest.fail('{} is missing: pip install -r requirements-test.txt'
                    .format(NVRTC_LIBRARIES[version]))
    return ctypes.CDLL(paths[0])


def compile_cuda(source, arch, version=12, options=OPTIONS):
    """``(status, log, ptx)`` of NVRTC ``version`` compiling ``source``
    for ``compute_<arch>``."""
    lib = nvrtc_library(version)
    program = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), source.encode(),
                                  b'quantized_net.cu', 0, None, None) == 0
    options = [option.encode() for option in
               ('-arch=compute_%d' % arch,) + tuple(options)]
    status = lib.nvrtcCompileProgram(
        program, len(options), (ctypes.c_char_p * len(options))(*options))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    ptx = b''
    if status == 0:
        lib.nvrtcGetPTXSize(program, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(program, buffer)
        ptx = buffer.value
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return status, log.value.decode(), ptx.decode()


# What a CUDA body needs beyond C on the host.
PRELUDE = r'''
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <xmmintrin.h>

static inline unsigned int __float_as_uint(float x) {
    unsigned int u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned int u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static inline float __int_as_float(int i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}
static inline int __clz(unsigned int x) { return x ? __builtin_clz(x) : 32; }
static inline unsigned int min(unsigned int a, unsigned int b) {
    return a < b ? a : b;
}
/* CUDA's max of two floats is fmaxf. */
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline int __popcll(unsigned long long x) {
    return __builtin_popcountll(x);
}
'''

# A raw kernel's launch: the built-in indexes, each thread's own.
RAW_PRELUDE = r'''
#include <omp.h>
typedef struct { unsigned int x, y, z; } host_dim3;
static __thread host_dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__ static inline
#define __forceinline__
#define __restrict__ restrict
#define __shared__ static
#define __syncthreads() _Pragma("omp barrier")
'''

# Each launch: every block in turn, its threads one OpenMP team (its
# names prefixed, apart from the kernel's).
LAUNCHER = r'''
int launch_{name}(unsigned int host_gx, unsigned int host_gy,
                  unsigned int host_gz, unsigned int host_bx,
                  unsigned int host_by, unsigned int host_bz,
                  {parameters}) {{
    const int host_threads = (int)(host_bx * host_by * host_bz);
    int host_team = host_threads;
    omp_set_dynamic(0);
    for (unsigned int host_z = 0; host_z < host_gz; ++host_z)
    for (unsigned int host_y = 0; host_y < host_gy; ++host_y)
    for (unsigned int host_x = 0; host_x < host_gx; ++host_x) {{
        #pragma omp parallel num_threads(host_threads)
        {{
            const unsigned int host_t = (unsigned int)omp_get_thread_num();
            if (host_t == 0 && omp_get_num_threads() != host_threads)
                host_team = omp_get_num_threads();
            threadIdx.x = host_t % host_bx;
            threadIdx.y = host_t / host_bx % host_by;
            threadIdx.z = host_t / (host_bx * host_by);
            blockIdx.x = host_x; blockIdx.y = host_y; blockIdx.z = host_z;
            blockDim.x = host_bx; blockDim.y = host_by; blockDim.z = host_bz;
            gridDim.x = host_gx; gridDim.y = host_gy; gridDim.z = host_gz;
            if (omp_get_num_threads() == host_threads) {name}({arguments});
        }}
        if (host_team != host_threads) return host_team;
    }}
    return 0;
}}
'''

KERNEL = re.compile(r'__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
C_SCALARS = {'int': ctypes.c_int, 'unsigned int': ctypes.c_uint,
             'long long': ctypes.c_longlong,
             'unsigned long long': ctypes.c_ulonglong,
             'float': ctypes.c_float, 'double': ctypes.c_double}


def compile_library(source, directory, openmp=False):
    """``ctypes.CDLL`` of the C ``source`` built in ``directory``; skips
    where this machine has no C compiler, or is not x86 (the elementwise
    forms set the x86 MXCSR to flush)."""
    if platform.machine() not in ('x86_64', 'AMD64'):
        pytest.skip('the host forms of the CUDA kernels are built for x86')
    compiler = shutil.which('cc') or shutil.which('gcc')
    if compiler is None:
        pytest.skip('no C compiler (cc) here to build the host form')
    # No contraction into FMAs, which GNU C allows by default: each float
    # operation rounds as NumPy's does.
    command = [compiler, '-O2', '-std=gnu99', '-ffp-contract=off',
               '-shared', '-fPIC'] + (['-fopenmp'] if openmp else [])
    if openmp and not _builds(command, directory, OPENMP_PROBE):
        pytest.skip('{} builds no OpenMP here (the raw kernels\' blocks '
                    'run as OpenMP teams)'.format(compiler))
    return ctypes.CDLL(_build(command, directory, 'kernel', source))


# The least an OpenMP build must run: a team and its barrier.
OPENMP_PROBE = r'''
#include <omp.h>
int probe(void) {
    int seen = 0;
    #pragma omp parallel num_threads(2)
    {
        #pragma omp barrier
        #pragma omp atomic
        seen += 1;
    }
    return seen;
}
'''


def _build(command, directory, name, source):
    path = os.path.join(directory, name + '.c')
    with open(path, 'w') as f:
        f.write(source)
    library = os.path.join(directory, name + '.so')
    subprocess.run(command + ['-o', library, path, '-lm'], check=True)
    return library


def _builds(command, directory, source):
    """Whether ``command`` builds and loads ``source`` (an OpenMP
    probe), so that a kernel's own build errors are failures, not
    skips."""
    try:
        return ctypes.CDLL(_build(command, directory, 'probe',
                                  source)).probe() == 2
    except (subprocess.CalledProcessError, OSError):
        return False


def parameters(text):
    """``[(C type, name)]`` of a kernel's parameter list: pointers as
    ``'*'``, qualifiers dropped."""
    out = []
    for parameter in text.split(','):
        words = parameter.replace('*', ' * ').split()
        name = words[-1]
        if '*' in words:
            out.append(('*', name))
        else:
            out.append((' '.join(w for w in words[:-1] if w != 'const'),
                        name))
    return out


class RawModule(object):
    """The raw kernels of a CUDA ``code``, built for the host in
    ``directory``; :meth:`get_function` as CuPy's."""

    def __init__(self, code, directory):
        found = KERNEL.findall(code)
        self.kernels = {name: parameters(text) for name, text in found}
        launchers = ''.join(LAUNCHER.format(
            name=name, parameters=text,
            arguments=', '.join(n for _, n in self.kernels[name]))
            for name, text in found)
        self.library = compile_library(
            PRELUDE + RAW_PRELUDE + code.replace('extern "C"', '') +
            launchers, directory, openmp=True)

    def get_function(self, name):
        launch = getattr(self.library, 'launch_' + name)
        kinds = self.kernels[name]

        def call(grid, block, args):
            assert len(args) == len(kinds), (name, len(args), len(kinds))
            grid = tuple(grid) + (1,) * (3 - len(grid))
            block = tuple(block) + (1,) * (3 - len(block))
            converted = []
            for (kind, parameter), value in zip(kinds, args):
                if kind == '*':
                    assert isinstance(value, numpy.ndarray), parameter
                    assert value.flags.c_contiguous, parameter
                    converted.append(ctypes.c_void_p(value.ctypes.data))
                else:
                    converted.append(C_SCALARS[kind](value.item()
                                                     if hasattr(value, 'item')
                                                     else value))
            team = launch(*[ctypes.c_uint(int(n)) for n in grid + block],
                          *converted)
            assert team == 0, 'OpenMP gave {} threads, not {}'.format(
                team, numpy.prod(block))
        return call
