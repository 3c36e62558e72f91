"""benchmarks/breakdown.py: spans count exclusive of the spans inside
them, every function the configurations apply has its part, and an
instrumented step trains as a plain one and leaves the model as it was."""
import numpy
import pytest

from quantized_net.benchmarks import breakdown, training_step
from quantized_net.quantization import quantizers
from quantized_net.training import presets

import chainer  # after quantized_net, which lets it import under NumPy 2

UNIT, BATCH = 16, 8
CPU = chainer.get_device('@numpy')


@pytest.fixture
def clock(monkeypatch, fake_clock):
    monkeypatch.setattr(breakdown, 'time', fake_clock)
    return fake_clock


def trainer(name, seed=3):
    rng = numpy.random.RandomState(seed)
    config = dict(training_step.configurations(UNIT))[name]
    return training_step.Trainer(
        config, rng.rand(BATCH, presets.N_IN).astype(numpy.float32),
        rng.randint(0, presets.N_OUT, BATCH).astype(numpy.int32), CPU)


def params(model):
    return {name: param.array.copy() for name, param in model.namedparams()}


def test_a_span_counts_without_the_spans_inside_it(clock):
    timer = breakdown.PartTimer()
    with timer.span(breakdown.UPDATE):
        clock.advance(1.0)
        with timer.span(breakdown.CLIP):
            clock.advance(0.25)
            with timer.span(breakdown.QUANTIZERS):
                clock.advance(0.5)
        clock.advance(2.0)
    with timer.span(breakdown.CLIP):
        clock.advance(0.125)
    assert timer.seconds == {breakdown.UPDATE: 3.0,
                             breakdown.CLIP: 0.375,
                             breakdown.QUANTIZERS: 0.5}


def test_a_span_synchronizes_at_both_ends(clock):
    seen = []
    timer = breakdown.PartTimer(lambda: seen.append(clock.now))
    with timer.span(breakdown.LOSS):
        clock.advance(1.0)
    assert seen == [0.0, 1.0]


@pytest.mark.parametrize('name', ['float', 'seed', 'bnn-style'])
def test_every_function_of_a_step_has_its_part(name):
    seconds, others = breakdown.parts_of_step(trainer(name))
    # The bias gradients' sums are the only functions of no part.
    assert others == {'Sum'}
    assert set(seconds) <= set(breakdown.PARTS)
    assert (seconds[breakdown.QUANTIZERS] > 0) == (name != 'float')
    # Batch normalisation applies the rectifier and the hard tanh in its
    # function, and the seed preset's quantizer its rectifier: no
    # activation is a function of its own.
    assert seconds[breakdown.ACTIVATIONS] == 0
    for part in (breakdown.MATMUL, breakdown.BATCH_NORM, breakdown.LOSS,
                 breakdown.UPDATE):
        assert seconds[part] > 0, part
    # The update clips in its own pass.
    assert seconds[breakdown.CLIP] < seconds[breakdown.UPDATE]


def test_clipping_as_a_hook_is_timed_apart_from_the_update(clock,
                                                           monkeypatch):
    timed = trainer('float')

    def update():  # 2.5 s, then the hooks
        clock.advance(2.5)
        timed.optimizer.call_hooks('post')
    monkeypatch.setattr(timed, 'update', update)
    timed.optimizer.add_hook(lambda optimizer: clock.advance(0.5),
                             name='clip', timing='post')
    seconds, _ = breakdown.parts_of_step(timed)
    assert (seconds[breakdown.UPDATE], seconds[breakdown.CLIP]) == (2.5, 0.5)


def test_a_convnets_functions_have_their_parts():
    config = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  width=0.125)
    rng = numpy.random.RandomState(0)
    convnet = training_step.Trainer(
        config, rng.rand(2, 1, 28, 28).astype(numpy.float32),
        numpy.array([3, 5], numpy.int32), CPU)
    seconds, others = breakdown.parts_of_step(convnet)
    # The input's centring, the loss's scaling and the flattening before
    # the fully connected layers.
    assert others == {'Sum', 'Reshape', 'MulConstant', 'AddConstant'}
    for part in (breakdown.MATMUL, breakdown.CONVOLUTIONS,
                 breakdown.QUANTIZERS, breakdown.POOLING,
                 breakdown.BATCH_NORM):
        assert seconds[part] > 0, part
    # The hard tanh runs in batch normalisation's function.
    assert seconds[breakdown.ACTIVATIONS] == 0


def test_an_instrumented_step_is_a_step_and_restores_the_model():
    plain, timed = trainer('seed'), trainer('seed')
    links = {link: (link.input_quant, link.weight_quant)
             for link in timed.model.links() if hasattr(link, 'W')}
    plain.step()
    breakdown.parts_of_step(timed)
    ours, theirs = params(timed.model), params(plain.model)
    assert any((ours[k] != 0).any() for k in ours)
    for key in ours:
        numpy.testing.assert_array_equal(ours[key], theirs[key], key)
    for link, before in links.items():
        assert (link.input_quant, link.weight_quant) == before
    assert not chainer.get_function_hooks()


def test_a_timed_quantizer_is_its_quantizer(clock):
    timer = breakdown.PartTimer()
    seed = quantizers.parse('seed')
    timed = breakdown.TimedQuantizer(seed, timer)
    x = numpy.linspace(-2, 2, 101, dtype=numpy.float32)
    numpy.testing.assert_array_equal(timed(x), seed(x))
    numpy.testing.assert_array_equal(timed.activation(x), seed.activation(x))
    assert (timed.spec, timed.levels, timed.is_sign_at_test_time) == (
        seed.spec, seed.levels, seed.is_sign_at_test_time)
    assert set(timer.seconds) == {breakdown.QUANTIZERS}


class Trainer(object):
    """A trainer whose plain step takes ``step`` seconds and whose parts
    take ``parts`` seconds of the fake clock."""

    def __init__(self, clock, step, parts):
        self.clock, self.seconds, self.parts = clock, step, parts

    def step(self):
        self.clock.advance(self.seconds)


def test_the_graph_is_the_step_less_its_parts(clock, monkeypatch):
    def parts_of_step(trainer, synchronize):
        return dict(trainer.parts), {'Sum'}
    monkeypatch.setattr(breakdown, 'parts_of_step', parts_of_step)
    parts = {part: 0.001 * i for i, part in enumerate(breakdown.PARTS[:-1])}
    table, others = breakdown.time_parts(
        [('a', Trainer(clock, 0.1, parts))], rounds=3, warmup=1, calls=2)
    assert others == ['Sum']
    assert table['a'][breakdown.GRAPH] == pytest.approx(
        0.1 - sum(parts.values()))
    assert {part: table['a'][part] for part in parts} == parts


@pytest.mark.skipif(breakdown.numba is None, reason='numba is not installed')
def test_the_update_is_set_against_its_loads_and_stores(monkeypatch):
    float_trainer = trainer('float')
    passes = []
    kernel = breakdown.loads_and_stores
    monkeypatch.setattr(breakdown, 'loads_and_stores', lambda *group: (
        passes.append([a.copy() for a in group]), kernel(*group)))
    before = params(float_trainer.model)
    _, _, moved = breakdown.update_against_memory(float_trainer, rounds=2,
                                                  warmup=1)
    # Seven float32 arrays' worth a parameter: four loaded, three stored.
    n = sum(p.size for p in float_trainer.model.params())
    assert moved == 7 * 4 * n
    # Each pass: m, v and the parameter plus the gradient, on copies that
    # the update never sees.
    count = len(list(float_trainer.model.params()))
    assert len(passes) == 3 * count
    param, grad, m, v = passes[0]
    assert passes[count][2].tolist() == (m + grad).tolist()
    assert passes[count][3].tolist() == (v + grad).tolist()
    assert passes[count][0].tolist() == (param + grad).tolist()
    assert passes[count][1].tolist() == grad.tolist()
    for name, array in params(float_trainer.model).items():
        assert not numpy.array_equal(array, before[name]), name


def test_no_update_to_set_against_memory_without_numba(monkeypatch):
    monkeypatch.setattr(breakdown, 'numba', None)
    assert breakdown.update_against_memory(trainer('float'), 1, 0) is None
