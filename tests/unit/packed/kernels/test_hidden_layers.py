"""hidden_layers.py: every form's hidden and last layers against the float
+-1 products, on every width class: one word and less, whole and partial
words and vectors, past the avx2 chunk of 31 steps."""
import glob
import os
import subprocess
import sys

import numpy
import pytest

import helpers

pytest.importorskip('numba')

from quantized_net.packed import format as packed_format  # noqa: E402
from quantized_net.packed.kernels import hidden_layers  # noqa: E402
from quantized_net.packed.kernels import layouts, thresholds  # noqa: E402
from helpers import random_signs, reference_fires  # noqa: E402

# Widths 1, 63, 64, 65, 130, 200, 784, 4096, 8257, images 0 (no rows) to
# 33, units past whole tiles and words; a batch of one reads the avx2
# weights as packed bits (layouts.PACKED_BATCH).
SHAPES = [(1, 1, 1), (5, 7, 63), (6, 3, 64), (33, 70, 65), (17, 130, 130),
          (4, 129, 200), (2, 64, 784), (3, 9, 8257), (2, 130, 4096),
          (0, 5, 10), (3, 0, 64), (1, 70, 65), (1, 130, 784), (1, 9, 8257),
          (1, 64, 2048)]


@pytest.mark.parametrize('m,n,k', SHAPES)
def test_hidden_layer_and_dot_equal_float_products(hidden_form, m, n, k):
    form = hidden_form
    rng = numpy.random.RandomState(k + 3)
    x, w = random_signs(rng, (m, k)), random_signs(rng, (n, k))
    t = rng.randint(-k // 4, k // 4 + 1, n).astype(numpy.int32)
    t[:2] = [-k - 1, k + 1][:n]  # always, never
    flip = rng.rand(n) < 0.5
    packed_x = layouts.layout(packed_format.pack_signs(x), form)
    packed_w = layouts.weights(packed_format.pack_signs(w), n, form)
    out = hidden_layers.sign_layer(packed_x, packed_w,
                                   thresholds.pop_limits(t, k), flip, form)
    # In the layout of the next layer's input, its padding 0: the next
    # layer adds nothing of it.
    numpy.testing.assert_array_equal(out, layouts.layout(
        reference_fires(x.dot(w.T), t, flip), form))
    d = hidden_layers.dot(packed_x, packed_w, k, n, form)
    assert d.dtype == numpy.int32
    numpy.testing.assert_array_equal(d, x.dot(w.T))


def test_extremes(hidden_form):
    k = 130
    ones = layouts.layout(packed_format.pack_signs(numpy.ones((1, k))),
                          hidden_form)
    w = layouts.weights(packed_format.pack_signs(numpy.array(
        [[1.] * k, [-1.] * k])), 2, hidden_form)
    assert hidden_layers.dot(ones, w, k, 2, hidden_form).tolist() == \
        [[k, -k]]


# A process that loads a form's entry point, a closure over the form's
# name, from numba's cache: one hit, no compilation.
CACHED = '''
import numpy
from quantized_net.packed.kernels import hidden_layers, layouts
x = layouts.layout(numpy.zeros((1, 1), numpy.uint64), 'scalar')
w = layouts.weights(numpy.zeros((1, 1), numpy.uint64), 1, 'scalar')
hidden_layers.dot(x, w, 64, 1, 'scalar')
stats = hidden_layers.DOTS['scalar'].stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
'''


def test_a_forms_entry_points_are_cached():
    x = layouts.layout(numpy.zeros((1, 1), numpy.uint64), 'scalar')
    w = layouts.weights(numpy.zeros((1, 1), numpy.uint64), 1, 'scalar')
    assert hidden_layers.dot(x, w, 64, 1, 'scalar').tolist() == [[64]]
    result = subprocess.run([sys.executable, '-c', CACHED],
                            capture_output=True, text=True,
                            env=helpers.SCRIPT_ENV, cwd=helpers.ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['1', '0']


def test_an_entry_point_compiled_over_a_cached_kernel_loads(tmp_path):
    # The entry point, not parallel itself, compiled in a process that
    # loaded the parallel kernel it calls from the cache, then loaded from
    # the cache in a third: numba does not start its threads for it there
    # (numba issue 8578), and the first parallel region crashed the
    # process until the Python side started them.
    env = dict(helpers.SCRIPT_ENV, NUMBA_CACHE_DIR=str(tmp_path))

    def run():
        return subprocess.run([sys.executable, '-c', CACHED],
                              capture_output=True, text=True, env=env,
                              cwd=helpers.ROOT)
    assert run().returncode == 0
    entry = glob.glob(str(tmp_path / '**' / 'hidden_layers._dot_of.*'),
                      recursive=True)
    assert entry
    for path in entry:
        os.remove(path)
    assert run().stdout.split() == ['0', '1']  # compiled again
    loaded = run()
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ['1', '0']
