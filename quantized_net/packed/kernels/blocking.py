"""How the CPU kernels cut their work: the images and units of a task, the
rows of a tile, the steps of a chunk. Each size says what it keeps in
registers or in L1; ``docs/packed.md`` has what was measured choosing them.
"""

#: Activation rows and weight rows of each form's tile (:mod:`tiles`):
#: what fits in its 32 (AVX-512) or 16 (AVX2) vector registers, or 16
#: general ones, with the operands. The avx2 tile is one row against eight,
#: so that each weight vector is read by one xor, which takes it from
#: memory: 50 instructions a step, not the 60 of a 2 x 4 tile.
TILE = {'avx512': (4, 4), 'avx2': (1, 8), 'scalar': (2, 4)}
#: Vector steps a tile may take before its counters could overflow: the
#: avx2 tile counts in bytes, 8 a step (``31 * 8 = 248`` fits a byte).
STEP_CHUNK = {'avx512': 1 << 20, 'avx2': 31, 'scalar': 1 << 20}

#: Images a hidden-layer task: their rows (32 x 512 bytes in the avx2
#: layout of 2048 inputs) stay in L1 while a word's weight rows pass by NR
#: at a time, and a word's weights are fetched once per 32 images.
HIDDEN_IMAGES = 32

#: Units a first-layer task: its pair sums are 8 vectors of 16 16-bit
#: counters, held in registers.
MASK_UNITS = 128
#: Images a first-layer task: their counters (16 x 256 bytes) stay in L1
#: beside a chunk's masks.
PIXEL_IMAGES = 16
#: Pixel pairs a chunk: its masks (98 x 256 bytes) stay in L1 while a
#: block of images passes, its sums (at most ``98 * 510``) fit the 16-bit
#: counters, and MNIST's 392 pairs are 4 whole chunks.
PAIR_CHUNK = 98
#: Images whose nonzero pixel pairs are listed at a time: the lists of a
#: whole large batch would not stay in cache.
PAIR_LIST_IMAGES = 256
