"""Error against epochs, from a run's LogReport: the series, the figure with
the reported epoch (:mod:`reported`) and reference lines marked, and
``plot_error.py``'s work."""
import math
import os
import warnings

from quantized_net.atomic_file import write_figure
from quantized_net.training import reported as reported_module
from quantized_net.training import result_dir
from quantized_net import errors

# Labelled errors (%) on the log axis.
TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
FIGURE_FILE = 'error.png'


def error_series(log):
    """``[(name, epochs, errors in %)]`` for each error the log has.

    Args:
        log (list of dict): LogReport entries, one an epoch.

    Returns:
        list: In the order of :data:`reported.ACCURACY_KEYS`; a series
        skips the entries without its key. Training error is measured with
        dropout on, so it sits above the others.

    Raises:
        errors.UsageError: The log is not a list of entries, or has no
            accuracy.
    """
    if not isinstance(log, list) or not all(isinstance(entry, dict)
                                            for entry in log):
        raise errors.UsageError('the log is not a list of LogReport entries')
    series = []
    for name, _ in reported_module.ACCURACY_KEYS:
        points = [(entry.get('epoch'), reported_module.error(entry, name))
                  for entry in log]
        points = [(epoch, value) for epoch, value in points
                  if reported_module.is_epoch(epoch) and value is not None]
        if points:
            epochs, values = zip(*points)
            series.append((name, list(epochs), list(values)))
    if not series:
        raise errors.UsageError('the log has no accuracy to plot')
    return series


def draw(series, path, lines=(), reported=None, title=None):
    """Writes the figure of ``series`` to ``path`` (whole or not at all).

    Args:
        series: From :func:`error_series`.
        path (str): File to write; its suffix names the format.
        lines: ``(error in %, label)`` pairs drawn as horizontal lines.
        reported (reported.Reported): The run's reported result, marked
            with its test error.
        title (str): Figure title.
    """
    import matplotlib
    matplotlib.use('Agg')  # the figure goes to a file; no display needed
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, epochs, values in series:
        axes.plot(epochs, values, label='{} error'.format(name))
    for value, label in lines:
        axes.axhline(value, color='gray', linestyle='--', linewidth=1)
        axes.annotate('{} ({:.2f}%)'.format(label, value), (0, value),
                      xycoords=('axes fraction', 'data'),
                      xytext=(4, 2), textcoords='offset points', fontsize=8)
    if reported is not None and reported.test_error is not None:
        axes.plot([reported.epoch], [reported.test_error], 'o',
                  color='black', label='{}: test {:.2f}%'.format(
                      reported, reported.test_error))
    # Errors fall by an order of magnitude: a log axis keeps the end legible.
    with warnings.catch_warnings():  # a curve all zero has no log
        warnings.simplefilter('ignore', UserWarning)
        axes.set_yscale('log')
    # Only positive errors go on a log axis; none at all (a run that made
    # no error) leaves the axis its full range.
    values = [e for _, _, curve in series for e in curve if e > 0] + [
        value for value, _ in lines] or [TICKS[0], TICKS[-1]]
    low = 2 ** math.floor(math.log2(min(values) * 0.9))
    high = min(max(values) * 1.1, 100)
    axes.set_ylim(low, high)
    axes.set_yticks([t for t in TICKS if low <= t <= high])
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.yaxis.set_minor_formatter(NullFormatter())
    axes.set_xlabel('epoch')
    axes.set_ylabel('error (%)')
    axes.grid(True, which='both', alpha=0.3)
    axes.legend(fontsize=8)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    write_figure(figure, path)


def reference_lines(pairs):
    """``[(error in %, label)]`` of the ``(ERROR, LABEL)`` text pairs of
    ``--line``; ValueError says what is wrong with them."""
    try:
        lines = [(float(value), label) for value, label in pairs]
    except ValueError:
        raise ValueError('--line takes an error in % and a label, got {}'
                         .format([list(pair) for pair in pairs]))
    if any(not 0 < value <= 100 for value, _ in lines):
        raise ValueError('--line errors must be in (0, 100] %')
    return lines


def figure_formats():
    """The suffixes of the formats matplotlib writes (``'png'``,
    ``'svg'``, ...), sorted."""
    import matplotlib
    matplotlib.use('Agg')  # the figure goes to a file; no display needed
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    return sorted(FigureCanvasAgg.get_supported_filetypes())


def check_figure_path(path):
    """errors.UsageError unless a figure can be written to ``path``: its
    directory exists, it is not a directory, and its suffix names a format
    matplotlib writes (one line that names them)."""
    if os.path.isdir(path):
        raise errors.UsageError('cannot write {}: it is a directory; give a '
                                'file name, such as {}.'.format(
                                    path, os.path.join(path, FIGURE_FILE)))
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise errors.UsageError('cannot write {}: its directory does not '
                                'exist.'.format(path))
    try:
        formats = figure_formats()
    except ImportError:
        raise errors.UsageError('plotting needs matplotlib: pip install '
                                'matplotlib')
    suffix = os.path.splitext(path)[1][1:]
    if suffix.lower() not in formats:
        raise errors.UsageError(
            'cannot write {}: {}; give a file name ending in one of {}.'
            .format(path, 'matplotlib writes no .{} figure'.format(suffix)
                    if suffix else 'its name has no suffix to name a format',
                    ', '.join('.' + name for name in formats)))


def plot_run(result, out=None, lines=(), title=None):
    """Draws the error curves of the run in ``result`` to ``out`` (by
    default its ``error.png``) and prints what it wrote and the result
    the run reports.

    Raises:
        errors.UsageError: The log cannot be read or plotted, or ``out``
            cannot be written.
    """
    result_dir.check_result(result)
    out = out or os.path.join(result, FIGURE_FILE)
    check_figure_path(out)
    log = result_dir.read_log(result)
    series = error_series(log)
    reported = reported_module.reported(log)
    try:
        draw(series, out, lines, reported, title)
    except ImportError:
        raise errors.UsageError('plotting needs matplotlib: pip install '
                                'matplotlib')
    print('wrote {}: {} epochs'.format(out, len(log)))
    if reported is not None:
        print(reported.summary())
