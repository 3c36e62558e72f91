import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

from weight_clip import WeightClip


def pushed_out_model(xp=numpy):
    """A model and an optimizer whose next update leaves [-1, 1]."""
    numpy.random.seed(0)
    model = chainer.Sequential(L.Linear(5, 4), L.BatchNormalization(4))
    model.to_device(chainer.get_device('@cupy:0' if xp is not numpy
                                       else '@numpy'))
    optimizer = chainer.optimizers.SGD(lr=100.0)
    optimizer.setup(model)
    optimizer.add_hook(WeightClip())
    return model, optimizer


def step(model, optimizer, xp=numpy):
    x = xp.asarray(numpy.random.RandomState(1).randn(8, 5).astype(
        numpy.float32))
    model.cleargrads()
    F.sum(model(x) * xp.arange(4, dtype=xp.float32)).backward()
    optimizer.update()


def test_clips_every_parameter_in_place_after_update():
    model, optimizer = pushed_out_model()
    arrays = {name: p.array for name, p in model.namedparams()}
    step(model, optimizer)
    for name, p in model.namedparams():
        assert p.array is arrays[name], name  # in place
        assert p.array.min() >= -1 and p.array.max() <= 1, name
    # The update did push weights out: some sit exactly on the bounds.
    W = model[0].W.array
    assert (numpy.abs(W) == 1).any()


def test_without_hook_the_same_update_leaves_the_range():
    model, optimizer = pushed_out_model()
    optimizer.remove_hook('WeightClip')
    step(model, optimizer)
    assert numpy.abs(model[0].W.array).max() > 1


def test_custom_bounds_and_values_inside_untouched():
    hook = WeightClip(-0.5, 0.25)
    param = chainer.Parameter(numpy.array([-2, -0.5, 0.1, 0.25, 3],
                                          numpy.float32))
    hook(None, param)
    numpy.testing.assert_array_equal(
        param.array, numpy.array([-0.5, -0.5, 0.1, 0.25, 0.25],
                                 numpy.float32))


def test_uninitialised_parameter_is_skipped():
    param = chainer.Parameter()
    WeightClip()(None, param)
    assert param.array is None


def test_param_names_clip_only_those_parameters():
    hook = WeightClip(param_names=('W',))
    weight = chainer.Parameter(numpy.float32([-3, 0.5, 2]), name='W')
    bias = chainer.Parameter(numpy.float32([-3, 0.5, 2]), name='b')
    hook(None, weight)
    hook(None, bias)
    assert weight.array.tolist() == [-1, 0.5, 1]
    assert bias.array.tolist() == [-3, 0.5, 2]


def test_rejects_low_above_high():
    with pytest.raises(ValueError, match='low <= high'):
        WeightClip(1.0, -1.0)


@pytest.mark.gpu
def test_gpu_clips_in_place_like_cpu():
    import cupy
    results = []
    for xp in (numpy, cupy):
        model, optimizer = pushed_out_model(xp)
        before = model[0].W.array
        step(model, optimizer, xp)
        assert model[0].W.array is before
        results.append([cupy.asnumpy(p.array) for p in model.params()])
    for cpu, gpu in zip(*results):
        # The step of lr 100 multiplies the gradients' rounding (the GPU
        # sums in another order) by 100: 1.3e-4 apart on an H200.
        numpy.testing.assert_allclose(cpu, gpu, atol=1e-3)
    # Clipped on the GPU too: in range, some exactly on a bound.
    assert max(numpy.abs(gpu).max() for gpu in results[1]) == 1
