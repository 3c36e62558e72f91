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


@pytest.mark.parametrize('name', ['float', 'seed', 'bnn-style'])
def test_chainers_adam_and_clipping_hook_train_as_the_fused_pass(name):
    config = dict(training_step.configurations(UNIT))[name]
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
    config = dict(training_step.configurations(UNIT))['float']
    floor = training_step.Floor(presets.network_layers(config), BATCH, numpy)
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


def test_a_convnets_floor_is_its_im2col_products():
    # 64C3-64C3-P2-128C3-128C3-P2-512FC an eighth as wide: 8-8-P2-16-16-P2
    # -64, on 28 x 28 images, then the classifier.
    config = dict(training_step.convnet_configurations(0.125))['float']
    floor = training_step.Floor(presets.network_layers(config), 2, numpy)
    big, small = 2 * 28 * 28, 2 * 14 * 14
    assert [(a.shape, b.shape) for a, b in floor.products] == [
        ((big, 9), (9, 8)), ((8, big), (big, 9)),
        ((big, 72), (72, 8)), ((8, big), (big, 72)), ((big, 8), (8, 72)),
        ((small, 72), (72, 16)), ((16, small), (small, 72)),
        ((small, 16), (16, 72)),
        ((small, 144), (144, 16)), ((16, small), (small, 144)),
        ((small, 16), (16, 144)),
        ((2, 784), (784, 64)), ((64, 2), (2, 784)), ((2, 64), (64, 784)),
        ((2, 64), (64, 10)), ((10, 2), (2, 64)), ((2, 10), (10, 64))]


def test_the_convnet_configurations_are_bnn_conv_with_its_quantizers():
    configs = training_step.convnet_configurations(0.25)
    assert [name for name, _ in configs] == ['float', 'seed-style',
                                             'binarized']
    configs = dict(configs)
    preset = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  width=0.25)
    assert configs['binarized'] == preset
    for name, spec in (('float', 'none'), ('seed-style', 'seed')):
        assert configs[name] == dict(preset, input_quant=spec,
                                     weight_quant=spec, act_quant=spec,
                                     grad_quant=spec)
    for config in configs.values():
        presets.check_config(config)


@pytest.mark.parametrize('reference,names', [
    (False, ['float', 'seed', 'bnn-style', 'floor']),
    (True, ['float', 'seed', 'bnn-style', 'seed, numpy kernels',
            'seed, reference kernels', "float, Chainer's Adam", 'floor'])])
def test_the_runners_in_table_order(reference, names):
    runners = training_step.runners(training_step.configurations(UNIT),
                                    BATCH, CPU, reference)
    assert [name for name, _ in runners] == names
    runner = dict(runners)
    assert isinstance(runner['floor'], training_step.Floor)
    if reference:
        assert runner['seed, numpy kernels'].kernels == 'numpy'
        assert runner['seed, reference kernels'].kernels == 'reference'
    for name, runner in runners:
        runner.step()


def test_a_convnets_runners_take_images():
    runners = training_step.runners(
        training_step.convnet_configurations(0.125), 2, CPU)
    assert [name for name, _ in runners] == [
        'float', 'seed-style', 'binarized', 'floor']
    trainer = dict(runners)['binarized']
    assert trainer.x.shape == (2, 1, 28, 28)
    before = params(trainer.model)
    trainer.step()
    after = params(trainer.model)
    assert any((after[k] != before[k]).any() for k in before)


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
                                        fake_clock.now), calls=2)
    one = (1.0, 1.0, 1.0)
    assert rows == [
        ('float', pytest.approx(0.02), one, pytest.approx((2.5,) * 3)),
        ('seed', pytest.approx(0.03), pytest.approx((1.5,) * 3),
         pytest.approx((3.75,) * 3)),
        ('floor', pytest.approx(0.008), pytest.approx((0.4,) * 3), one)]
    assert [runner.steps for _, runner in runners] == [8, 8, 8]
    assert len(synchronized) == 2 * 3 * 3 * 2  # around every timed step


class Rounds(object):
    """A runner whose steps take each of ``seconds`` in turn."""

    def __init__(self, clock, *seconds):
        self.clock, self.seconds = clock, list(seconds)

    def step(self):
        self.clock.advance(self.seconds.pop(0))


def test_a_ratio_is_taken_round_by_round(fake_clock):
    # The machine slows down over the rounds for both alike: the ratio of
    # each round is 1.5; the quartiles of seed's ratio to the floor
    # spread as the floor's own time does not follow.
    runners = [('float', Rounds(fake_clock, 0.01, 0.02, 0.04, 0.08)),
               ('seed', Rounds(fake_clock, 0.015, 0.03, 0.06, 0.12)),
               ('floor', Rounds(fake_clock, 0.01, 0.01, 0.01, 0.01))]
    rows = training_step.time_steps(runners, rounds=4, warmup=0)
    _, seconds, x_float, x_floor = rows[1]
    assert seconds == pytest.approx(0.045)
    assert x_float == pytest.approx((1.5, 1.5, 1.5))
    assert x_floor == pytest.approx((4.5, 2.625, 7.5))
