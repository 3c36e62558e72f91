"""snapshot.py: snapshots written whole and pruned to this run's own, the
random state in them, and loading one back with one-line errors. (Exact
resume after kills is test_faults.py's.)"""
import json
import os
import types

import numpy
import pytest

import chainer
import chainer.links as L
from chainer import training

from quantized_net.training import mnist
from quantized_net.training import presets
from quantized_net.training import run_record
from quantized_net.training import snapshot
from quantized_net.training import trainer as trainer_module
from quantized_net import errors


class Small(snapshot.Snapshot):
    """A snapshot of a few arrays, for a trainer of nothing."""

    def arrays(self, trainer):
        return {'iteration': numpy.array(trainer.updater.iteration)}


def trainer_at(out, iteration):
    return types.SimpleNamespace(
        out=out, updater=types.SimpleNamespace(iteration=iteration))


def a_record(run_id=None):
    return run_record.Record(
        config_items=(('unit', 3),), seed=5,
        run_id=run_id or run_record.new_run_id(), data='0' * 64)


def write_npz(path, **arrays):
    """Writes ``arrays`` to ``path`` as a snapshot is: an .npz archive of
    plain arrays, under the name given."""
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)


def test_only_the_latest_of_this_runs_snapshots_is_kept(tmp_path):
    out = str(tmp_path)
    with open(os.path.join(out, 'snapshot_iter_1800.keep'), 'w') as f:
        f.write('mine')
    with open(os.path.join(out, 'snapshot_iter_6'), 'w') as f:
        f.write('of another run')
    extension = Small(n_retains=1, record=a_record())
    for iteration in (12, 24):
        extension(trainer_at(out, iteration))
    assert sorted(os.listdir(out)) == [
        'snapshot_iter_1800.keep', 'snapshot_iter_24', 'snapshot_iter_6']
    with numpy.load(os.path.join(out, 'snapshot_iter_24')) as archive:
        assert int(archive['iteration']) == 24
        assert str(archive[run_record.ID_KEY]) == extension.record.run_id
    # Which snapshots it wrote is in the snapshot: a resumed run prunes
    # them too.
    saved = chainer.serializers.DictionarySerializer()
    extension.serialize(saved)
    resumed = Small(n_retains=1, record=extension.record)
    resumed.serialize(chainer.serializers.NpzDeserializer(saved.target))
    assert resumed.written == ['snapshot_iter_24']
    resumed(trainer_at(out, 36))
    assert 'snapshot_iter_24' not in os.listdir(out)


def test_only_regular_files_this_run_wrote_are_pruned(tmp_path):
    """A name the run lists is removed only where it is, in the run's own
    directory, a regular file whose record names the run's id: never a
    link (nor its target), a FIFO, a directory, another run's snapshot, or
    a file that records no run."""
    out = tmp_path / 'out'
    out.mkdir()
    outside = tmp_path / 'precious.txt'
    outside.write_bytes(b'precious')
    mine = a_record()
    ours = Small(n_retains=1, record=mine)
    ours(trainer_at(str(out), 1))
    os.symlink(str(outside), str(out / 'snapshot_iter_2'))
    os.mkfifo(str(out / 'snapshot_iter_3'))
    (out / 'snapshot_iter_4').mkdir()
    other = Small(n_retains=5, record=a_record())
    other(trainer_at(str(out), 5))
    write_npz(str(out / 'snapshot_iter_6'), iteration=numpy.array(6))
    (out / 'snapshot_iter_7').write_bytes(b'not an archive')
    ours.written = ['snapshot_iter_{}'.format(i) for i in range(1, 8)]
    ours(trainer_at(str(out), 8))
    assert sorted(os.listdir(str(out))) == [
        'snapshot_iter_{}'.format(i) for i in range(2, 9)]
    assert outside.read_bytes() == b'precious'
    assert os.path.islink(str(out / 'snapshot_iter_2'))
    # A link to a snapshot of this run is not the run's file either.
    os.remove(str(out / 'snapshot_iter_2'))
    os.symlink('snapshot_iter_8', str(out / 'snapshot_iter_2'))
    ours.written = ['snapshot_iter_2', 'snapshot_iter_8']
    ours(trainer_at(str(out), 9))
    assert os.path.islink(str(out / 'snapshot_iter_2'))
    assert 'snapshot_iter_8' not in os.listdir(str(out))
    # Without a record, a snapshot extension removes nothing.
    bare = Small(n_retains=1)
    bare(trainer_at(str(out), 10))
    bare(trainer_at(str(out), 11))
    assert {'snapshot_iter_10', 'snapshot_iter_11'} <= set(
        os.listdir(str(out)))


@pytest.mark.parametrize('written', [
    ['/abs/path/precious.txt'], ['../victim/model.npz'],
    ['snapshot_iter_12/../../x'], ['snapshot_iter_12\n'], ['snapshot_iter_'],
    ['snapshot_iter_012'], ['snapshot_iter_\u0661'], ['.'], [''], [12],
    [['snapshot_iter_12']], ['snapshot_iter_1'] * 65,
    'snapshot_iter_12', {'snapshot_iter_12': 1}, None])
def test_the_list_of_written_snapshots_is_names_only(written):
    saved = {'written': numpy.array(json.dumps(written))}
    with pytest.raises(snapshot.Tampered) as e:
        Small().serialize(chainer.serializers.NpzDeserializer(saved))
    assert str(e.value).startswith('written is not a list of ')


@pytest.mark.parametrize('value,message', [
    (numpy.array(5), 'written is not a string'),
    (numpy.array(['[]', '[]']), 'written is not a string'),
    (numpy.array('['), 'written is not a list of snapshot names: '),
    (numpy.array('[' * 5000 + ']' * 5000),
     'written is not a list of snapshot names: its JSON nests 5000 deep'),
])
def test_the_list_of_written_snapshots_is_a_json_string(value, message):
    with pytest.raises(snapshot.Tampered) as e:
        Small().serialize(chainer.serializers.NpzDeserializer(
            {'written': value}))
    assert str(e.value).startswith(message)


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


# Snapshots of a real run, each value rewritten as a hostile user would,
# pickle-free: each is refused in one line when it is loaded, naming the
# member, rather than failing later in the middle of training.

# 500 training images in batches of 50: 10 iterations an epoch.
BNN = ['--preset', 'bnn', '--validation', 100, '--unit', 24, '--layers', 2,
       '--batchsize', 50, '--seed', 5]
SNAPSHOT = 'snapshot_iter_10'
ITERATOR = 'updater/iterator:main/'
OPTIMIZER = 'updater/optimizer:main/'
RULE = OPTIMIZER + 'predictor/l1/W/'


@pytest.fixture(scope='module')
def written(tiny_data, tmp_path_factory, train_here):
    """The arrays of the snapshot of one epoch of a small bnn run, with
    plots where matplotlib is installed."""
    out = str(tmp_path_factory.mktemp('written') / 'run')
    train_here('--dataset-dir', tiny_data, '--out', out, '--epoch', 1,
               *BNN)
    with numpy.load(os.path.join(out, SNAPSHOT)) as archive:
        return {name: archive[name] for name in archive.files}


def fresh_trainer(describe_run, data, out):
    """The trainer a resume of that run builds, before it loads."""
    run = describe_run('--dataset-dir', data, '--out', out, '--epoch', 2,
                       *BNN)
    config = run.config
    train, val, test = mnist.load_splits(data, config['validation'])
    model = presets.build_classifier(config)
    optimizer = presets.build_optimizer(model, config)
    return trainer_module.build_trainer(
        run, model, optimizer, train, val, test,
        chainer.get_device('@numpy'))


@pytest.fixture
def load(written, tiny_data, tmp_path, describe_run):
    """``load(**changes)``: loads the snapshot with ``changes`` (member:
    value, None to leave it out) into a fresh trainer; the trainer."""
    def load(**changes):
        arrays = dict(written)
        for key, value in changes.items():
            if value is None:
                del arrays[key]
            else:
                arrays[key] = numpy.asarray(value)
        path = str(tmp_path / SNAPSHOT)
        write_npz(path, **arrays)
        trainer = fresh_trainer(describe_run, tiny_data, str(tmp_path))
        snapshot.load_snapshot(path, trainer)
        return trainer
    return load


def refused(load, **changes):
    with pytest.raises(errors.UsageError) as e:
        load(**changes)
    line = str(e.value)
    assert '\n' not in line
    return line


def test_a_snapshot_rewritten_unchanged_loads(load, written):
    trainer = load()
    assert trainer.updater.iteration == 10
    assert trainer.get_extension('Snapshot').written == [SNAPSHOT]
    assert len(trainer.get_extension('LogReport').log) == 1


def permutation(written, change):
    order = written[ITERATOR + 'order'].copy()
    change(order)
    return order


def tampered_cases():
    def duplicate(order):
        order[1] = order[0]

    def out_of_range(order):
        order[0] = 10 ** 6

    def negative(order):
        order[0] = -1
    deep = '[' * 5000 + ']' * 5000
    return [
        # (member, value or function of the arrays, what it must be)
        ('updater/iteration', -1, 'an integer in [0, 2**62)'),
        # Counting on from here would leave int64, and NumPy would save the
        # count as a pickled object.
        ('updater/iteration', numpy.uint64(2 ** 64 - 1),
         'an integer in [0, 2**62)'),
        (RULE + 't', numpy.int64(2 ** 62), 'an integer in [0, 2**62)'),
        (ITERATOR + 'order', lambda w: permutation(w, duplicate),
         'a permutation of range(500)'),
        (ITERATOR + 'order', lambda w: permutation(w, out_of_range),
         'a permutation of range(500)'),
        (ITERATOR + 'order', lambda w: permutation(w, negative),
         'a permutation of range(500)'),
        (ITERATOR + 'current_position', -1, 'a position in [0, 500)'),
        (ITERATOR + 'current_position', 500, 'a position in [0, 500)'),
        (ITERATOR + 'epoch', -2, 'an integer in [0, 2**62)'),
        (ITERATOR + 'previous_epoch_detail', numpy.nan, 'a finite number'),
        (OPTIMIZER + 't', -1, 'an integer in [0, 2**62)'),
        (OPTIMIZER + 'epoch', -1, 'an integer in [0, 2**62)'),
        (RULE + 't', -7, 'an integer in [0, 2**62)'),
        (RULE + 'm', numpy.zeros(3, numpy.float32),
         'an array of shape (24, 784) and float32'),
        (RULE + 'v', numpy.zeros((24, 784)),
         'an array of shape (24, 784) and float32'),
        ('extensions/RandomState/keys', numpy.zeros(623, numpy.uint32),
         'an MT19937 key (uint32 of shape (624,))'),
        ('extensions/RandomState/keys', numpy.zeros(624),
         'an MT19937 key (uint32 of shape (624,))'),
        ('extensions/RandomState/pos', 625, 'a position from 0 to 624'),
        ('extensions/RandomState/pos', -1, 'a position from 0 to 624'),
        ('extensions/RandomState/has_gauss', 2, '0 or 1'),
        ('extensions/RandomState/cached_gaussian', numpy.inf,
         'a finite number'),
        ('extensions/RandomState/gpu_seed', 2 ** 40,
         'a seed from -1 (none) to 2**31 - 1'),
        ('extensions/LogReport/_log', '{}', 'a list of objects of numbers'),
        ('extensions/LogReport/_log', '[1, 2]',
         'a list of objects of numbers'),
        ('extensions/LogReport/_log', '[{"epoch": "one"}]',
         'a list of objects of numbers'),
        ('extensions/LogReport/_log', '[{"epoch": true}]',
         'a list of objects of numbers'),
        ('extensions/LogReport/_log', deep, None),
        ('extensions/LogReport/_log', 'not JSON', None),
        # Beyond any float: PrintReport would fail on it.
        ('extensions/LogReport/_log',
         '[{"epoch": 1, "main/loss": 1' + '0' * 400 + '}]', None),
        ('extensions/LogReport/_log', numpy.arange(3), 'a string'),
        ('extensions/LogReport/_summary/_names', deep, None),
        ('extensions/LogReport/_summary/_names', '[1]', 'a list of names'),
        ('extensions/BestModel/best', numpy.nan, 'an accuracy in [0, 1]'),
        ('extensions/BestModel/best', 1.5, 'an accuracy in [0, 1]'),
        ('extensions/ExponentialShift/_t', -1, 'an integer in [0, 2**62)'),
        ('extensions/ExponentialShift/_last_value', -3.0,
         'a finite positive number'),
        ('extensions/ExponentialShift/_last_value', numpy.nan,
         'a finite positive number'),
        ('extensions/ExponentialShift/_last_value', 'fast',
         'a finite positive number'),
        ('extensions/Snapshot/written', '["../victim/model.npz"]',
         'a list of at most 64 snapshot names (snapshot_iter_N)'),
        ('extensions/Snapshot/written', '"snapshot_iter_10"',
         'a list of at most 64 snapshot names (snapshot_iter_N)'),
        ('stop_trigger/previous_iteration', -2, 'an iteration, or -1'),
        ('extension_triggers/LogReport/previous_epoch_detail', numpy.nan,
         'a number of epochs, or -1'),
        ('extensions/LogReport/_trigger/previous_iteration', -9,
         'an iteration, or -1'),
        ('_snapshot_elapsed_time', -5.0, 'a finite number of seconds'),
        ('_snapshot_elapsed_time', numpy.inf, 'a finite number of seconds'),
        (snapshot.PROCESSES_KEY, 0, 'a number of processes'),
        (snapshot.PROCESSES_KEY, 'two', 'a number of processes'),
    ]


@pytest.mark.parametrize('key,value,wanted', tampered_cases())
def test_a_tampered_value_is_refused_in_one_line(load, written, tmp_path,
                                                 key, value, wanted):
    if callable(value):
        value = value(written)
    line = refused(load, **{key: value})
    path = str(tmp_path / SNAPSHOT)
    assert line.startswith('cannot resume from {}: it was damaged or '
                           'altered ({} '.format(path, key))
    assert line.endswith('); give a snapshot_iter_* file as a run wrote '
                         'it.')
    if wanted:
        assert '{} is not {})'.format(key, wanted) in line


@pytest.mark.skipif(not training.extensions.PlotReport.available(),
                    reason='needs matplotlib')
@pytest.mark.parametrize('value', [
    '{}', '[]', '{"main/loss": [[1, 2, 3]]}', '{"main/loss": 3}',
    '{"main/loss": [[1, "x"]], "validation/main/loss": [], '
    '"test/main/loss": []}'])
def test_tampered_plot_data_is_refused(load, tmp_path, value):
    key = 'extensions/PlotReport/_plot_loss.png'
    line = refused(load, **{key: value})
    assert line.startswith('cannot resume from {}: it was damaged or '
                           'altered ({} is not an object of lists of [x, y] '
                           'pairs for main/loss, '.format(
                               str(tmp_path / SNAPSHOT), key))


@pytest.mark.parametrize('key,value', [
    ('updater/iteration', 2.5),             # not an integer
    (ITERATOR + 'order', numpy.arange(3)),  # not the data set's length
    ('updater/model:main/predictor/l1/W', numpy.zeros(3)),
    ('updater/iteration', None),            # missing
    # statistics of an epoch in progress, without their sums
    ('extensions/LogReport/_summary/_names', '["main/loss"]'),
])
def test_a_snapshot_of_another_shape_is_refused_in_one_line(
        load, tmp_path, key, value):
    assert refused(load, **{key: value}).startswith(
        'cannot resume from {}: it is not a snapshot of this network ('
        .format(str(tmp_path / SNAPSHOT)))


def test_the_statistics_of_an_epoch_in_progress_are_checked(load, tmp_path):
    sums = 'extensions/LogReport/_summary/_summaries/0/'
    changes = {'extensions/LogReport/_summary/_names': '["main/loss"]',
               sums + '_x': 1.5, sums + '_x2': 3.0, sums + '_n': 2}
    assert load(**changes).updater.iteration == 10
    for member, value in (('_x', numpy.nan), ('_n', 'two'),
                          ('_x2', [1.0, 2.0])):
        line = refused(load, **dict(changes, **{sums + member: value}))
        assert line.startswith('cannot resume from {}: it was damaged or '
                               'altered ({} is not a finite number)'.format(
                                   str(tmp_path / SNAPSHOT), sums + member))
