"""population_statistics.py: batch normalisation's statistics recomputed
with the current weights, against a NumPy reference of the network, and
what the recomputation leaves alone."""
import threading

import numpy
import pytest

import chainer

import helpers
from quantized_net.training import population_statistics
from quantized_net.training import presets

CPU = chainer.get_device('@numpy')


def mlp_config(**changes):
    return dict(presets.PRESETS['float'], preset='float', unit=6,
                layers=2, **changes)


def images(n, size, seed=0):
    rng = numpy.random.RandomState(seed)
    return chainer.datasets.TupleDataset(
        rng.rand(n, size).astype(numpy.float32),
        rng.randint(0, 10, n).astype(numpy.int32))


def pixels(dataset):
    return chainer.dataset.concat_examples(dataset[:])[0]


def with_random_normalisation(model, seed=1):
    """Gives every batch normalisation a scale and shift of its own, and
    running statistics far from any the images give."""
    rng = numpy.random.RandomState(seed)
    for link in population_statistics.normalised_links(model):
        size = link.avg_mean.shape
        link.gamma.array[...] = rng.uniform(0.5, 2, size)
        link.beta.array[...] = rng.uniform(-1, 1, size)
        link.avg_mean[...] = 100
        link.avg_var[...] = 1e-3
    return model


def reference_mlp(model, x, batchsize, batches):
    """The inputs of each batch normalisation of a float relu MLP, in
    float64: each batch normalised with its own mean and biased variance,
    as training does; returns each layer's inputs over all the batches."""
    layers = model.predictor.layers()
    seen = [[] for _ in layers]
    for start in range(0, batches * batchsize, batchsize):
        h = x[start:start + batchsize].astype(numpy.float64)
        for i, (linear, bn) in enumerate(layers):
            a = h @ linear.W.array.T.astype(numpy.float64) + linear.b.array
            seen[i].append(a)
            a = (a - a.mean(0)) / numpy.sqrt(a.var(0) + bn.eps)
            h = numpy.maximum(a * bn.gamma.array + bn.beta.array, 0)
    return [numpy.concatenate(s) for s in seen]


@pytest.mark.parametrize('batchsize,batches', [(10, 3), (7, 1), (4, 10)])
def test_an_mlps_statistics_are_the_population_of_its_batches(
        batchsize, batches):
    model = with_random_normalisation(presets.build_classifier(
        mlp_config()))
    data = images(40, 784)
    population_statistics.recompute(model, data, batchsize, batches, CPU)
    expected = reference_mlp(model, pixels(data), batchsize, batches)
    for (_, bn), seen in zip(model.predictor.layers(), expected):
        assert len(seen) == batchsize * batches
        numpy.testing.assert_allclose(bn.avg_mean, seen.mean(0),
                                      rtol=1e-5, atol=1e-5)
        # Unbiased, as Chainer's running variance is.
        numpy.testing.assert_allclose(bn.avg_var, seen.var(0, ddof=1),
                                      rtol=1e-5)


def test_fewer_images_than_batches_asked_for_gives_all_whole_batches():
    model = with_random_normalisation(presets.build_classifier(
        mlp_config()))
    data = images(25, 784)
    population_statistics.recompute(model, data, 10, 50, CPU)
    expected = reference_mlp(model, pixels(data), 10, 2)
    (_, first), _ = model.predictor.layers()[:2]
    numpy.testing.assert_allclose(first.avg_mean, expected[0].mean(0),
                                  rtol=1e-5, atol=1e-5)


def test_a_convnets_statistics_are_those_of_its_sums_after_pooling():
    config = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  architecture='4C3-P2-6C3-5FC')
    model = with_random_normalisation(presets.build_classifier(config))
    data = images(24, 784)
    population_statistics.recompute(model, data, 8, 3, CPU)
    predictor = model.predictor
    (conv, first, pool), (_, second, _) = predictor.layers()[:2]
    with chainer.using_config('train', False):
        x = predictor.take_input(pixels(data).reshape(-1, 1, 28, 28))
        sums = chainer.functions.max_pooling_2d(
            conv(x), pool, stride=pool).array.astype(numpy.float64)
    numpy.testing.assert_allclose(first.avg_mean, sums.mean((0, 2, 3)),
                                  rtol=1e-5)
    numpy.testing.assert_allclose(
        first.avg_var, sums.var((0, 2, 3), ddof=1), rtol=1e-5)
    # The second layer's inputs are the first's normalised with each
    # batch's statistics: Chainer's fine-tuning averages the batch means.
    tuned = with_random_normalisation(presets.build_classifier(config))
    tuned.copyparams(model)
    tuned_bns = population_statistics.normalised_links(tuned)
    with chainer.using_config('train', True), chainer.no_backprop_mode():
        for start in range(0, 24, 8):
            h = tuned.predictor.take_input(
                pixels(data)[start:start + 8].reshape(-1, 1, 28, 28))
            for link, bn, pool in tuned.predictor.layers():
                h = link(h)
                if pool:
                    h = chainer.functions.max_pooling_2d(h, pool,
                                                         stride=pool)
                h = bn(h, finetune=True)
                with chainer.using_config('train', False):
                    h = tuned.predictor.activate(h)
    assert tuned_bns[1].N == 3
    numpy.testing.assert_allclose(second.avg_mean, tuned_bns[1].avg_mean,
                                  rtol=1e-4, atol=1e-4)


def test_dropout_and_stochastic_quantizers_are_as_in_evaluation():
    """The bnn preset drops units and a stochastic quantizer draws; the
    recomputation does neither: it is deterministic and draws nothing."""
    config = dict(presets.PRESETS['bnn'], preset='bnn', unit=16, layers=2,
                  act_quant='stochastic')
    model = presets.build_classifier(config)
    data = images(30, 784)
    numpy.random.seed(3)
    state = numpy.random.get_state()
    population_statistics.recompute(model, data, 10, 3, CPU)
    after = numpy.random.get_state()
    assert all(numpy.array_equal(a, b) for a, b in zip(state, after))
    first = [link.avg_var.copy() for link in
             population_statistics.normalised_links(model)]
    population_statistics.recompute(model, data, 10, 3, CPU)
    for link, var in zip(population_statistics.normalised_links(model),
                         first):
        assert numpy.array_equal(link.avg_var, var)


def test_the_weights_stay_and_evaluation_reads_the_new_statistics():
    model = with_random_normalisation(presets.build_classifier(
        mlp_config()))
    before = {name: param.array.copy()
              for name, param in model.namedparams()}
    data = images(20, 784)
    x = pixels(data)
    with chainer.using_config('train', False):
        stale = model.predictor(x).array
    population_statistics.recompute(model, data, 20, 1, CPU)
    for name, param in model.namedparams():
        assert numpy.array_equal(param.array, before[name]), name
    with chainer.using_config('train', False):
        evaluated = model.predictor(x).array
    # One batch of all the images: evaluating on them is training's
    # forward, but for the unbiased variance's factor n / (n - 1).
    bns = population_statistics.normalised_links(model)
    for bn in bns:
        bn.avg_var *= 19 / 20
    with chainer.using_config('train', False):
        as_batch = model.predictor(x).array
    with chainer.using_config('train', True):
        trained = model.predictor(x).array
    numpy.testing.assert_allclose(as_batch, trained, rtol=1e-4, atol=1e-4)
    assert not numpy.allclose(stale, evaluated)


class Interrupting(object):
    """A data set that stops the process at its second batch."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        if index.start:
            raise KeyboardInterrupt
        return self.data[index]


def test_interrupted_it_leaves_the_running_statistics():
    model = with_random_normalisation(presets.build_classifier(
        mlp_config()))
    with pytest.raises(KeyboardInterrupt):
        population_statistics.recompute(model, Interrupting(images(30, 784)),
                                        10, 3, CPU)
    for link in population_statistics.normalised_links(model):
        assert (link.avg_mean == 100).all() and (link.avg_var == 1e-3).all()


class ThreadsAllreduce(object):
    """``total`` of each of ``size`` threads: the sum of what each gives,
    once all have given theirs, as an MPI allreduce."""

    def __init__(self, size):
        self.barrier = threading.Barrier(size)
        self.given = [None] * size

    def total(self, rank):
        def total(array):
            self.given[rank] = array
            self.barrier.wait()
            summed = sum(self.given)
            self.barrier.wait()
            return summed
        return total


def test_a_data_parallel_run_is_one_process_with_the_whole_batch():
    """Two processes of 10 images a batch each, their sums totalled: the
    statistics of one process with batches of 20."""
    whole = images(60, 784)
    x, t = chainer.dataset.concat_examples(whole[:])
    shards = [chainer.datasets.TupleDataset(
        numpy.concatenate([x[b + r * 10:b + r * 10 + 10]
                           for b in range(0, 60, 20)]),
        numpy.concatenate([t[b + r * 10:b + r * 10 + 10]
                           for b in range(0, 60, 20)])) for r in (0, 1)]
    single = with_random_normalisation(presets.build_classifier(
        mlp_config()))
    ranks = [with_random_normalisation(presets.build_classifier(
        mlp_config())) for _ in shards]
    for model in ranks:
        model.copyparams(single)
    population_statistics.recompute(single, whole, 20, 3, CPU)
    allreduce = ThreadsAllreduce(2)
    threads = [threading.Thread(
        target=population_statistics.recompute,
        args=(model, shard, 10, 3, CPU, allreduce.total(rank)))
        for rank, (model, shard) in enumerate(zip(ranks, shards))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for model in ranks:
        for a, b in zip(population_statistics.normalised_links(single),
                        population_statistics.normalised_links(model)):
            numpy.testing.assert_allclose(a.avg_mean, b.avg_mean,
                                          rtol=1e-5, atol=1e-6)
            numpy.testing.assert_allclose(a.avg_var, b.avg_var, rtol=1e-5)


@pytest.mark.gpu
def test_the_gpu_recomputes_what_the_cpu_does():
    config = dict(presets.PRESETS['bnn-conv'], preset='bnn-conv',
                  architecture='4C3-P2-6C3-5FC')
    cpu = with_random_normalisation(presets.build_classifier(config))
    gpu = with_random_normalisation(presets.build_classifier(config))
    gpu.copyparams(cpu)
    device = chainer.get_device('@cupy:0')
    gpu.to_device(device)
    data = images(24, 784)
    population_statistics.recompute(cpu, data, 8, 3, CPU)
    population_statistics.recompute(gpu, data, 8, 3, device)
    for a, b in zip(population_statistics.normalised_links(cpu),
                    population_statistics.normalised_links(gpu)):
        numpy.testing.assert_allclose(a.avg_mean, helpers.cuda.to_cpu(
            b.avg_mean), rtol=1e-4, atol=1e-4)
        numpy.testing.assert_allclose(a.avg_var, helpers.cuda.to_cpu(
            b.avg_var), rtol=1e-4, atol=1e-4)
