"""cpu_features.py: which forms a CPU runs."""
import pytest

from quantized_net.packed.kernels import cpu_features


def test_forms_by_cpu_features():
    assert list(cpu_features.FORMS) == ['avx512', 'avx2', 'scalar']
    assert cpu_features.runnable_forms(set()) == ['scalar']
    assert cpu_features.runnable_forms({'avx2', 'popcnt'}) == [
        'avx2', 'scalar']
    assert cpu_features.runnable_forms({'avx2', 'avx512f'}) == [
        'avx2', 'scalar']
    # VPOPCNTDQ without VNNI: the first convolution's runs of four taps
    # need both.
    assert cpu_features.runnable_forms(
        {'avx2', 'avx512f', 'avx512vpopcntdq'}) == ['avx2', 'scalar']
    assert cpu_features.runnable_forms(
        {'avx2', 'avx512f', 'avx512vpopcntdq', 'avx512vnni'}) == [
            'avx512', 'avx2', 'scalar']


def test_feature_strings():
    assert cpu_features.parse_features('+avx2,-avx512f, +popcnt,') == {
        'avx2', 'popcnt'}
    assert cpu_features.runnable_forms(cpu_features.parse_features(
        cpu_features.HASWELL_FEATURES)) == ['avx2', 'scalar']


def test_the_features_are_those_numba_compiles_for(monkeypatch):
    numba_config = pytest.importorskip('numba.core.config')
    monkeypatch.setattr(numba_config, 'CPU_FEATURES',
                        cpu_features.HASWELL_FEATURES)
    assert 'avx512f' not in cpu_features.host_features()
    assert cpu_features.runnable_forms() == ['avx2', 'scalar']
    assert cpu_features.best_form() == 'avx2'


def test_this_cpu():
    if not cpu_features.HAVE_NUMBA:
        assert cpu_features.runnable_forms() == []
        assert cpu_features.best_form() is None
        return
    forms = cpu_features.runnable_forms()
    assert forms == cpu_features.runnable_forms(cpu_features.host_features())
    assert forms[-1] == 'scalar'
    assert cpu_features.best_form() == forms[0]


def test_a_form_the_cpu_cannot_run_is_refused():
    for form in cpu_features.runnable_forms():
        cpu_features.check_form(form)
    missing = [form for form in cpu_features.FORMS
               if form not in cpu_features.runnable_forms()] + ['sse2']
    with pytest.raises(ValueError, match='this CPU cannot run the {} '
                       'kernels; it runs: '.format(missing[0])):
        cpu_features.check_form(missing[0])
