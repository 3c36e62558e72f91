"""quantized_net.compat: what it changes in Chainer's behaviour on a GPU."""
import importlib.util
import warnings

import pytest

from quantized_net import compat
from chainer.backends import cuda


@pytest.mark.gpu
def test_cudnn_advice_only_where_it_can_be_followed():
    cuda.check_cuda_available._already_warned = False
    compat.quiet_unfollowable_cudnn_advice()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        cuda.check_cuda_available()
    advice = [w for w in caught if 'cuDNN is not enabled' in str(w.message)]
    # CuPy 14 has no cudnn module: nothing to reinstall it with.
    followable = importlib.util.find_spec('cupy.cudnn') is not None
    assert len(advice) == int(followable and not cuda.cudnn_enabled)
