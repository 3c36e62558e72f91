"""Lets Chainer 7.8.1, its last release, import under NumPy 2 and Python 3.12.

The package's ``__init__`` imports this module, so that importing anything
of the package first is enough::

    import quantized_net  # noqa: F401  (before chainer: NumPy 2)
    import chainer

It restores exactly what Chainer touches at import time and nothing else:

* ``numpy.sctypes`` (removed in NumPy 2.0) is read by
  ``chainer/functions/array/as_strided.py`` for its ``'int'`` and ``'float'``
  lists.
* ``numpy.distutils`` (gone under Python >= 3.12 and in NumPy >= 2.5 builds)
  is imported by ``chainer/_environment_check.py`` only to look for Apple's
  Accelerate on macOS; an empty ``system_info.get_info`` answers "not found",
  as a NumPy built without it would.
* The deprecation warnings that ``pkg_resources`` (pinned to setuptools < 81
  in ``requirements.txt``) and ``numpy.distutils`` print on import are
  expected and silenced for the duration of ``import chainer``.
* CuPy, where installed, warns at import for each optional CUDA library it
  cannot load (NCCL, cuTENSOR); silenced too, as a CPU run does not need
  them and a GPU run that does fails with its own error.

* Chainer warns at the first GPU use that cuDNN is not enabled and that
  CuPy should be reinstalled with it. CuPy 14 has no cuDNN module at all,
  so that advice cannot be followed; Chainer's own CUDA kernels run
  instead, and the warning is marked as given.

Under NumPy 1.26 and Python 3.11 the first two are no-ops.

It also refuses, before Chainer reads it, a ``CHAINER_DTYPE`` other than
float32: the quantizers and kernels compute in float32, and Chainer itself
fails on a value it does not know with a traceback at import.
"""
import importlib.util
import os
import sys
import types
import warnings

import numpy


def _restore_sctypes():
    if 'sctypes' in vars(numpy):
        return
    numpy.sctypes = {
        'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
        'uint': [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
        'float': [numpy.float16, numpy.float32, numpy.float64,
                  numpy.longdouble],
        'complex': [numpy.complex64, numpy.complex128, numpy.clongdouble],
        'others': [bool, object, bytes, str, numpy.void],
    }


def _provide_distutils_system_info():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            import numpy.distutils.system_info  # noqa: F401
            return
        except ImportError:
            pass
    system_info = types.ModuleType('numpy.distutils.system_info')
    system_info.get_info = lambda name, notfound_action=0: {}
    distutils = types.ModuleType('numpy.distutils')
    distutils.system_info = system_info
    sys.modules.setdefault('numpy.distutils', distutils)
    sys.modules.setdefault('numpy.distutils.system_info', system_info)


def _import_chainer():
    try:
        _import_chainer_quietly()
    except ImportError as error:
        _refuse('Chainer does not import ({}): install the requirements '
                '(make setup, see the README) and run the command with that '
                "environment's Python (.venv/bin/python)".format(error))


def _import_chainer_quietly():
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message='pkg_resources is deprecated',
            category=UserWarning)
        warnings.filterwarnings('ignore', category=DeprecationWarning,
                                module='chainer._environment_check')
        warnings.filterwarnings('ignore', category=DeprecationWarning,
                                message='.*pkg_resources')
        warnings.filterwarnings('ignore', category=UserWarning,
                                message=r'\s*\S+ library could not be loaded')
        import chainer  # noqa: F401


def quiet_unfollowable_cudnn_advice():
    """Marks Chainer's advice to reinstall CuPy with cuDNN as given where
    CuPy has no cuDNN to reinstall with."""
    from chainer.backends import cuda
    if cuda.available and importlib.util.find_spec('cupy.cudnn') is None:
        cuda.check_cuda_available._already_warned = True


def unsupported_dtype():
    """What is wrong with ``CHAINER_DTYPE``, or None where it is unset or
    float32."""
    value = os.environ.get('CHAINER_DTYPE')
    if value in (None, '', 'float32'):
        return None
    return ('CHAINER_DTYPE is {!r}, but quantized_net computes in float32; '
            'unset CHAINER_DTYPE, or set it to float32.'.format(value))


def _refuse(why):
    """Ends a command with ``why`` as its one line of error; in a program
    that imports the package, raises ImportError."""
    from quantized_net import signals
    if signals.running_a_command():
        sys.exit('{}: error: {}'.format(signals.prog(), why))
    raise ImportError(why)


def _check_dtype():
    wrong = unsupported_dtype()
    if wrong is not None:
        _refuse(wrong)


_check_dtype()
_restore_sctypes()
_provide_distutils_system_info()
_import_chainer()
quiet_unfollowable_cudnn_advice()
