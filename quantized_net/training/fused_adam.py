"""Chainer's Adam with its CPU update fused into one pass.

Chainer's ``AdamRule.update_core_cpu`` is six NumPy expressions, each a
pass over the parameter and a temporary array; on the ``bnn`` preset's
10 million weights that memory traffic is half of a training iteration.
:class:`Adam` makes the same float operations, in the same order and
precision, in one numba loop over the elements, so a run gives the same
bits as with ``chainer.optimizers.Adam`` and its snapshots are the same.
With AMSGrad, AdaBound or weight decay, on the GPU, or without numba, it
is Chainer's update.

For a parameter :math:`w`, its gradient :math:`g`, the moments :math:`m,
v` and Chainer's bias-corrected step size :math:`\\alpha_t`:

.. math::

    m &\\leftarrow m + (1 - \\beta_1)(g - m), \\qquad
    v \\leftarrow v + (1 - \\beta_2)(g^2 - v), \\\\
    w &\\leftarrow w - \\eta\\,\\frac{\\alpha_t}{\\sqrt{v} + \\epsilon}\\,m.
"""
import numpy

import chainer
from chainer.optimizers import adam

from quantized_net import kernel_cache

numba = kernel_cache.numba  # None where numba does not import


if numba is not None:
    @kernel_cache.njit(parallel=True)
    def _update(param, grad, m, v, one_minus_beta1, one_minus_beta2,
                alpha_t, eps, minus_eta):
        # Every constant comes in the parameter's dtype, as NumPy 2 casts a
        # Python scalar to the array's type, so each operation rounds as
        # Chainer's NumPy expression does (no contraction into an FMA).
        for i in numba.prange(param.size):
            g = grad[i]
            m[i] += one_minus_beta1 * (g - m[i])
            v[i] += one_minus_beta2 * (g * g - v[i])
            step = alpha_t / (numpy.sqrt(v[i]) + eps)
            param[i] += minus_eta * (step * m[i])


class AdamRule(adam.AdamRule):
    """:class:`chainer.optimizers.adam.AdamRule` with the fused CPU
    update where it applies."""

    def update_core_cpu(self, param):
        hp = self.hyperparam
        data, grad = param.data, param.grad
        if (numba is None or grad is None or hp.amsgrad or hp.adabound
                or hp.weight_decay_rate != 0
                or data.dtype not in (numpy.float32, numpy.float64)
                or grad.dtype != data.dtype
                or not all(a.flags.c_contiguous for a in (
                    data, grad, self.state['m'], self.state['v']))):
            return super().update_core_cpu(param)
        self._check_eps(data.dtype.type)
        t = data.dtype.type
        _update(data.reshape(-1), grad.reshape(-1),
                self.state['m'].reshape(-1), self.state['v'].reshape(-1),
                t(1.0 - hp.beta1), t(1.0 - hp.beta2), t(self.alpha_t),
                t(hp.eps), t(-hp.eta))


class Adam(chainer.optimizers.Adam):
    """:class:`chainer.optimizers.Adam` whose rules are :class:`AdamRule`."""

    def create_update_rule(self):
        return AdamRule(self.hyperparam)
