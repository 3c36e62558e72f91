"""What the benchmark commands measure, each against a baseline run in the
same process: :mod:`training_step` and :mod:`quantizer_speed`
(``bench.py``), :mod:`allreduce` (``bench_allreduce.py``), :mod:`packed`
(``bench_packed.py``), all timed by :mod:`timing`.
"""
