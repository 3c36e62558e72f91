"""Batch normalisation's population statistics, recomputed exactly with
the current weights before each evaluation.

A network evaluates with the running averages its batch normalisation
keeps while training (each batch moves them by a tenth). Where the weights
still move fast, as a binarized ConvNet's do, those averages mix
statistics of weights long gone: a layer's running mean can sit most of a
standard deviation away from the current one, and a sign activation then
flips for a large share of the units. The validation error swings from
epoch to epoch, and choosing the best epoch by it chooses by the averages'
luck (docs/convnets.md shows such a run).

:class:`PopulationStatistics` replaces them, before the evaluators read
the model, by the statistics of the current weights over the first
``bn_batches`` batches of the training set (or all of it), in order:
every other part of the network computes as it evaluates (no dropout,
deterministic quantizers), each batch normalisation normalises with the
statistics of its batch as in training, and it records, exactly (in
float64 sums), the mean and the unbiased variance of everything it sees.
In a data-parallel run the batches are the global ones: each process
reads its shard's first batches, and the sums are taken over all
processes. Nothing is drawn from a random generator and the weights do
not change, so the run trains as it would without it; its snapshots hold
the recomputed statistics, so a resumed run evaluates as the run it
continues.
"""
import numpy

import chainer
from chainer import backend
from chainer import training
from chainer.backends import cuda
from chainer.functions.normalization import batch_normalization


def normalised_links(model):
    """The batch normalisation links of ``model`` (Chainer's and
    ChainerMN's): those that keep running statistics."""
    return [link for link in model.links()
            if getattr(link, 'avg_mean', None) is not None and
            getattr(link, 'avg_var', None) is not None]


class _BatchStatistics(chainer.FunctionHook):
    """While active, makes every batch normalisation that computes with
    fixed statistics (as one does when evaluating) compute with its
    batch's, and sums what each one sees.

    The statistics a fixed batch normalisation is given are its link's
    ``avg_mean`` and ``avg_var`` arrays themselves; the hook writes the
    batch's into them before it computes. ``total`` sums an array of
    float64 over the processes of the run.
    """

    name = 'BatchStatistics'

    def __init__(self, links, total):
        self.links = {id(link.avg_mean): link for link in links}
        self.total = total
        self.sums = {}  # id of a link: [count, sums, sums of squares]

    def forward_preprocess(self, function, in_data):
        if not isinstance(function,
                          batch_normalization.FixedBatchNormalization):
            return
        x, _, _, mean, var = in_data
        link = self.links.get(id(mean))
        if link is None:
            raise ValueError('a batch normalisation outside the model')
        axes = (0,) + tuple(range(1 + mean.ndim, x.ndim))
        xp = backend.get_array_module(x)
        wide = x.astype(numpy.float64)
        count = x.size // mean.size
        local = numpy.concatenate([
            numpy.array([count], numpy.float64),
            cuda.to_cpu(wide.sum(axis=axes)).ravel(),
            cuda.to_cpu((wide * wide).sum(axis=axes)).ravel()])
        total = self.total(local)
        count, sums, squares = total[0], *total[1:].reshape(2, -1)
        batch_mean = sums / count
        batch_var = numpy.maximum(squares / count - batch_mean ** 2, 0)
        mean[...] = xp.asarray(batch_mean.reshape(mean.shape), mean.dtype)
        var[...] = xp.asarray(batch_var.reshape(var.shape), var.dtype)
        seen = self.sums.setdefault(id(link), [0.0, 0.0, 0.0])
        seen[0] += count
        seen[1] = seen[1] + sums
        seen[2] = seen[2] + squares

    def population(self, link):
        """``(mean, unbiased variance)`` of all that ``link`` saw, float64,
        or None where it saw nothing."""
        if id(link) not in self.sums:
            return None
        count, sums, squares = self.sums[id(link)]
        mean = sums / count
        var = numpy.maximum(squares / count - mean ** 2, 0)
        return mean, var * count / max(count - 1, 1)


def recompute(model, dataset, batchsize, batches, device,
              total=lambda array: array):
    """Sets the population statistics of ``model``'s batch normalisation
    links to those of its current weights over the first ``batches``
    batches of ``batchsize`` images of ``dataset`` (see the module's
    description).

    Args:
        model: A network or a classifier holding one, on ``device``.
        dataset: Pairs of an image and its label.
        batchsize (int): Images in a batch (this process's part of one).
        batches (int): How many batches; all the whole batches of
            ``dataset`` where it holds fewer.
        device: The Chainer device of ``model``.
        total: Sums an array of float64 over the processes of the run (in
            a data-parallel run, whose processes hold as many images each);
            the identity for one process.
    """
    batches = min(batches, len(dataset) // batchsize)
    predictor = getattr(model, 'predictor', model)
    links = normalised_links(predictor)
    kept = [(link.avg_mean.copy(), link.avg_var.copy()) for link in links]
    hook = _BatchStatistics(links, total)
    try:
        with chainer.using_config('train', False), \
                chainer.no_backprop_mode(), hook:
            for start in range(0, batches * batchsize, batchsize):
                x, _ = chainer.dataset.concat_examples(
                    dataset[start:start + batchsize], device)
                predictor(x)
    except BaseException:  # interrupted: the running statistics stay
        for link, (mean, var) in zip(links, kept):
            link.avg_mean[...] = mean
            link.avg_var[...] = var
        raise
    xp = device.xp
    for link, before in zip(links, kept):
        # A link the network did not call keeps its own.
        after = hook.population(link) or before
        for array, value in zip((link.avg_mean, link.avg_var), after):
            array[...] = xp.asarray(value.reshape(array.shape), array.dtype)


class PopulationStatistics(training.Extension):
    """Recomputes the population statistics of ``model``'s batch
    normalisation (:func:`recompute`) at the end of each epoch, before the
    evaluators, the best model and the snapshot read the model.

    Args:
        model: The classifier trained, on ``device``.
        dataset: This process's training images.
        batchsize (int): This process's part of a batch.
        batches (int): How many batches to compute them over.
        device: The Chainer device.
        total: As :func:`recompute`'s.
    """

    trigger = 1, 'epoch'
    # After the NaN check, before the evaluators (PRIORITY_WRITER).
    priority = training.PRIORITY_WRITER + 1

    def __init__(self, model, dataset, batchsize, batches, device,
                 total=lambda array: array):
        self.model = model
        self.dataset = dataset
        self.batchsize = batchsize
        self.batches = batches
        self.device = device
        self.total = total

    def __call__(self, trainer):
        recompute(self.model, self.dataset, self.batchsize, self.batches,
                  self.device, self.total)
