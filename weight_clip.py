"""WeightClip: keeps every parameter in [low, high] after each update."""
import quantized_net  # noqa: F401  (before chainer: NumPy 2)
from chainer import backend


class WeightClip(object):
    """Optimizer hook that clips parameters in place after each update.

    Hubara et al. keep real-valued weights for the update and clip them to
    ``[-1, 1]``, beyond which the straight-through estimator no longer moves
    the quantized value. Like the original, the hook applies to every
    parameter of the optimizer's target. It clips in place on NumPy and CuPy
    arrays alike (the original's CPU path discarded the clipped copy).

    Args:
        low (float): Lower bound.
        high (float): Upper bound, at least ``low``.
        param_names (sequence of str): Clip only parameters of these names
            (``('W',)``: the weights alone, as in the paper); ``None``, the
            default, clips every parameter, as the original.

    Use::

        optimizer.add_hook(WeightClip())

    or, to clip in the update's own pass where it is fused,
    ``fused_adam.Adam(clip=WeightClip())``.
    """

    name = 'WeightClip'
    call_for_each_param = True
    timing = 'post'

    def __init__(self, low=-1.0, high=1.0, param_names=None):
        if not low <= high:
            raise ValueError(
                'WeightClip needs low <= high, got low={} high={}'.format(
                    low, high))
        self.low = low
        self.high = high
        self.param_names = None if param_names is None else set(param_names)

    def applies_to(self, param):
        """Whether it clips ``param``: by its name."""
        return self.param_names is None or param.name in self.param_names

    def __call__(self, rule, param):
        p = param.array
        if p is None or not self.applies_to(param):
            return
        xp = backend.get_array_module(p)
        xp.clip(p, self.low, self.high, out=p)
