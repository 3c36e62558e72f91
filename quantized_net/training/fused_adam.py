"""Chainer's Adam with its CPU update, and the weight clipping after it,
fused into one pass.

Chainer's ``AdamRule.update_core_cpu`` is six NumPy expressions, each a
pass over the parameter and a temporary array, and
:class:`~weight_clip.WeightClip` one more; on the ``bnn`` preset's 10
million weights that memory traffic is half of a training iteration.
:class:`Adam` makes the same float operations, in the same order and
precision, in one numba loop over the elements, clipping each element
as it is written, so a run gives the same bits as with
``chainer.optimizers.Adam`` and the hook, and its snapshots are the same.
The loop is compiled as numba's parallel loop, the form of it that LLVM
vectorizes (the plain loop's four arrays, three of them written, it does
not), and runs on the calling thread alone: on more, between OpenBLAS's
products, numba's idle threads spun on the cores the next product
needed, and made the iteration slower (docs/speed.md). With AMSGrad,
AdaBound or weight decay, or without numba, it is Chainer's update, then
the clipping.

On the GPU, Chainer launches its Adam kernel once for each parameter, and
the hook one clip each, each launch Python's work of tens of
microseconds: :class:`Adam` updates every float32 parameter of an update
in one launch of :data:`CUDA_SOURCE` (:func:`update_on_gpu`), Chainer's
kernel's expression and ``cupy.clip``'s, compiled as CuPy compiles its
own kernels (``-ftz=true``), so that the bits are those of Chainer's
update and the hook.

For a parameter :math:`w`, its gradient :math:`g`, the moments :math:`m,
v` and Chainer's bias-corrected step size :math:`\\alpha_t`:

.. math::

    m &\\leftarrow m + (1 - \\beta_1)(g - m), \\qquad
    v \\leftarrow v + (1 - \\beta_2)(g^2 - v), \\\\
    w &\\leftarrow \\mathrm{clip}\\Big(w - \\eta\\,
        \\frac{\\alpha_t}{\\sqrt{v} + \\epsilon}\\,m,\\ l,\\ h\\Big),

:math:`[l, h]` the clipping's bounds where it applies to :math:`w`, else
no clipping.
"""
import numpy

import chainer
from chainer.backends import cuda
from chainer.optimizers import adam

from quantized_net import kernel_cache

numba = kernel_cache.numba  # None where numba does not import


if numba is not None:
    @kernel_cache.njit(parallel=True)
    def _update(param, grad, m, v, one_minus_beta1, one_minus_beta2,
                alpha_t, eps, minus_eta, clips, low, high):
        # Every constant comes in the parameter's dtype, as NumPy 2 casts a
        # Python scalar to the array's type, so each operation rounds as
        # Chainer's NumPy expression does (no contraction into an FMA).
        # The clip is numpy.clip's: a NaN stays NaN.
        for i in numba.prange(param.size):
            g = grad[i]
            m[i] += one_minus_beta1 * (g - m[i])
            v[i] += one_minus_beta2 * (g * g - v[i])
            step = alpha_t / (numpy.sqrt(v[i]) + eps)
            w = param[i] + minus_eta * (step * m[i])
            if clips:  # selects, which vectorize, as branches do not
                w = low if w < low else w
                w = high if w > high else w
            param[i] = w


#: The GPU form: for every element of the parameters of an update, one
#: thread's step of Chainer's own Adam kernel (``AdamRule.update_core_gpu``,
#: its float32 expression as written there) and then ``cupy.clip``'s
#: expression, the bounds infinite where a parameter is not clipped (the
#: identity, NaN and infinities included). ``table`` holds, for each of
#: ``tensors`` parameters, the addresses of its data, gradient, ``m`` and
#: ``v``; then the running total of their elements; then its clipping
#: bounds, the low one's float32 bits in the low half of a word; then its
#: ``eta`` (the presets scale each layer's weights' steps).
#: The other scalars are the launch's (:meth:`Adam.launch_deferred`).
CUDA_SOURCE = r'''
typedef unsigned long long u64;

extern "C" __global__ void adam_update(
        const u64* __restrict__ table, int tensors, long long total,
        float alpha_t, float one_minus_beta1, float one_minus_beta2,
        float eps, float weight_decay_rate) {
    const u64* ends = table + 4 * tensors;
    const u64* bounds = ends + tensors;
    const u64* etas = bounds + tensors;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
         i < total; i += (long long)blockDim.x * gridDim.x) {
        int t = 0, last = tensors - 1;
        while (t < last) {
            int middle = (t + last) / 2;
            if ((u64)i < ends[middle]) last = middle; else t = middle + 1;
        }
        const long long j = i - (t ? (long long)ends[t - 1] : 0LL);
        float* param = (float*)table[4 * t];
        const float* grad = (const float*)table[4 * t + 1];
        float* m = (float*)table[4 * t + 2];
        float* v = (float*)table[4 * t + 3];
        const float low = __uint_as_float((unsigned int)bounds[t]);
        const float high = __uint_as_float((unsigned int)(bounds[t] >> 32));
        const float eta = __uint_as_float((unsigned int)etas[t]);
        float grad_ = grad[j];
        float m_ = m[j];
        float v_ = v[j];
        m_ += one_minus_beta1 * (grad_ - m_);
        v_ += one_minus_beta2 * (grad_ * grad_ - v_);
        m[j] = m_;
        v[j] = v_;
        float p = param[j];
        p -= eta * (alpha_t * m_ / (sqrtf(v_) + eps) +
                    weight_decay_rate * p);
        param[j] = low > high ? high : (p < low ? low :
                                        (p > high ? high : p));
    }
}
'''

#: Threads a block, and the most blocks, of :func:`update_on_gpu`'s
#: launch (a grid-stride loop beyond them).
CUDA_THREADS, CUDA_BLOCKS = 256, 4096


def cuda_kernel():
    """:data:`CUDA_SOURCE`'s kernel for the current device, compiled once
    a device, with the flush-to-zero CuPy's own kernels have."""
    return cuda.cupy.RawModule(code=CUDA_SOURCE, options=(
        '-ftz=true',)).get_function('adam_update')


if cuda.available:
    cuda_kernel = cuda.memoize(for_each_device=True)(cuda_kernel)


def _address(array):
    """Where ``array``'s data starts, on the device that holds it."""
    data = array.data
    return data.ptr if hasattr(data, 'ptr') else array.ctypes.data


def update_table(updates):
    """The ``uint64`` table of :data:`CUDA_SOURCE` for ``updates``, a list
    of ``(param, grad, m, v, low, high, eta)``: four float32 arrays of one
    size, the clipping's bounds (-inf and inf for none) and the step's
    scale."""
    n = len(updates)
    table = numpy.empty(7 * n, numpy.uint64)
    table[:4 * n] = [_address(a) for update in updates
                     for a in update[:4]]
    table[4 * n:5 * n] = numpy.cumsum([u[0].size for u in updates])
    table[5 * n:6 * n] = numpy.array([u[4:6] for u in updates],
                                     numpy.float32).view(numpy.uint64).ravel()
    table[6 * n:] = numpy.array([u[6] for u in updates],
                                numpy.float32).view(numpy.uint32)
    return table


def update_on_gpu(updates, hyperparameters, table_cache=None):
    """Adam's update and the clipping of every parameter of ``updates``
    (:func:`update_table`) in one launch of :data:`CUDA_SOURCE`.

    Args:
        updates (list): ``(param, grad, m, v, low, high, eta)`` tuples.
        hyperparameters (tuple): ``(alpha_t, 1 - beta1, 1 - beta2, eps,
            weight_decay_rate)`` as float32, Chainer's kernel's other
            scalars.
        table_cache (list): ``[host table, device table]`` of the last
            launch, reused where the table is the same (the arrays of one
            step are most often those of the last), replaced where not;
            None to upload it every time.
    """
    total = sum(u[0].size for u in updates)
    if not total:
        return
    table = update_table(updates)
    if table_cache and numpy.array_equal(table_cache[0], table):
        device_table = table_cache[1]
    else:
        device_table = cuda.cupy.asarray(table)
        if table_cache is not None:
            table_cache[:] = [table, device_table]
    blocks = min(-(-total // CUDA_THREADS), CUDA_BLOCKS)
    cuda_kernel()((blocks,), (CUDA_THREADS,), (
        device_table, numpy.int32(len(updates)), numpy.int64(total)) +
        tuple(hyperparameters))


class AdamRule(adam.AdamRule):
    """:class:`chainer.optimizers.adam.AdamRule` with the fused CPU
    update where it applies, and ``clip``
    (:class:`~weight_clip.WeightClip` or None) after each update; on the
    GPU, its update deferred to the optimizer's one launch where it
    applies (:meth:`Adam.update`)."""

    def __init__(self, parent_hyperparam=None, clip=None, **hyperparams):
        super(AdamRule, self).__init__(parent_hyperparam, **hyperparams)
        self.clip = clip
        #: Where the optimizer collects the updates of its launch, during
        #: its update; else None.
        self.deferred = None
        self._hooked = False

    def add_hook(self, hook, name=None, timing='auto'):
        # A hook of this rule alone runs around its update: that update is
        # then not deferred.
        super(AdamRule, self).add_hook(hook, name, timing)
        self._hooked = True

    def update_core(self, param):
        if self._defer(param):
            return
        if not self._fused(param):
            super(AdamRule, self).update_core(param)
            if self.clip is not None:
                self.clip(self, param)

    def _defer(self, param):
        """Adds ``param``'s update to the optimizer's launch, where that
        applies; whether it did."""
        hp = self.hyperparam
        data, grad = param.data, param.grad
        if (self.deferred is None or self._hooked or hp.amsgrad or
                hp.adabound or self._use_fp32_update or grad is None):
            return False
        arrays = (data, grad, self.state['m'], self.state['v'])
        if not all(isinstance(a, cuda.ndarray) and
                   a.dtype == numpy.float32 and a.flags.c_contiguous and
                   a.device == data.device for a in arrays):
            return False
        self._check_eps(numpy.float32)
        clips = self.clip is not None and self.clip.applies_to(param)
        bounds = ((self.clip.low, self.clip.high) if clips else
                  (-numpy.inf, numpy.inf))
        scalars = tuple(numpy.float32(s) for s in (
            self.alpha_t, 1 - hp.beta1, 1 - hp.beta2, hp.eps,
            hp.weight_decay_rate))
        self.deferred.append((arrays + bounds + (hp.eta,), scalars))
        return True

    def _fused(self, param):
        """Updates and clips ``param`` in one pass, where that applies;
        whether it did."""
        hp = self.hyperparam
        data, grad = param.data, param.grad
        if (numba is None or not isinstance(data, numpy.ndarray)
                or grad is None or hp.amsgrad or hp.adabound
                or hp.weight_decay_rate != 0
                or data.dtype not in (numpy.float32, numpy.float64)
                or grad.dtype != data.dtype
                or not all(a.flags.c_contiguous for a in (
                    data, grad, self.state['m'], self.state['v']))):
            return False
        self._check_eps(data.dtype.type)
        t = data.dtype.type
        clips = self.clip is not None and self.clip.applies_to(param)
        low, high = (self.clip.low, self.clip.high) if clips else (0, 0)
        with kernel_cache.calling_thread_only():
            _update(data.reshape(-1), grad.reshape(-1),
                    self.state['m'].reshape(-1),
                    self.state['v'].reshape(-1), t(1.0 - hp.beta1),
                    t(1.0 - hp.beta2), t(self.alpha_t), t(hp.eps),
                    t(-hp.eta), clips, t(low), t(high))
        return True


class Adam(chainer.optimizers.Adam):
    """:class:`chainer.optimizers.Adam` whose rules are :class:`AdamRule`;
    on the GPU, the float32 parameters of an update in one launch
    (:func:`update_on_gpu`, one for each device and set of scalars),
    before any other hook that runs after the update.

    Args:
        clip (weight_clip.WeightClip): Clipping that every rule applies
            after its update, in its pass where the pass is fused (rather
            than as an optimizer hook, a pass of its own after all
            updates: the same values, as each parameter's clipping reads
            that parameter alone); None for none.
        hyperparams: Chainer's Adam's.
    """

    def __init__(self, clip=None, **hyperparams):
        super(Adam, self).__init__(**hyperparams)
        self.clip = clip
        self._deferred = None
        self._tables = {}  # update_on_gpu's table_cache of each device

    def create_update_rule(self):
        return AdamRule(self.hyperparam, clip=self.clip)

    def setup(self, link):
        super(Adam, self).setup(link)
        # The first hook after the update: any other sees it done.
        self.add_hook(_LaunchDeferred(), timing='post')
        return self

    def update(self, lossfun=None, *args, **kwds):
        self._deferred = []
        rules = [param.update_rule for param in self.target.params()
                 if isinstance(param.update_rule, AdamRule)]
        for rule in rules:
            rule.deferred = self._deferred
        try:
            super(Adam, self).update(lossfun, *args, **kwds)
        finally:
            # Whatever the hook left: deferred after it ran (a later hook's
            # param.update(), or the hook removed), or before an error, as
            # Chainer's loop would have made those updates.
            try:
                self.launch_deferred()
            finally:
                for rule in rules:
                    rule.deferred = None
                self._deferred = None

    def launch_deferred(self):
        """The deferred updates, in one launch for each device and set of
        scalars; nothing outside :meth:`update`."""
        if not self._deferred:
            return
        deferred, self._deferred[:] = list(self._deferred), []
        groups = {}
        for arrays, scalars in deferred:
            device = cuda.get_device_from_array(arrays[0])
            groups.setdefault((device.id, scalars), (device, []))[1].append(
                arrays)
        for (device_id, scalars), (device, updates) in groups.items():
            with device:
                update_on_gpu(updates, scalars,
                              self._tables.setdefault(device_id, []))


class _LaunchDeferred(object):
    """The hook of :class:`Adam` that launches its deferred updates."""
    name = 'fused_adam_launch'
    call_for_each_param = False
    timing = 'post'

    def __call__(self, optimizer):
        optimizer.launch_deferred()
