"""blocking.py: the block sizes keep what the kernels count in range."""
from quantized_net.packed.format import WORD_BITS
from quantized_net.training.mnist import PIXEL_MAX
from quantized_net.packed.kernels import blocking, cpu_features


def test_a_chunk_of_pairs_fits_the_sixteen_bit_counters():
    assert blocking.PAIR_CHUNK * 2 * PIXEL_MAX < 2 ** 16


def test_the_avx2_byte_counters_do_not_overflow():
    # Two lookups of at most 4 a step: at most 8 a byte lane and step.
    assert blocking.STEP_CHUNK['avx2'] * 8 < 2 ** 8


def test_units_of_a_task_are_whole_words_and_vectors():
    assert blocking.MASK_UNITS % WORD_BITS == 0
    assert blocking.MASK_UNITS % 16 == 0  # 16 16-bit counters a vector
    assert blocking.TILE['avx2'][1] % 4 == 0  # totals 4 counters at a time


def test_every_form_has_a_tile():
    assert set(blocking.TILE) == set(blocking.STEP_CHUNK) == \
        set(cpu_features.FORMS)
