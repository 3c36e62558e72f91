"""run_description.py: the run a command line describes, frozen, and the
run a resume trains."""
import dataclasses
import os

import pytest

from quantized_net.training import presets
from quantized_net.training import result_dir
from quantized_net.training import run_description
from quantized_net import errors


@pytest.fixture(scope='module')
def describe(describe_run):
    return describe_run


def test_the_flags_described(describe):
    run = describe('--unit', 30, '--out', 'r', '--seed', 4, '--noplot',
                   '-f', 2, '--device', '@numpy', '--dataset-dir', 'd')
    assert run.config == dict(presets.PRESETS['seed'], preset='seed',
                              unit=30)
    assert (run.seed, run.out, run.resume, run.replace, run.frequency,
            run.plot, run.dataset_dir, run.device, run.device_flag) == (
        4, 'r', None, False, 2, False, 'd', '@numpy', '--device @numpy')
    assert run.argv == ('--unit', '30', '--out', 'r', '--seed', '4',
                        '--noplot', '-f', '2', '--device', '@numpy',
                        '--dataset-dir', 'd')
    assert not run.on_gpu and describe('--gpu', 1).on_gpu
    assert describe('-d', '@cupy:0').on_gpu
    assert not describe('-d', '-1').on_gpu


def test_a_description_is_not_changed(describe):
    run = describe('--unit', 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.seed = 3
    config = run.config
    config['unit'] = 1
    assert run.config['unit'] == 30
    # The order of the keys is the order args.json records.
    assert list(run.config) == list(presets.PRESETS['seed']) + ['preset']


@pytest.fixture
def recorded(tmp_path, describe):
    """A result directory with its args.json and a (fake) snapshot."""
    out = str(tmp_path / 'run')
    os.mkdir(out)
    result_dir.write_args(out, describe('--unit', 30).config, 7, [])
    snapshot = os.path.join(out, 'snapshot_iter_40')
    with open(snapshot, 'w') as f:
        f.write('not read here')
    return snapshot


def test_a_run_without_resume_is_itself(describe):
    run = describe()
    assert run_description.resumed(run) is run


def test_a_resumed_run_keeps_its_recorded_seed(recorded, describe):
    run = describe('--unit', 30, '--resume', recorded, '--epoch', 40)
    assert run.seed is None
    resumed = run_description.resumed(run)
    assert resumed.seed == 7
    assert resumed == dataclasses.replace(run, seed=7)
    # A seed given is the seed.
    given = describe('--unit', 30, '--resume', recorded, '--seed', 2)
    assert run_description.resumed(given) is given


@pytest.mark.parametrize('where,message', [
    ('missing', 'cannot resume: snapshot {} does not exist.'),
    ('directory', 'cannot resume: {} is a directory; give one of its '
                  'snapshot_iter_* files.')])
def test_no_snapshot_to_resume_from(tmp_path, where, message, describe):
    path = str(tmp_path if where == 'directory' else tmp_path / 'none')
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--resume', path))
    assert str(e.value) == message.format(path)


def test_a_run_resumes_with_its_own_configuration(recorded, describe):
    with pytest.raises(errors.UsageError) as e:
        run_description.resumed(describe('--resume', recorded, '--unit', 31))
    assert str(e.value) == (
        "cannot resume from {}: its run was trained with other value (unit "
        "30, not 31); give the same flags, or start a new run.".format(
            recorded))
    with pytest.raises(errors.UsageError, match=r'other values \(lr 0.001, '
                       r'not 0.5, unit 30, not 31\)'):
        run_description.resumed(describe('--resume', recorded, '--unit', 31,
                                         '--lr', 0.5))


def test_a_snapshot_without_a_record_beside_it(tmp_path, describe):
    alone = str(tmp_path / 'snapshot_iter_40')
    with open(alone, 'w') as f:
        f.write('x')
    run = describe('--resume', alone, '--unit', 5)
    assert run_description.resumed(run) is run
