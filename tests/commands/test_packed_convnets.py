"""export.py then infer_packed.py on binarized ConvNets, as a user runs
them: the three data sets' networks on generated files in each real
format, every label the Chainer model's."""
import os

import pytest

import helpers
from quantized_net.packed import export as packed_export
from quantized_net.packed import format as packed_format
from quantized_net.packed.kernels import cpu_features

# (data set, image shape, architecture, its layers as export.py says
# them, writer of its files)
CASES = [
    ('mnist', (1, 28, 28), '6C3-P2-70C3-P2-12FC',
     '1x28x28 - 6C3-P2 - 70C3-P2 - 12 - 10', helpers.write_synthetic),
    ('cifar10', (3, 32, 32), '8C3-8C3-P2-16C3-P2-16C3-P2-20FC',
     '3x32x32 - 8C3 - 8C3-P2 - 16C3-P2 - 16C3-P2 - 20 - 10',
     helpers.write_cifar10),
    ('svhn', (3, 32, 32), '8C3-P2-16C3-P2-20FC',
     '3x32x32 - 8C3-P2 - 16C3-P2 - 20 - 10', helpers.write_svhn),
]
TITLES = {'mnist': 'MNIST', 'cifar10': 'CIFAR-10', 'svhn': 'SVHN'}


@pytest.mark.parametrize('dataset,shape,architecture,layers,write', CASES)
def test_export_then_infer_gives_the_chainer_labels(
        tmp_path, dataset, shape, architecture, layers, write):
    model, config = helpers.binarized_convnet(
        architecture, shape, seed=3,
        dataset=None if dataset == 'mnist' else dataset)
    result = helpers.write_result(str(tmp_path / 'result'), model, config)
    data = write(str(tmp_path / 'data'))
    exported = helpers.run_script('export.py', result)
    assert exported.returncode == 0, exported.stderr
    path = os.path.join(result, packed_format.PACKED_FILE)
    lines = exported.stdout.splitlines()
    assert lines[0].startswith('wrote {} ('.format(path))
    assert lines[0].endswith('bytes): layers ' + layers)
    assert lines[1].endswith('x smaller)')
    for engine in ('packed', 'blas'):
        inferred = helpers.run_script(
            'infer_packed.py', path, '--dataset-dir', data, '--compare',
            result, '--engine', engine)
        assert inferred.returncode == 0, inferred.stderr
        lines = inferred.stdout.splitlines()
        assert lines[0] == '{}: {} engine on the CPU{}'.format(
            path, engine, ' ({} kernels)'.format(cpu_features.best_form())
            if engine == 'packed' else '')
        assert 'images from the {} test set'.format(TITLES[dataset]) in \
            lines[1]
        assert lines[2].endswith(' 0 of {} labels differ from the packed '
                                 'network\'s'.format(
                                     lines[1].split('(')[1].split()[0]))


# A CPU with AVX2 and no AVX-512, and one without AVX2 (Nehalem's
# features): (NUMBA_CPU_NAME, NUMBA_CPU_FEATURES, the form it runs).
OLDER_CPUS = [
    ('haswell', cpu_features.HASWELL_FEATURES, 'avx2'),
    ('nehalem', '+64bit,+cmov,+cx16,+cx8,+fxsr,+mmx,+popcnt,+sahf,+sse,'
     '+sse2,+sse3,+sse4.1,+sse4.2,+ssse3', 'scalar')]


@pytest.mark.skipif('avx2' not in cpu_features.runnable_forms(),
                    reason='this CPU has no AVX2')
@pytest.mark.parametrize('cpu,features,form', OLDER_CPUS)
def test_compiled_for_an_older_cpu_a_convnet_gives_the_chainer_labels(
        tmp_path, cpu, features, form):
    # numba compiles for the CPU NUMBA_CPU_NAME and NUMBA_CPU_FEATURES
    # name, whose LLVM cannot compile an instruction it lacks in any
    # kernel the network runs.
    dataset, shape, architecture, _, write = CASES[0]
    model, config = helpers.binarized_convnet(architecture, shape, seed=4)
    result = helpers.write_result(str(tmp_path / 'result'), model, config)
    data = write(str(tmp_path / 'data'))
    assert helpers.run_script('export.py', result).returncode == 0
    inferred = helpers.run_script(
        'infer_packed.py', os.path.join(result, packed_format.PACKED_FILE),
        '--dataset-dir', data, '--compare', result,
        env={'NUMBA_CPU_NAME': cpu, 'NUMBA_CPU_FEATURES': features})
    assert inferred.returncode == 0, inferred.stderr
    lines = inferred.stdout.splitlines()
    assert lines[0].endswith(
        'packed engine on the CPU ({} kernels)'.format(form))
    assert lines[2].endswith(' 0 of 200 labels differ from the packed '
                             'network\'s')


def test_a_network_of_an_unknown_data_set_needs_images(tmp_path):
    model, config = helpers.binarized_convnet(dataset='imagenet')
    path = str(tmp_path / 'net.npz')
    packed_format.save(path, packed_export.export(model, config))
    helpers.assert_one_line_error(
        helpers.run_script('infer_packed.py', path),
        "was trained on 'imagenet', a data set this program does not read "
        '(it reads cifar10, mnist, svhn).')


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('MNIST_DIR'),
                    reason='MNIST_DIR (the real MNIST files) not set')
@pytest.mark.parametrize('engine', ['packed', 'blas'])
def test_the_shipped_convnet_gives_its_models_labels_on_real_mnist(engine):
    shipped = os.path.join(helpers.ROOT, 'docs', 'bnn-conv')
    result = helpers.run_script(
        'infer_packed.py', os.path.join(shipped, packed_format.PACKED_FILE),
        '--compare', shipped, '--best', '--engine', engine)
    assert result.returncode == 0, result.stderr
    assert '0 of 10000 labels differ' in result.stdout
