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
none.
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
    """The LLVM names of this CPU's features (none without numba)."""
    if not HAVE_NUMBA:
        return set()
    import llvmlite.binding  # numba's, here when numba is
    host = llvmlite.binding.get_host_cpu_features()
    return {name for name in host if host[name]}


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
