"""fused_adam.py: the same bits as Chainer's Adam, in one fused update;
on the GPU, every parameter's update in one launch (its kernel also built
for the host, cuda_host.py, where there is no GPU)."""
import types

import numpy
import pytest

# The package before Chainer: it lets Chainer import under NumPy 2.
from quantized_net.training import fused_adam
import chainer
import chainer.links as L
from chainer.backends import cuda

import cuda_host
from weight_clip import WeightClip

# The CPU's fused update is numba's (a GPU machine may lack it).
needs_numba = pytest.mark.skipif(fused_adam.numba is None,
                                 reason='numba is not installed')


def _train(optimizer_class, dtype, steps=5, hook=None, **hyperparams):
    """Parameters and moments after ``steps`` updates of a small linear
    link on fixed random gradients, with the optimizer hook ``hook``."""
    numpy.random.seed(0)
    link = L.Linear(37, 29)
    link.to_device('@numpy')
    for p in link.params():
        p.array = numpy.random.uniform(-1, 1, p.shape).astype(dtype)
    optimizer = optimizer_class(**hyperparams)
    optimizer.setup(link)
    if hook is not None:
        optimizer.add_hook(hook)
    link.W.update_rule.hyperparam.eta = 3.7
    rng = numpy.random.RandomState(1)
    for _ in range(steps):
        for p in link.params():
            # Tiny and huge gradients too: subnormal squares, large steps.
            p.grad = (rng.standard_normal(p.shape) *
                      10.0 ** rng.randint(-25, 3, p.shape)).astype(dtype)
        optimizer.update()
    return [(p.array, p.update_rule.state['m'], p.update_rule.state['v'])
            for p in link.params()]


@needs_numba
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('hyperparams', [
    {}, {'alpha': 0.003, 'beta1': 0.5, 'eps': 1e-4},
    {'amsgrad': True}, {'weight_decay_rate': 0.01}])
def test_same_bits_as_chainer_adam(dtype, hyperparams):
    fused = _train(fused_adam.Adam, dtype, **hyperparams)
    reference = _train(chainer.optimizers.Adam, dtype, **hyperparams)
    for ours, theirs in zip(fused, reference):
        for a, b in zip(ours, theirs):
            assert a.dtype == dtype
            numpy.testing.assert_array_equal(a, b)


@needs_numba
@pytest.mark.parametrize('dtype', [numpy.float32, numpy.float64])
@pytest.mark.parametrize('clip', [
    {}, {'low': -0.5, 'high': 0.3}, {'param_names': ('W',)}])
@pytest.mark.parametrize('hyperparams', [
    {'alpha': 0.3}, {'alpha': 0.3, 'weight_decay_rate': 0.01}])
def test_clipping_in_the_pass_is_the_hooks(dtype, clip, hyperparams):
    # Large steps: many weights cross the bounds, on both sides.
    fused = _train(fused_adam.Adam, dtype, clip=WeightClip(**clip),
                   **hyperparams)
    reference = _train(chainer.optimizers.Adam, dtype,
                       hook=WeightClip(**clip), **hyperparams)
    unclipped = _train(fused_adam.Adam, dtype, **hyperparams)
    assert (numpy.abs(unclipped[0][0]) > 1).any()
    for ours, theirs in zip(fused, reference):
        for a, b in zip(ours, theirs):
            numpy.testing.assert_array_equal(a, b)


@needs_numba
def test_a_nan_weight_stays_nan_as_numpy_clip_leaves_it():
    link = L.Linear(2, 1)
    optimizer = fused_adam.Adam(clip=WeightClip())
    optimizer.setup(link)
    link.W.array[...] = [[numpy.nan, 7.0]]
    link.cleargrads()
    link.W.grad = numpy.zeros_like(link.W.array)
    link.b.grad = numpy.zeros_like(link.b.array)
    optimizer.update()
    numpy.testing.assert_array_equal(link.W.array, [[numpy.nan, 1.0]])


@needs_numba
def test_fused_update_is_the_one_taken():
    link = L.Linear(3, 2)
    optimizer = fused_adam.Adam()
    optimizer.setup(link)
    assert isinstance(link.W.update_rule, fused_adam.AdamRule)
    link.cleargrads()
    link.W.grad = numpy.ones_like(link.W.array)
    link.b.grad = numpy.ones_like(link.b.array)
    before = link.W.array.copy()
    optimizer.update()
    # The first step of Adam moves every weight by alpha, against g.
    numpy.testing.assert_allclose(before - link.W.array, 0.001, rtol=1e-4)


# The GPU form. Chainer's own GPU update (AdamRule.update_core_gpu, its
# float32 expression) and WeightClip's cupy.clip, in NumPy's float32: what
# the launch must give, bit for bit.

def chainer_gpu_step(param, grad, m, v, scalars, bounds, eta):
    alpha_t, one_minus_beta1, one_minus_beta2, eps, decay = scalars
    eta = numpy.float32(eta)
    with numpy.errstate(all='ignore'):
        m += one_minus_beta1 * (grad - m)
        v += one_minus_beta2 * (grad * grad - v)
        param -= eta * (alpha_t * m / (numpy.sqrt(v) + eps) + decay * param)
    if bounds is not None:
        low, high = numpy.float32(bounds[0]), numpy.float32(bounds[1])
        param[...] = numpy.where(low > high, high, numpy.where(
            param < low, low, numpy.where(param > high, high, param)))


@pytest.fixture(scope='module')
def host_module(tmp_path_factory):
    return cuda_host.RawModule(fused_adam.CUDA_SOURCE,
                               str(tmp_path_factory.mktemp('adam')))


@pytest.fixture
def on_the_host(monkeypatch, host_module):
    """fused_adam's GPU form on the host: NumPy arrays taken for CuPy's,
    its kernel built for this CPU."""
    monkeypatch.setattr(fused_adam, 'cuda', types.SimpleNamespace(
        cupy=numpy, ndarray=numpy.ndarray,
        get_device_from_array=cuda.get_device_from_array))
    monkeypatch.setattr(fused_adam, 'cuda_kernel',
                        lambda: host_module.get_function('adam_update'))


def random_updates(rng, sizes, bounds):
    """``(param, grad, m, v, low, high, eta)`` of each size, with NaN,
    infinite, zero and huge gradients among them; each clipped to
    ``bounds`` or not (None), its steps scaled by its own ``eta``."""
    updates = []
    for size, bound in zip(sizes, bounds):
        param, grad, m, v = (rng.uniform(-1.5, 1.5, size).astype(
            numpy.float32) for _ in range(4))
        v = numpy.abs(v)
        grad *= numpy.float32(10.0) ** rng.randint(-12, 4, size)
        specials = [numpy.nan, numpy.inf, -numpy.inf, 0.0, -0.0]
        grad[:min(size, 5)] = specials[:min(size, 5)]
        low, high = bound if bound else (-numpy.inf, numpy.inf)
        updates.append((param, grad, m, v, low, high,
                        rng.uniform(0.5, 4)))
    return updates


SCALARS = tuple(numpy.float32(s) for s in (0.0031, 0.1, 0.001, 1e-8, 0.0))


@pytest.mark.parametrize('blocks', [fused_adam.CUDA_BLOCKS, 3])
def test_one_launch_updates_every_parameter_as_chainers_gpu_update(
        on_the_host, monkeypatch, blocks):
    # Sizes of no elements, one, and past a block of threads; with 3
    # blocks, each thread takes many elements (the grid-stride loop).
    monkeypatch.setattr(fused_adam, 'CUDA_BLOCKS', blocks)
    rng = numpy.random.RandomState(blocks)
    sizes = [257, 0, 1, 1000, 31]
    bounds = [(-1, 1), None, (-0.5, 0.25), None, (0.3, -0.3)]
    updates = random_updates(rng, sizes, bounds)
    expected = [[a.copy() for a in u[:4]] for u in updates]
    for (param, grad, m, v), bound, update in zip(expected, bounds,
                                                  updates):
        chainer_gpu_step(param, grad, m, v, SCALARS, bound, update[6])
    launches = []
    kernel = fused_adam.cuda_kernel()
    monkeypatch.setattr(fused_adam, 'cuda_kernel', lambda: (
        lambda *args: (launches.append(args), kernel(*args))))
    fused_adam.update_on_gpu(updates, SCALARS)
    assert len(launches) == 1
    assert launches[0][0] == (min(-(-1289 // 256), blocks),)
    for ours, theirs in zip(updates, expected):
        for a, b in zip(ours[:4], theirs):
            numpy.testing.assert_array_equal(a, b)
    clipped = updates[0][0][5:]
    assert clipped.min() == -1 and clipped.max() == 1
    assert (updates[4][0] == numpy.float32(-0.3)).all()  # low > high
    assert numpy.isnan(updates[0][0][0])


def test_the_table_is_uploaded_again_only_where_it_changed(
        on_the_host, monkeypatch):
    uploads = []
    monkeypatch.setattr(fused_adam.cuda, 'cupy', types.SimpleNamespace(
        asarray=lambda a: (uploads.append(a), numpy.asarray(a))[1]))
    rng = numpy.random.RandomState(0)
    updates = random_updates(rng, [10, 20], [None, (-1, 1)])
    cache = []
    fused_adam.update_on_gpu(updates, SCALARS, cache)
    fused_adam.update_on_gpu(updates, SCALARS, cache)
    assert len(uploads) == 1
    moved = [(updates[0][0], updates[0][1].copy()) + updates[0][2:],
             updates[1][:6] + (2.5,)]
    fused_adam.update_on_gpu(moved, SCALARS, cache)
    assert len(uploads) == 2
    table = fused_adam.update_table(moved)
    assert table[1] == moved[0][1].ctypes.data
    assert table[8:10].tolist() == [10, 30]
    assert table[10:12].view(numpy.float32).tolist() == [
        -numpy.inf, numpy.inf, -1, 1]
    assert table[13:14].view(numpy.float32)[0] == 2.5


def _gpu_link(seed):
    numpy.random.seed(seed)
    model = chainer.Sequential(L.Linear(37, 29), L.Linear(29, 5))
    for p in model.params():
        p.array = numpy.random.uniform(-1, 1, p.shape).astype(numpy.float32)
    return model


def _train_steps(model, optimizer, xp, steps=4):
    rng = numpy.random.RandomState(1)
    for _ in range(steps):
        for p in model.params():
            p.grad = xp.asarray((rng.standard_normal(p.shape) * 10.0 **
                                 rng.randint(-12, 3, p.shape)).astype(
                numpy.float32))
        optimizer.update()
    return [(p.array, p.update_rule.state['m'], p.update_rule.state['v'])
            for p in model.params()]


def test_the_optimizer_defers_every_update_to_one_launch(on_the_host,
                                                         monkeypatch):
    # Each step: one launch of all four parameters, each with its own
    # rule's step count, clipping (of the weights alone) and eta, the
    # values those of Chainer's GPU update and the hook.
    launches = []
    update = fused_adam.update_on_gpu
    monkeypatch.setattr(fused_adam, 'update_on_gpu', lambda u, *a: (
        launches.append(len(u)), update(u, *a)))
    model = _gpu_link(0)
    optimizer = fused_adam.Adam(clip=WeightClip(-0.5, 0.5, ('W',)),
                                alpha=0.05)
    optimizer.setup(model)
    model[1].W.update_rule.hyperparam.eta = 3.7
    params = list(model.params())
    expected = [[p.array.copy(), numpy.zeros_like(p.array),
                 numpy.zeros_like(p.array)] for p in params]
    ours = _train_steps(model, optimizer, numpy)
    assert launches == [4, 4, 4, 4]
    rng = numpy.random.RandomState(1)
    for t in range(1, 5):
        for p, (param, m, v) in zip(params, expected):
            grad = (rng.standard_normal(p.shape) * 10.0 **
                    rng.randint(-12, 3, p.shape)).astype(numpy.float32)
            hp = p.update_rule.hyperparam
            alpha_t = hp.alpha * numpy.sqrt(1 - hp.beta2 ** t) / (
                1 - hp.beta1 ** t)
            scalars = tuple(numpy.float32(s) for s in (
                alpha_t, 1 - hp.beta1, 1 - hp.beta2, hp.eps,
                hp.weight_decay_rate))
            chainer_gpu_step(param, grad, m, v, scalars,
                             (-0.5, 0.5) if p.name == 'W' else None, hp.eta)
    for got, want in zip(ours, expected):
        for a, b in zip(got, want):
            numpy.testing.assert_array_equal(a, b)
    assert all(p.update_rule.deferred is None for p in params)
    # Its hook called again outside an update (bench.py --breakdown calls
    # the post-update hooks to time them) launches nothing.
    optimizer.call_hooks('post')
    assert launches == [4, 4, 4, 4]


def test_a_hooked_rule_or_a_float64_parameter_is_not_deferred(
        on_the_host, monkeypatch):
    launches = []
    monkeypatch.setattr(fused_adam, 'update_on_gpu', lambda u, *a: (
        launches.append(len(u))))
    model = _gpu_link(1)
    model[1].b.array = model[1].b.array.astype(numpy.float64)
    optimizer = fused_adam.Adam()
    optimizer.setup(model)
    model[0].W.update_rule.add_hook(lambda rule, param: None, name='noop')
    rules = [p.update_rule for p in model.params()]
    deferred = []
    for rule in rules:
        def defer(param, original=rule._defer):
            taken = original(param)
            if taken:
                deferred.append(param.name)
            return taken
        rule._defer = defer
    applied = []
    with pytest.MonkeyPatch.context() as patch:
        # The rules not deferred take the CPU's fused update, here noted.
        patch.setattr(fused_adam.AdamRule, '_fused', lambda self, p: (
            applied.append(p.name), True)[1])
        model.cleargrads()
        for p in model.params():
            p.grad = numpy.ones_like(p.array)
        optimizer.update()
    assert launches == [2]
    assert sorted(deferred) == ['W', 'b']
    # Each parameter updated once: the deferred ones never reach _fused.
    assert sorted(applied) == ['W', 'b']


@pytest.mark.gpu
def test_the_gpu_launch_gives_chainers_gpu_update_and_hook():
    device = chainer.get_device('@cupy:0')
    clip = dict(low=-0.5, high=0.5, param_names=('W',))
    results = []
    launches = []
    update = fused_adam.update_on_gpu

    def counted(updates, *args):
        launches.append(len(updates))
        update(updates, *args)
    for fused in (True, False):
        model = _gpu_link(2)
        model.to_device(device)
        if fused:
            optimizer = fused_adam.Adam(clip=WeightClip(**clip), alpha=0.05)
        else:
            optimizer = chainer.optimizers.Adam(alpha=0.05)
        optimizer.setup(model)
        if not fused:
            optimizer.add_hook(WeightClip(**clip))
        model[1].W.update_rule.hyperparam.eta = 3.7
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fused_adam, 'update_on_gpu', counted)
            results.append(_train_steps(model, optimizer, device.xp))
    assert launches == [4] * 4
    for ours, theirs in zip(*results):
        for a, b in zip(ours, theirs):
            numpy.testing.assert_array_equal(cuda.to_cpu(a),
                                             cuda.to_cpu(b))


@pytest.mark.parametrize('version', sorted(cuda_host.NVRTC_LIBRARIES))
@pytest.mark.parametrize('arch', cuda_host.ARCHS)
def test_the_gpu_kernel_compiles_with_ieee_division_and_square_root(
        arch, version):
    status, log, ptx = cuda_host.compile_cuda(
        fused_adam.CUDA_SOURCE, arch, version, options=('-ftz=true',))
    assert status == 0, log
    assert '.entry adam_update(' in ptx
    assert '.local' not in ptx
    # Rounded as Chainer's kernel rounds (CuPy builds without fast math),
    # subnormals flushed as it flushes them.
    assert 'div.rn.ftz.f32' in ptx and 'sqrt.rn.ftz.f32' in ptx
    assert 'div.approx' not in ptx and 'sqrt.approx' not in ptx


def test_two_sets_of_scalars_are_two_launches_and_later_hooks_see_them(
        on_the_host, monkeypatch):
    # A rule of its own beta1 takes a launch of its own; an optimizer hook
    # after the update (here clipping, a second time) sees every
    # parameter updated; a post-update hook that updates a parameter
    # again has that update made too.
    launches = []
    update = fused_adam.update_on_gpu
    monkeypatch.setattr(fused_adam, 'update_on_gpu', lambda u, *a: (
        launches.append(len(u)), update(u, *a)))
    model = _gpu_link(3)
    optimizer = fused_adam.Adam(alpha=0.3)
    optimizer.setup(model)
    model[0].b.update_rule.hyperparam.beta1 = 0.5
    seen = []
    optimizer.add_hook(lambda opt: seen.append(
        [p.array.copy() for p in model.params()]), name='watch',
        timing='post')
    again = []
    optimizer.add_hook(lambda opt: again.append(model[1].b.update()) if
                       not again else None, name='again', timing='post')
    before = [p.array.copy() for p in model.params()]
    for p in model.params():
        p.grad = numpy.ones_like(p.array)
    optimizer.update()
    assert sorted(launches) == [1, 1, 3]
    for watched, old, p in zip(seen[0], before, model.params()):
        assert (watched != old).all()
    # b of the last layer: two steps, the second made by the hook.
    assert model[1].b.update_rule.t == 2
    assert not numpy.array_equal(seen[0][3], model[1].b.array)
