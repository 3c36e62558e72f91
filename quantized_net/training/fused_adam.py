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
AdaBound or weight decay, on the GPU, or without numba, it is Chainer's
update, then the clipping.

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


class AdamRule(adam.AdamRule):
    """:class:`chainer.optimizers.adam.AdamRule` with the fused CPU
    update where it applies, and ``clip``
    (:class:`~weight_clip.WeightClip` or None) after each update."""

    def __init__(self, parent_hyperparam=None, clip=None, **hyperparams):
        super(AdamRule, self).__init__(parent_hyperparam, **hyperparams)
        self.clip = clip

    def update_core(self, param):
        if not self._fused(param):
            super(AdamRule, self).update_core(param)
            if self.clip is not None:
                self.clip(self, param)

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
    """:class:`chainer.optimizers.Adam` whose rules are :class:`AdamRule`.

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

    def create_update_rule(self):
        return AdamRule(self.hyperparam, clip=self.clip)
