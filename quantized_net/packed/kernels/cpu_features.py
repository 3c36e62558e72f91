"""Which forms of the CPU kernels this machine runs.

A form is a layout of the packed rows (:mod:`layouts`) and the
instructions that count their bits (:mod:`tiles`):

``avx512``
    ``vpopcntq`` on 512-bit vectors (AVX-512 VPOPCNTDQ), and a ConvNet's
    first convolution by ``vpdpbusd`` (AVX-512 VNNI, which every CPU with
    VPOPCNTDQ since Ice Lake and Zen 4 has).
``avx2``
    ``vpshufb`` nibble lookups on 256-bit vectors.
``scalar``
    LLVM's generic popcount on 64-bit words, and no CPU-specific
    instruction anywhere: the portable form, the reference of the others.

Every form's first layer but the scalar one multiplies pixel pairs with
``vpmaddubsw`` (AVX2). numba compiles every form; without it there is
none. numba compiles for the CPU it runs on, or for the one named by
``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES``; the forms are those of the
CPU it compiles for, so an AVX-512 machine told ``NUMBA_CPU_NAME=haswell``
and Haswell's features runs the AVX2 form built as for an AVX2 CPU
(:data:`HASWELL_FEATURES`; ``docs/packed.md``).
"""
from quantized_net import kernel_cache

#: Whether numba, which compiles every CPU kernel, imports.
HAVE_NUMBA = kernel_cache.HAVE_NUMBA
NO_NUMBA = ('the CPU XNOR-popcount kernels need numba (pip install numba); '
            'without it, run infer_packed.py --engine blas')
#: The forms, fastest first, and the CPU features (LLVM's names) each
#: needs.
FORMS = {'avx512': ('avx512f', 'avx512vpopcntdq', 'avx512vnni'),
         'avx2': ('avx2',),
         'scalar': ()}


def host_features():
    """The LLVM names of the features of the CPU numba compiles for (none
    without numba): this CPU's, or those ``NUMBA_CPU_FEATURES`` lists
    (``+avx2,+popcnt,...``), which numba then compiles every kernel for,
    as for a CPU that has those and no others."""
    if not HAVE_NUMBA:
        return set()
    import numba.core.config
    if numba.core.config.CPU_FEATURES is not None:
        return parse_features(numba.core.config.CPU_FEATURES)
    import llvmlite.binding  # numba's, here when numba is
    host = llvmlite.binding.get_host_cpu_features()
    return {name for name in host if host[name]}


def parse_features(text):
    """The names a feature string of LLVM's (``+avx2,-avx512f``) turns
    on."""
    return {entry.strip()[1:] for entry in text.split(',')
            if entry.strip().startswith('+')}


#: The features of Intel's Haswell, the first AVX2 CPU, in LLVM's names:
#: with ``NUMBA_CPU_NAME=haswell``, what numba compiles for such a CPU.
HASWELL_FEATURES = ','.join('+' + name for name in (
    '64bit', 'aes', 'avx', 'avx2', 'bmi', 'bmi2', 'cmov', 'cx16', 'cx8',
    'f16c', 'fma', 'fsgsbase', 'fxsr', 'invpcid', 'lzcnt', 'mmx', 'movbe',
    'pclmul', 'popcnt', 'rdrnd', 'sahf', 'sse', 'sse2', 'sse3', 'sse4.1',
    'sse4.2', 'ssse3', 'xsave', 'xsaveopt'))


def runnable_forms(features=None):
    """The forms this CPU (or one with the set of LLVM feature names
    ``features``) runs, fastest first; none without numba."""
    if features is None:
        if not HAVE_NUMBA:
            return []
        features = host_features()
    return [form for form, needs in FORMS.items()
            if all(n in features for n in needs)]


def best_form():
    """The fastest form this CPU runs, or None without numba."""
    forms = runnable_forms()
    return forms[0] if forms else None


def check_form(form):
    """ValueError unless this CPU runs the kernels of ``form``."""
    runnable = runnable_forms()
    if form not in runnable:
        raise ValueError('this CPU cannot run the {} kernels; it runs: {}'
                         .format(form, ', '.join(runnable) or 'none'))
