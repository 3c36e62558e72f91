"""export.py as a user runs it."""
import os

import helpers
from helpers import assert_one_line_error
from quantized_net.packed import format as packed_format
from quantized_net.training import presets
from quantized_net.training import claim


def run(*args):
    return helpers.run_script('export.py', *args)


def test_script_writes_the_packed_file(tmp_path):
    result_dir = helpers.write_result(
        str(tmp_path / 'result'), *helpers.binarized_model(units=64))
    result = run(result_dir)
    assert result.returncode == 0, result.stderr
    path = os.path.join(result_dir, 'model.packed.npz')
    assert 'wrote {} ('.format(path) in result.stdout
    assert 'layers 784 - 64 - 64 - 10' in result.stdout
    # 784 inputs pad to 832 bits: 13 words a row, not 12.25.
    packed = 8 * (64 * 13 + 64 * 1 + 10 * 1)
    floats = 4 * (784 * 64 + 64 * 64 + 64 * 10)
    assert 'weights: {} bytes packed, {} bytes as float32 ({:.1f}x ' \
        'smaller)'.format(packed, floats, floats / packed) in result.stdout
    assert packed_format.load(path).sizes == [784, 64, 64, 10]


def test_script_errors_are_one_line(tmp_path):
    model, config = helpers.binarized_model(units=64)
    seed_config = dict(presets.PRESETS['seed'], preset='seed', unit=64)
    seed_dir = helpers.write_result(
        str(tmp_path / 'seed'), presets.build_classifier(seed_config),
        seed_config)
    assert_one_line_error(run(seed_dir),
                          'export.py: error: only a binarized')
    bnn_dir = helpers.write_result(str(tmp_path / 'bnn'), model, config)
    assert_one_line_error(
        run(bnn_dir, '-o', str(tmp_path / 'no' / 'such' / 'x.npz')),
        'does not exist')
    assert_one_line_error(run(str(tmp_path / 'nothing')),
                          'nothing is not a directory (it does not exist)')
    assert_one_line_error(run(str(tmp_path / 'bnn' / 'args.json')),
                          'args.json is not a directory (it is a regular '
                          'file);')
    # Not a directory, nor a file that is not a packed network.
    assert_one_line_error(run(bnn_dir, '-o', str(tmp_path)),
                          'is a directory; give a file name')
    other = tmp_path / 'notes.txt'
    other.write_text('mine')
    assert_one_line_error(run(bnn_dir, '-o', str(other)),
                          'notes.txt exists (it is not a packed network); '
                          'it was not overwritten; give --replace to '
                          'replace it, or another -o.')
    assert other.read_text() == 'mine'
    # Not into a directory that another process holds.
    with claim.DirectoryLock(bnn_dir):
        assert_one_line_error(run(bnn_dir), 'is in use by another run '
                              '(process {})'.format(os.getpid()))
    assert not os.path.exists(os.path.join(bnn_dir, 'model.packed.npz'))
