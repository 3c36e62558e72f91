import numpy
import pytest

import chainer
import chainer.functions as F
import chainer.links as L

from helpers import train_steps
import net
import qst
from quantized_net.training import batch_normalization
from weight_clip import WeightClip


def batch(n=32, seed=0):
    rng = numpy.random.RandomState(seed)
    return (rng.rand(n, 784).astype(numpy.float32),
            rng.randint(0, 10, n).astype(numpy.int32))


def test_structure():
    model = net.MnistMLP(784, 50, 10)
    shapes = {name: p.shape for name, p in model.namedparams()}
    assert shapes['/l1/W'] == (50, 784)
    assert shapes['/l2/W'] == (50, 50)
    assert shapes['/l3/W'] == (10, 50)
    assert shapes['/b3/gamma'] == (10,)  # the logits are batch-normalised
    layers = model.layers()
    assert [(linear.name, bn.name) for linear, bn in layers] == [
        ('l1', 'b1'), ('l2', 'b2'), ('l3', 'b3')]
    assert model.linear_layers() == [linear for linear, _ in layers]
    # The input quantizer applies to the first layer only.
    assert [linear.input_quant.spec for linear, _ in layers] == [
        'seed', 'none', 'none']


def test_logits_are_batch_normalised_in_training():
    numpy.random.seed(0)
    model = net.MnistMLP(784, 50, 10)
    x, _ = batch()
    y = model(x).array
    assert y.shape == (32, 10)
    numpy.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-5)
    # Unit variance but for BN's eps (2e-5), which is not small next to the
    # variance of products of activations scaled by 1/64.
    assert ((0.5 < y.std(axis=0)) & (y.std(axis=0) <= 1)).all()


def test_test_mode_uses_running_statistics():
    numpy.random.seed(0)
    model = net.MnistMLP(784, 50, 10)
    x, _ = batch()
    with chainer.using_config('train', False):
        first = model(x[:1]).array
        again = model(x[:2]).array[:1]
    numpy.testing.assert_array_equal(first, again)  # no batch dependence


def test_one_step_lowers_the_loss_on_that_batch():
    numpy.random.seed(0)
    model = L.Classifier(net.MnistMLP(784, 50, 10))
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    optimizer.add_hook(WeightClip())
    losses = train_steps(model, optimizer, *batch(), steps=5)
    assert losses[-1] < losses[0]
    for p in model.params():
        assert numpy.isfinite(p.array).all()


def three_steps_on(xp):
    """Losses, test-mode outputs and parameters after 3 updates on ``xp``."""
    numpy.random.seed(0)
    model = L.Classifier(net.MnistMLP(784, 100, 10))
    model.to_device(chainer.get_device(
        '@numpy' if xp is numpy else '@cupy:0'))
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    optimizer.add_hook(WeightClip())
    x, t = batch(100)
    losses = train_steps(model, optimizer, xp.asarray(x), xp.asarray(t),
                         steps=3)
    with chainer.using_config('train', False):
        y = chainer.backends.cuda.to_cpu(model.predictor(xp.asarray(x)).array)
    return losses, y, {n: chainer.backends.cuda.to_cpu(p.array)
                       for n, p in model.namedparams()}


@pytest.mark.gpu
def test_gpu_training_steps_equal_cpu():
    # The GPU sums the products in another order than the CPU's BLAS, so
    # the two agree to rounding from the same parameters (the first loss),
    # and Adam then widens the gap: an element whose gradient is at the
    # level of rounding moves by alpha either way, as sign(g) decides.
    # On an H200 against OpenBLAS: first loss 1.9e-7 apart (relative),
    # third 1.1e-4; weights at most 7.3e-4 apart after 3 steps of alpha
    # 1e-3; outputs 2.1e-3.
    import cupy
    cpu = three_steps_on(numpy)
    gpu = three_steps_on(cupy)
    numpy.testing.assert_allclose(cpu[0][0], gpu[0][0], rtol=1e-6)
    numpy.testing.assert_allclose(cpu[0], gpu[0], rtol=1e-3)
    numpy.testing.assert_allclose(cpu[1], gpu[1], atol=1e-2)
    alpha = chainer.optimizers.Adam().alpha
    for name in cpu[2]:
        # The biases before batch normalisation have a true gradient of 0:
        # all they take is rounding, made into steps of alpha.
        if name.endswith('/b') and '/l' in name:
            continue
        numpy.testing.assert_allclose(cpu[2][name], gpu[2][name],
                                      atol=2 * alpha, err_msg=name)


@pytest.mark.parametrize('text,width,layers', [
    ('128C3-P2-1024FC', 1, [('conv', 128, 3), ('pool', 2), ('fc', 1024)]),
    ('128C3-P2-1024FC', 0.25, [('conv', 32, 3), ('pool', 2), ('fc', 256)]),
    ('3C5-1FC', 0.1, [('conv', 1, 5), ('fc', 1)]),  # at least one
])
def test_an_architecture_is_read_as_the_paper_writes_it(text, width, layers):
    assert net.parse_architecture(text, width) == layers


@pytest.mark.parametrize('text,message', [
    ('P2-8C3', "'P2-8C3' does not start with a layer of weights"),
    ('8C3-16FC-8C3', "'8C3-16FC-8C3' has a convolution or pooling after a "
     "fully connected layer"),
    ('8C3-x', "'x' is not a layer (NCk, Pk or NFC)"),
    ('0C3', "'0C3' is not a layer (NCk, Pk or NFC)"),
    ('8C', "'8C' is not a layer (NCk, Pk or NFC)")])
def test_what_is_no_architecture(text, message):
    with pytest.raises(ValueError) as e:
        net.parse_architecture(text)
    assert str(e.value) == message


def test_the_convnet_of_the_paper_for_cifar10():
    layers = net.conv_net_layers((3, 32, 32), net.ARCHITECTURES['cifar10'],
                                 10)
    assert [(layer.weights, layer.pool) for layer in layers] == [
        ((128, 3, 3, 3), 0), ((128, 128, 3, 3), 2), ((256, 128, 3, 3), 0),
        ((256, 256, 3, 3), 2), ((512, 256, 3, 3), 0), ((512, 512, 3, 3), 2),
        ((1024, 512 * 4 * 4), 0), ((1024, 1024), 0), ((10, 1024), 0)]
    assert [(layer.computed, layer.output) for layer in layers[1:3]] == [
        ((128, 32, 32), (128, 16, 16)), ((256, 16, 16), (256, 16, 16))]
    with pytest.raises(ValueError) as e:
        net.conv_net_layers((1, 4, 4), '8C3-P2-8C3-P2-8C3-P2', 10)
    assert str(e.value) == ("'8C3-P2-8C3-P2-8C3-P2' pools a 4x4 image down "
                            "to nothing")


def test_a_convnet_convolves_pools_normalises_then_binarizes():
    numpy.random.seed(0)
    model = net.ConvNet((1, 8, 8), '4C3-P2-6FC', 3)
    assert [(link.W.shape, bn.avg_mean.shape, pool)
            for link, bn, pool in model.layers()] == [
        ((4, 1, 3, 3), (4,), 2), ((6, 64), (6,), 0), ((3, 6), (3,), 0)]
    assert model.weight_layers() == [link for link, _, _ in model.layers()]
    x = numpy.random.rand(5, 64).astype(numpy.float32)  # flat, as MNIST's
    with chainer.using_config('train', False):
        y = model(x).array
    # The same by hand: sign convolution of the centred input, 2 x 2
    # max-pooling, batch normalisation with the running statistics (0, 1
    # at the start), sign; then the sign layer and the normalised logits.
    l1, b1, _ = model.layers()[0]
    l2, b2, _ = model.layers()[1]
    l3, b3, _ = model.layers()[2]
    sign = lambda a: numpy.where(a >= 0, 1, -1).astype(numpy.float32)  # noqa
    h = F.convolution_2d(x.reshape(5, 1, 8, 8) * 2 - 1, sign(l1.W.array),
                         l1.b.array, pad=1).array
    h = F.max_pooling_2d(h, 2, stride=2).array
    h = sign(numpy.clip(h / numpy.sqrt(1 + b1.eps), -1, 1))
    h = h.reshape(5, -1).dot(sign(l2.W.array).T) + l2.b.array
    h = sign(numpy.clip(h / numpy.sqrt(1 + b2.eps), -1, 1))
    logits = (h.dot(sign(l3.W.array).T) + l3.b.array) / numpy.sqrt(
        1 + b3.eps)
    numpy.testing.assert_allclose(y, logits, rtol=1e-5, atol=1e-5)


def test_a_convnet_learns_a_batch():
    numpy.random.seed(1)
    model = L.Classifier(net.ConvNet((1, 28, 28), '8C3-P2-16FC', 10))
    x, t = batch(16)
    optimizer = chainer.optimizers.Adam(0.01)
    optimizer.setup(model)
    losses = train_steps(model, optimizer, x, t, 30)
    assert losses[-1] < losses[0] / 2


@pytest.mark.parametrize('in_shape,text', [
    ((1, 28, 28), '8C3-P2-8C3-P2-8C3-P2-16FC'),   # 28, 14, 7, 3: odd
    ((1, 9, 9), '4C2-P2-6FC'),                   # an even kernel: 10 then 5
    ((3, 11, 7), '4C3-P3-6FC')])
def test_pooling_rounds_down_as_the_sizes_say(in_shape, text):
    numpy.random.seed(0)
    model = net.ConvNet(in_shape, text, 10)
    x = numpy.random.rand(2, *in_shape).astype(numpy.float32)
    y = model(x)
    assert y.shape == (2, 10)
    layers = net.conv_net_layers(in_shape, text, 10)
    assert [link.W.shape for link in model.weight_layers()] == [
        layer.weights for layer in layers]


class _ChainersBatchNormalization(L.BatchNormalization):
    """Chainer's link, then the activation that net.py gives the
    project's link to apply in its pass, as Chainer's function."""

    def forward(self, x, activation=None, **kwargs):
        y = super(_ChainersBatchNormalization, self).forward(x, **kwargs)
        if isinstance(activation, batch_normalization.Relu):
            return F.relu(y)
        if isinstance(activation, batch_normalization.HardTanh):
            return F.clip(y, activation.low, activation.high)
        assert activation is None
        return y


def _chainers_relu_after(x, quantizer, rectified=False):
    """``qst`` with the rectifier as Chainer's function after it."""
    y = qst.qst(x, quantizer)
    return F.relu(y) if rectified else y


def _trained_with(config, x, t, chainers, monkeypatch):
    """Every parameter and running statistic after two steps of
    ``config``, with the project's fused CPU functions or with
    Chainer's own (batch normalisation, hard tanh, the rectifier after a
    quantizer, max-pooling, the convolutions' columns, Adam and the
    clipping hook)."""
    from quantized_net.benchmarks import training_step
    from quantized_net.training import binary_products, columns
    binary = []
    product = binary_products.product
    with monkeypatch.context() as patch:
        if chainers:
            patch.setattr(net, 'BatchNormalization',
                          _ChainersBatchNormalization)
            patch.setattr(net, 'max_pooling_2d', F.max_pooling_2d)
            patch.setattr(net, 'qst', _chainers_relu_after)
            patch.setattr(columns, 'AVAILABLE', False)
            patch.setattr(binary_products, 'product', lambda x, w: None)
        else:  # products of +-1 by their bits, however small
            def counted(x, w):
                binary.append(product(x, w))
                return binary[-1]
            patch.setattr(binary_products, 'MIN_MULTIPLY_ADDS', 0)
            patch.setattr(binary_products, 'product', counted)
        trainer = training_step.Trainer(
            config, x, t, chainer.get_device('@numpy'), fused=not chainers)
        trainer.step()
        trainer.step()
    arrays = {name: p.array for name, p in trainer.model.namedparams()}
    for path, link in trainer.model.namedlinks():
        if isinstance(link, L.BatchNormalization):
            arrays[path + '/avg_mean'] = link.avg_mean
            arrays[path + '/avg_var'] = link.avg_var
    return arrays, sum(b is not None for b in binary)


@pytest.mark.parametrize('activation,act_quant', [
    ('relu', 'none'), ('htanh', 'sign'), ('relu', 'seed')])
def test_another_normalisation_link_is_followed_by_the_activation(
        activation, act_quant, monkeypatch):
    # ChainerMN's create_mnbn_model replaces the project's links with its
    # own, which take no activation: the activation follows them.
    x, t = batch(4)
    outputs = []
    for link in (None, L.BatchNormalization):
        with monkeypatch.context() as patch:
            if link:
                patch.setattr(net, 'BatchNormalization', link)
            numpy.random.seed(2)
            model = L.Classifier(net.MnistMLP(
                784, 20, 10, activation=activation, act_quant=act_quant))
        assert any(type(child) is (link or batch_normalization
                                   .BatchNormalization)
                   for child in model.predictor.children())
        loss = model(x, t)
        loss.backward()
        outputs.append([loss.array, model.predictor.l1.W.grad])
    for ours, theirs in zip(*outputs):
        numpy.testing.assert_array_equal(ours.view(numpy.uint32),
                                         theirs.view(numpy.uint32))


def _configurations():
    from quantized_net.benchmarks import training_step
    return ([('convnet ' + name, config) for name, config in
             training_step.convnet_configurations(0.125)] +
            [('mlp ' + name, config) for name, config in
             training_step.configurations(40)])


@pytest.mark.parametrize('name,config', _configurations(),
                         ids=[name for name, _ in _configurations()])
def test_fused_functions_train_to_the_bits_of_chainers(name, config,
                                                       monkeypatch):
    # Each fused function gives Chainer's values laid out as Chainer's
    # (a sum after it adds in memory order), and a product of +-1 by bits
    # BLAS's: two steps of each network, every parameter and statistic,
    # bit for bit.
    pytest.importorskip('numba')
    rng = numpy.random.RandomState(0)
    x = rng.rand(3, 1, 28, 28).astype(numpy.float32)
    t = numpy.array([1, 7, 3], numpy.int32)
    ours, binary = _trained_with(config, x, t, False, monkeypatch)
    chainers, _ = _trained_with(config, x, t, True, monkeypatch)
    # Sign units into sign weights: those products were taken by bits.
    assert (binary > 0) == (config['act_quant'] == 'sign' and
                            config['weight_quant'] == 'sign')
    assert sorted(ours) == sorted(chainers)
    for key in ours:
        numpy.testing.assert_array_equal(ours[key].view(numpy.uint32),
                                         chainers[key].view(numpy.uint32),
                                         key)
