"""Snapshots from others, resumed as a user would: train_mnist.py --resume
from a snapshot whose values were rewritten (pickle-free), copied away
from its run's directory, given other flags or another data set, or kept
beside later snapshots. Each is refused in one line, and no file outside
the run's own directory (nor a later snapshot in it) is touched. (Each
tampered value, in process: tests/unit/training/test_snapshot.py and
test_run_description.py.)"""
import os
import shutil

import numpy
import pytest

import helpers
from helpers import assert_one_line_error
from quantized_net.training import result_dir

# 600 training images in batches of 50: 12 iterations an epoch.
FAST = ['--unit', 24, '--layers', 2, '--batchsize', 50, '--noplot']
FIRST = result_dir.snapshot_name(12)


def train(data, out, *flags):
    return helpers.run_script('train_mnist.py', '--dataset-dir', data,
                              '--out', out, *FAST, *flags)


def train_ok(data, out, *flags):
    result = train(data, out, *flags)
    assert result.returncode == 0, result.stderr
    return result


def contents(directory):
    """Every file under ``directory``, by path, with its bytes."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                found[path] = f.read()
    return found


@pytest.fixture(scope='module')
def data(tiny_data):
    return tiny_data


@pytest.fixture(scope='module')
def seed5(data, tmp_path_factory):
    """A run of one epoch with seed 5; its directory."""
    out = str(tmp_path_factory.mktemp('seed5') / 'run')
    train_ok(data, out, '--epoch', 1, '--seed', 5)
    return out


def rewritten(snapshot, path, **changes):
    """``snapshot`` with ``changes`` (member: value) written to ``path``,
    an archive of plain arrays as a run writes, but for those values."""
    with numpy.load(snapshot, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update((key, numpy.asarray(value))
                  for key, value in changes.items())
    with open(path, 'wb') as f:
        numpy.savez(f, **arrays)
    return path


def test_the_list_of_written_snapshots_never_names_another_file(
        data, seed5, tmp_path):
    # What a snapshot lists as written earlier is never a path: naming
    # files outside the run's directory refuses the snapshot.
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'model.npz').write_bytes(b'a model of another run')
    precious = tmp_path / 'precious.txt'
    precious.write_bytes(b'precious')
    before = contents(str(tmp_path))
    for written in ([str(precious), '../victim/model.npz'],
                    ['../victim/model.npz'], str(precious)):
        evil = tmp_path / 'evil'
        evil.mkdir()
        snapshot = rewritten(
            os.path.join(seed5, FIRST), str(evil / FIRST),
            **{'extensions/Snapshot/written': repr(written).replace(
                "'", '"')})
        result = train(data, str(tmp_path / 'out'), '--epoch', 2,
                       '--resume', snapshot)
        assert_one_line_error(
            result, 'cannot resume from {}: it was damaged or altered '
            '(extensions/Snapshot/written is not a list of at most 64 '
            'snapshot names (snapshot_iter_N)); give a snapshot_iter_* file '
            'as a run wrote it.'.format(snapshot))
        shutil.rmtree(str(evil))
        # Refused before --out was made; nothing else changed.
        assert not (tmp_path / 'out').exists()
        assert contents(str(tmp_path)) == before


def test_a_copied_snapshot_is_checked_against_its_own_record(
        data, seed5, tmp_path):
    alone = tmp_path / 'alone'
    alone.mkdir()
    snapshot = str(alone / FIRST)
    shutil.copy(os.path.join(seed5, FIRST), snapshot)
    out = str(tmp_path / 'out')
    for flags, fragment in (
            (['--batchsize', 30], 'batchsize 50, not 30'),
            (['--preset', 'float'], 'grad_quant'),
            (['--lr', '0.5'], 'lr 0.001, not 0.5'),
            (['--weight-quant', 'sign'], "weight_quant 'seed', not 'sign'")):
        assert_one_line_error(
            train(data, out, '--epoch', 2, '--resume', snapshot, *flags),
            'cannot resume from {}: its run was trained with other '
            'value'.format(snapshot), fragment)
    assert_one_line_error(
        train(data, out, '--epoch', 2, '--resume', snapshot, '--seed', 6),
        'cannot resume from {}: --seed 6 was given, but its run was trained '
        'with seed 5; leave --seed out, or start a new run.'.format(
            snapshot))
    # Another data set of the same size and layout.
    other = str(tmp_path / 'other_data')
    helpers.write_idx(other, 'train', *helpers.synthetic_digits(600, 3))
    helpers.write_idx(other, 'test', *helpers.synthetic_digits(200, 2))
    result = helpers.run_script(
        'train_mnist.py', '--dataset-dir', other, '--out', out, *FAST,
        '--epoch', 2, '--resume', snapshot)
    assert_one_line_error(
        result, 'cannot resume from {}: its run was trained on other data '
        'than --dataset-dir {} holds; give the data set it was trained on, '
        'or start a new run.'.format(snapshot, other))
    assert not os.path.exists(out)
    # With its own flags and data, it continues its run: seed 5.
    train_ok(data, out, '--epoch', 2, '--resume', snapshot)
    assert result_dir.read_args(out)['seed'] == 5
    assert [entry['epoch'] for entry in result_dir.read_log(out)] == [1, 2]


def test_an_older_snapshot_is_not_resumed_over_later_ones(data, tmp_path):
    out = str(tmp_path / 'run')
    train_ok(data, out, '--epoch', 1, '--seed', 5)
    kept = str(tmp_path / FIRST)
    shutil.copy(os.path.join(out, FIRST), kept)
    train_ok(data, out, '--epoch', 2, '--resume', os.path.join(out, FIRST))
    later = result_dir.snapshot_name(24)
    assert [name for _, name in result_dir.snapshots(out)] == [later]
    shutil.copy(kept, os.path.join(out, FIRST))
    before = contents(out)
    result = train(data, out, '--epoch', 3, '--resume',
                   os.path.join(out, FIRST))
    assert_one_line_error(
        result, '{} holds a later snapshot than {} ({}), which continuing '
        'from it here would overwrite; resume from {}, or resume into '
        'another --out.'.format(out, os.path.join(out, FIRST), later,
                                os.path.join(out, later)))
    assert contents(out) == before
    # Into another directory, it resumes.
    train_ok(data, str(tmp_path / 'again'), '--epoch', 3, '--resume',
             os.path.join(out, FIRST))
