"""The training part: a configuration becomes a trained model in a result
directory.

* configurations and flags: :mod:`presets`, :mod:`flags`,
  :mod:`run_description`;
* a run: :mod:`session` (one process's part of it), :mod:`processes` and
  :mod:`multi_node` (how it is spread over processes), :mod:`trainer`,
  :mod:`extensions`, :mod:`snapshot`, :mod:`fused_adam`;
* its data: :mod:`mnist`;
* its result directory: :mod:`result_dir` (names and records),
  :mod:`claim` (one run at a time), :mod:`safe_npz` (reading as data),
  :mod:`saved_model`;
* what a run reports: :mod:`reported`, :mod:`evaluation`,
  :mod:`error_curves`, and a grid of runs, :mod:`sweep` and
  :mod:`sweep_results`.
"""
