"""processes.py: one process, the default the trainer plugs in; another
process of a run that is not the writer holds no directory."""
import os

from quantized_net.training import processes
from quantized_net.training import result_dir
from quantized_net.training import snapshot


def test_one_process_is_the_whole_run(describe_run):
    one = processes.SingleProcess()
    assert (one.size, one.rank, one.writer, one.recorded_size) == (
        1, 0, True, None)
    assert one.first(lambda: 42) == 42
    assert one.seed(7) == 7 and one.batch(100) == 100
    data, model = object(), object()
    assert one.shard(data, shuffle_seed=3) is data
    assert one.model(model) is model and one.loss(model) is model
    assert one.optimizer(model) is model and one.evaluator(model) is model
    assert type(one.snapshot()) is snapshot.Snapshot
    record = object()
    assert one.snapshot(record).record is record
    assert one.device(describe_run('--device', '@numpy')).xp.__name__ == \
        'numpy'


class Second(processes.SingleProcess):
    size, rank = 2, 1


def test_only_the_writer_holds_the_directory(tmp_path):
    out = str(tmp_path / 'out')
    with Second().claim(out):
        assert not os.path.exists(out)
    assert Second().batch(100) == 50
    with processes.SingleProcess().claim(out):
        assert os.listdir(out) == [result_dir.LOCK_FILE]
