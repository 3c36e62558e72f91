"""benchmarks/training_step.py: each configuration's step trains the
model it names, the floor is the products of one iteration, and the
steps are timed side by side."""
import numpy
import pytest

import helpers
from quantized_net.benchmarks import training_step
from quantized_net.quantization import kernels
from quantized_net.training import presets

import chainer  # after quantized_net, which lets it import under NumPy 2
from chainer.optimizers import adam

UNIT, BATCH = 16, 8
CPU = chainer.get_device('@numpy')


def batch():
    rng = numpy.random.RandomState(3)
    return (rng.rand(BATCH, presets.N_IN).astype(numpy.float32),
            rng.randint(0, presets.N_OUT, BATCH).astype(numpy.int32))


def params(model):
    return {name: param.array.copy() for name, param in
            model.namedparams()}


def test_the_configurations_are_the_presets_at_one_size():
    configs = dict(training_step.configurations(UNIT))
    assert list(configs) == ['float', 'seed', 'bnn-style']
    for config in configs.values():
        presets.check_config(config)
        assert (config['unit'], config['layers']) == (UNIT, 2)
    assert configs['seed'] == dict(presets.PRESETS['seed'], preset='seed',
                                   unit=UNIT, layers=2)
    assert configs['float'] == dict(presets.PRESETS['float'],
                                    preset='float', unit=UNIT, layers=2)
    assert configs['bnn-style'] == dict(
        configs['float'], weight_quant='sign', act_quant='sign',
        activation='htanh')


@pytest.mark.parametrize('name', ['float', 'seed', 'bnn-style'])
def test_a_step_is_an_iteration_of_the_configurations_model(name):
    config = dict(training_step.configurations(UNIT))[name]
    x, t = batch()
    trainer = training_step.Trainer(config, x, t, CPU)
    numpy.random.seed(0)
    model = presets.build_classifier(config)
    optimizer = presets.build_optimizer(model, config)
    assert params(trainer.model).keys() == params(model).keys()
    before = params(model)
    helpers.train_steps(model, optimizer, x, t, 2)
    trainer.step()
    trainer.step()
    ours, theirs = params(trainer.model), params(model)
    assert any((theirs[k] != before[k]).any() for k in before)
    for key in ours:
        numpy.testing.assert_array_equal(ours[key], theirs[key], key)


def test_a_step_runs_with_the_trainers_kernels():
    config = dict(training_step.configurations(UNIT))['seed']
    trainer = training_step.Trainer(config, *batch(), device=CPU,
                                    kernels='reference')
    seen = []
    lossfun = trainer.model.lossfun

    def spy(y, t):
        seen.append(kernels.cpu_kernels())
        return lossfun(y, t)
    trainer.model.lossfun = spy
    before = kernels.cpu_kernels()
    trainer.step()
    assert seen == ['reference'] and kernels.cpu_kernels() == before
    # By default, the kernels in use when it was built.
    assert training_step.Trainer(config, *batch(), device=CPU).kernels == \
        before


def test_chainers_adam_trains_as_the_fused_one():
    config = dict(training_step.configurations(UNIT))['float']
    fused = training_step.Trainer(config, *batch(), device=CPU)
    chainers = training_step.Trainer(config, *batch(), device=CPU,
                                     fused=False)
    assert {type(p.update_rule) for p in chainers.model.params()} == {
        adam.AdamRule}
    assert adam.AdamRule not in {type(p.update_rule)
                                 for p in fused.model.params()}
    for trainer in (fused, chainers):
        trainer.step()
        trainer.step()
    ours, theirs = params(fused.model), params(chainers.model)
    for key in ours:
        numpy.testing.assert_array_equal(ours[key], theirs[key], key)


def test_the_floor_is_the_products_of_one_iteration():
    floor = training_step.Floor(UNIT, BATCH, numpy)
    shapes = [(a.shape, b.shape) for a, b in floor.products]
    # 784-16-16-10: each layer's output and weight gradient, and the
    # input gradient of the two layers above the first.
    assert shapes == [
        ((BATCH, 784), (784, UNIT)), ((UNIT, BATCH), (BATCH, 784)),
        ((BATCH, UNIT), (UNIT, UNIT)), ((UNIT, BATCH), (BATCH, UNIT)),
        ((BATCH, UNIT), (UNIT, UNIT)),
        ((BATCH, UNIT), (UNIT, 10)), ((10, BATCH), (BATCH, UNIT)),
        ((BATCH, 10), (10, UNIT))]
    floor.step()


@pytest.mark.parametrize('reference,names', [
    (False, ['float', 'seed', 'bnn-style', 'floor']),
    (True, ['float', 'seed', 'bnn-style', 'seed, numpy kernels',
            'seed, reference kernels', "float, Chainer's Adam", 'floor'])])
def test_the_runners_in_table_order(reference, names):
    runners = training_step.runners(UNIT, BATCH, CPU, reference)
    assert [name for name, _ in runners] == names
    runner = dict(runners)
    assert isinstance(runner['floor'], training_step.Floor)
    if reference:
        assert runner['seed, numpy kernels'].kernels == 'numpy'
        assert runner['seed, reference kernels'].kernels == 'reference'
    for name, runner in runners:
        runner.step()


class Step(object):
    """A runner whose step takes ``seconds`` on the fake clock."""

    def __init__(self, clock, seconds):
        self.clock, self.seconds, self.steps = clock, seconds, 0

    def step(self):
        self.steps += 1
        self.clock.advance(self.seconds)


def test_time_steps_gives_each_median_and_its_ratios(fake_clock):
    runners = [(name, Step(fake_clock, seconds)) for name, seconds in
               (('float', 0.02), ('seed', 0.03), ('floor', 0.008))]
    synchronized = []
    rows = training_step.time_steps(runners, rounds=3, warmup=2,
                                    synchronize=lambda: synchronized.append(
                                        fake_clock.now))
    assert rows == [('float', pytest.approx(0.02), 1.0, pytest.approx(2.5)),
                    ('seed', pytest.approx(0.03), pytest.approx(1.5),
                     pytest.approx(3.75)),
                    ('floor', pytest.approx(0.008), pytest.approx(0.4),
                     1.0)]
    assert [runner.steps for _, runner in runners] == [5, 5, 5]
    assert len(synchronized) == 2 * 3 * 3  # around every timed step
