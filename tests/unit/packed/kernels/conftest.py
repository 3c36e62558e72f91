"""The forms of the CPU kernels as fixtures, each skipped with the reason
where this CPU cannot run what a test runs of it."""
import pytest

from quantized_net.packed.kernels import cpu_features


def _forms(everywhere):
    """Every form, skipped where this CPU does not run it unless it is one
    of ``everywhere``: those whose code in what is tested is LLVM's
    generic operations, which compile on any CPU."""
    return [pytest.param(form, marks=pytest.mark.skipif(
        form not in everywhere and
        form not in cpu_features.runnable_forms(),
        reason='this CPU has no {}'.format(form.upper())))
        for form in cpu_features.FORMS]


@pytest.fixture(params=_forms(everywhere=('avx512', 'scalar')))
def hidden_form(request):
    """A form for the tiles, hidden and last layers: the avx512 form's are
    LLVM's generic vector popcount (``vpopcntq`` where AVX-512 VPOPCNTDQ
    is, other instructions elsewhere), tested everywhere."""
    return request.param


@pytest.fixture(params=_forms(everywhere=('scalar',)))
def form(request):
    """A form for what the first layer runs: the vector forms' need AVX2
    (``vpmaddubsw``)."""
    return request.param
