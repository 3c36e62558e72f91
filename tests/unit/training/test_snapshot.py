"""snapshot.py: snapshots written whole and pruned to this run's own, the
random state in them, and loading one back with one-line errors. (Exact
resume after kills is test_faults.py's.)"""
import os
import types

import numpy
import pytest

import chainer
import chainer.links as L

from quantized_net.training import snapshot
from quantized_net import errors


class Small(snapshot.Snapshot):
    """A snapshot of a few arrays, for a trainer of nothing."""

    def arrays(self, trainer):
        return {'iteration': numpy.array(trainer.updater.iteration)}


def trainer_at(out, iteration):
    return types.SimpleNamespace(
        out=out, updater=types.SimpleNamespace(iteration=iteration))


def test_only_the_latest_of_this_runs_snapshots_is_kept(tmp_path):
    out = str(tmp_path)
    with open(os.path.join(out, 'snapshot_iter_1800.keep'), 'w') as f:
        f.write('mine')
    with open(os.path.join(out, 'snapshot_iter_6'), 'w') as f:
        f.write('of another run')
    extension = Small(n_retains=1)
    for iteration in (12, 24):
        extension(trainer_at(out, iteration))
    assert sorted(os.listdir(out)) == [
        'snapshot_iter_1800.keep', 'snapshot_iter_24', 'snapshot_iter_6']
    with numpy.load(os.path.join(out, 'snapshot_iter_24')) as archive:
        assert int(archive['iteration']) == 24
    # Which snapshots it wrote is in the snapshot: a resumed run prunes
    # them too.
    saved = chainer.serializers.DictionarySerializer()
    extension.serialize(saved)
    resumed = Small(n_retains=1)
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    assert resumed.written == ['snapshot_iter_24']
    resumed(trainer_at(out, 36))
    assert 'snapshot_iter_24' not in os.listdir(out)


def test_random_state_is_saved_and_restored():
    extension = snapshot.RandomState(chainer.get_device('@numpy'))
    numpy.random.seed(3)
    numpy.random.rand(7)
    saved = chainer.serializers.DictionarySerializer()
    extension.serialize(saved)
    expected = numpy.random.rand(5)
    numpy.random.seed(99)
    extension.serialize(chainer.serializers.NpzDeserializer(saved.target))
    numpy.testing.assert_array_equal(numpy.random.rand(5), expected)


def arrays_of(link, **extra):
    serializer = chainer.serializers.DictionarySerializer()
    serializer.save(link)
    return dict(serializer.target, **extra)


def test_load_fills_the_trainer():
    source, target = L.Linear(3, 2), L.Linear(3, 2)
    arrays = arrays_of(source)
    snapshot.load_snapshot('s', target, arrays)
    numpy.testing.assert_array_equal(target.W.array, source.W.array)


@pytest.mark.parametrize('written,processes,message', [
    (2, 1, 'cannot resume: s was written by 2 processes; run it with '
           'mpiexec -n 2 ./train_mnist_mn.py.'),
    (1, 2, 'cannot resume: s was written by 1 process; run it with '
           './train_mnist.py.')])
def test_a_snapshot_resumes_with_as_many_processes(written, processes,
                                                   message):
    link = L.Linear(3, 2)
    arrays = arrays_of(link)
    if written > 1:
        arrays[snapshot.PROCESSES_KEY] = numpy.array(written)
    with pytest.raises(errors.UsageError) as e:
        snapshot.load_snapshot('s', link, arrays, processes=processes)
    assert str(e.value) == message


def test_a_snapshot_of_another_network(tmp_path):
    path = str(tmp_path / 'snapshot_iter_1')
    numpy.savez(path, **arrays_of(L.Linear(3, 2)))
    os.rename(path + '.npz', path)
    with pytest.raises(errors.UsageError) as e:
        snapshot.load_snapshot(path, L.Linear(4, 2))
    assert str(e.value).startswith(
        'cannot resume from {}: it is not a snapshot of this network ('
        .format(path))
    assert '\n' not in str(e.value)
    damaged = tmp_path / 'damaged'
    damaged.write_bytes(b'')
    with pytest.raises(errors.UsageError, match='^cannot resume: .* is not '
                       'an archive of arrays'):
        snapshot.load_snapshot(str(damaged), L.Linear(3, 2))
