"""Where a training iteration's time goes, part by part: ``bench.py
--breakdown``.

An instrumented step of a :class:`training_step.Trainer` times every
Chainer function's forward and backward (a function hook), every call of
a layer's input and weight quantizers (which run inside the layer's own
function), the optimizer's update and the weight clipping after it, each
exclusive of what it calls, and adds them up by part (:data:`PARTS`).
What a plain step spends beyond all of them is Chainer's graph and
Python: building and walking the nodes, the variables, the calls between
them.
"""
import collections
import contextlib
import statistics
import time

import numpy

import chainer
from chainer import function_hook

from quantized_net import kernel_cache
from quantized_net.benchmarks import timing
from quantized_net.quantization import quantizers

numba = kernel_cache.numba  # None where numba does not import

#: The parts of an iteration, in the order of the table.
MATMUL, CONVOLUTIONS, QUANTIZERS, BATCH_NORM, ACTIVATIONS, POOLING, LOSS, \
    UPDATE, CLIP, OTHER, GRAPH = PARTS = (
        'matrix products', 'convolutions', 'quantizers',
        'batch normalisation', 'activations', 'pooling', 'loss',
        'optimizer update', 'weight clipping', 'other functions',
        "Chainer's graph and Python")

#: The part of each Chainer function (by its class's name); any other is
#: :data:`OTHER`'s. A quantized layer's function is its products (a
#: convolution's, its columns too: Chainer's CPU convolution is im2col,
#: a product, and col2im for the input's gradient); its quantizers are
#: timed on their own.
FUNCTION_PARTS = dict(
    [(name, MATMUL) for name in (
        'QuantizedLinearFunction', 'LinearFunction', 'LinearGradData',
        'LinearGradWeight', 'MatMul')] +
    [(name, CONVOLUTIONS) for name in (
        'QuantizedConvolution2DFunction', 'ColumnsGradW',
        'ColumnsDeconvolution2D', 'Convolution2DFunction',
        'Convolution2DGradW', 'Deconvolution2DFunction')] +
    [(name, QUANTIZERS) for name in (
        'QuantizedStraightThrough', 'StraightThroughGradient',
        'QuantizedGradient')] +
    [(name, BATCH_NORM) for name in (
        'BatchNormalization', 'BatchNormalizationGrad', 'NormalizedActivation',
        'FixedBatchNormalization', 'FixedBatchNormalizationGrad')] +
    [(name, ACTIVATIONS) for name in (
        'ReLU', 'ReLUGrad2', 'Clip', 'ClipGrad', 'Dropout')] +
    [(name, POOLING) for name in (
        'MaxPoolingND', 'MaxPoolingNDGrad', 'MaxPooling2D',
        'MaxPooling2DGrad')] +
    [(name, LOSS) for name in (
        'SoftmaxCrossEntropy', '_SoftmaxCrossEntropyGrad_NoDoubleBackprop',
        'Hinge', 'Accuracy')])
#: The links' quantizers that run inside their function, not as one.
LAYER_QUANTIZERS = ('input_quant', 'weight_quant')


class PartTimer(function_hook.FunctionHook):
    """Seconds by part, each span exclusive of the spans inside it: a
    function's backward that applies other functions counts without
    them, as the optimizer's update counts without the clipping.

    Args:
        synchronize (callable): Waits for the device's queued work; called
            at each span's start and end.

    Attributes:
        seconds (collections.Counter): ``part -> seconds``.
        others (set): The names of the functions counted as
            :data:`OTHER`.
    """
    name = 'PartTimer'

    def __init__(self, synchronize=None):
        self.synchronize = synchronize or (lambda: None)
        self.seconds = collections.Counter()
        self.others = set()
        self._open = []  # [start, seconds of the spans inside]

    def start(self):
        self.synchronize()
        self._open.append([time.perf_counter(), 0.0])

    def stop(self, part):
        self.synchronize()
        start, inside = self._open.pop()
        elapsed = time.perf_counter() - start
        self.seconds[part] += elapsed - inside
        if self._open:
            self._open[-1][1] += elapsed

    @contextlib.contextmanager
    def span(self, part):
        self.start()
        try:
            yield
        finally:
            self.stop(part)

    def function_stop(self, function):
        # An old-style Function (Chainer's hinge loss) comes wrapped.
        if isinstance(function, chainer.function.FunctionAdapter):
            function = function.function
        name = type(function).__name__
        part = FUNCTION_PARTS.get(name, OTHER)
        if part == OTHER:
            self.others.add(name)
        self.stop(part)

    def forward_preprocess(self, function, in_data):
        self.start()

    def forward_postprocess(self, function, in_data):
        self.function_stop(function)

    def backward_preprocess(self, function, in_data, out_grad):
        self.start()

    def backward_postprocess(self, function, in_data, out_grad):
        self.function_stop(function)


class TimedQuantizer(quantizers.Quantizer):
    """``quantizer``, whose calls count as :data:`QUANTIZERS` on
    ``timer``."""

    def __init__(self, quantizer, timer):
        self.quantizer, self.timer = quantizer, timer
        self.spec, self.levels = quantizer.spec, quantizer.levels
        self.is_sign_at_test_time = quantizer.is_sign_at_test_time

    def __call__(self, x):
        with self.timer.span(QUANTIZERS):
            return self.quantizer(x)

    def activation(self, x, rectified=False):
        with self.timer.span(QUANTIZERS):
            return self.quantizer.activation(x, rectified)


@contextlib.contextmanager
def timed_quantizers(model, timer):
    """Within it, the input and weight quantizers of ``model``'s layers
    count on ``timer`` (``none``, no quantizer, is not one); as before
    after it."""
    quantized = [(link, role, getattr(link, role))
                 for link in model.links() for role in LAYER_QUANTIZERS
                 if isinstance(getattr(link, role, None),
                               quantizers.Quantizer) and
                 not isinstance(getattr(link, role), quantizers.Identity)]
    for link, role, quantizer in quantized:
        setattr(link, role, TimedQuantizer(quantizer, timer))
    try:
        yield
    finally:
        for link, role, quantizer in quantized:
            setattr(link, role, quantizer)


def parts_of_step(trainer, synchronize=None):
    """One step of ``trainer`` (:class:`training_step.Trainer`) timed part
    by part.

    Weight clipping as an optimizer hook runs within the update, after
    it; it is timed by running the optimizer's post-update hooks once
    more (clipping what is clipped already costs what clipping does) and
    taken out of the update's time. Where the update clips in its own
    pass (:mod:`~quantized_net.training.fused_adam`), there is no such
    hook, and the clipping is the update's.

    Returns:
        tuple: ``({part: seconds}, others)``, every part but
        :data:`GRAPH`, and the names of the functions counted as
        :data:`OTHER`.
    """
    timer = PartTimer(synchronize)
    with timed_quantizers(trainer.model, timer), timer:
        trainer.forward_backward()
    with timer.span(UPDATE):
        trainer.update()
    with timer.span(CLIP):
        trainer.optimizer.call_hooks('post')
    timer.seconds[UPDATE] -= timer.seconds[CLIP]
    return timer.seconds, timer.others


def time_parts(trainers, rounds, warmup, synchronize=None, calls=1):
    """Each trainer's step and its parts, side by side: in each round,
    every trainer in turn takes ``calls`` plain steps, timed, then
    ``calls`` instrumented ones (:func:`parts_of_step`).

    Args:
        trainers (list): ``(name, trainer)`` pairs.
        rounds (int): Timed rounds.
        warmup (int): Untimed rounds before them.
        synchronize (callable): Waits for the device's queued work.
        calls (int): Steps of each kind a trainer takes in a round.

    Returns:
        tuple: ``({name: {part: seconds}}, others)``: for each trainer the
        median of every part over all its instrumented steps, and
        :data:`GRAPH` the median plain step less all the other parts; and
        the names of the functions counted as :data:`OTHER`.
    """
    synchronize = synchronize or (lambda: None)
    steps = {name: [] for name, _ in trainers}
    parts = {name: collections.defaultdict(list) for name, _ in trainers}
    others = set()
    for round_ in range(warmup + rounds):
        for name, trainer in trainers:
            for _ in range(calls):
                synchronize()
                start = time.perf_counter()
                trainer.step()
                synchronize()
                if round_ >= warmup:
                    steps[name].append(time.perf_counter() - start)
            for _ in range(calls):
                timed, seen = parts_of_step(trainer, synchronize)
                if round_ < warmup:
                    continue
                for part in PARTS[:-1]:
                    parts[name][part].append(timed[part])
                others |= seen
    table = {}
    for name, _ in trainers:
        medians = {part: statistics.median(values)
                   for part, values in parts[name].items()}
        medians[GRAPH] = statistics.median(steps[name]) - sum(
            medians.values())
        table[name] = medians
    return table, sorted(others)


if numba is not None:
    @kernel_cache.njit(parallel=True)
    def loads_and_stores(param, grad, m, v):
        """Adam's fused pass less its arithmetic: the same loads and
        stores, ``grad`` added to each of the others, in the form LLVM
        vectorizes (a parallel loop)."""
        for i in numba.prange(param.size):
            g = grad[i]
            m[i] += g
            v[i] += g
            param[i] += g


def update_against_memory(trainer, rounds, warmup):
    """The optimizer update of ``trainer`` (:class:`training_step.Trainer`
    on the CPU, after one step) against its memory traffic: side by side,
    its update and a pass over copies of its float32 arrays that loads
    each parameter, gradient and moment and stores the parameter and
    moments with an add each, on the calling thread as the update runs.

    Returns:
        tuple: ``(update seconds, pass seconds, bytes the pass moves)``,
        medians; None where numba is missing or the update is not
        Adam's on float32 arrays.
    """
    if numba is None or trainer.model.xp is not numpy:
        return None
    trainer.step()
    arrays = []
    for param in trainer.model.params():
        state = param.update_rule.state or {}
        group = [param.array, param.grad, state.get('m'), state.get('v')]
        if not all(isinstance(a, numpy.ndarray) and
                   a.dtype == numpy.float32 for a in group):
            return None
        arrays.append([a.copy().ravel() for a in group])

    def one_pass():
        with kernel_cache.calling_thread_only():
            for group in arrays:
                loads_and_stores(*group)
    seconds = timing.median_seconds(
        [('update', trainer.update), ('pass', one_pass)], rounds,
        warmup=warmup)
    moved = 7 * sum(group[0].nbytes for group in arrays)
    return seconds['update'], seconds['pass'], moved
