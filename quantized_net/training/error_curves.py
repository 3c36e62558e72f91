"""Error against epochs, from a run's LogReport: the series, the epoch a
run reports (best validation), and the figure with reference lines."""
import io
import math

from quantized_net.atomic_file import atomic_write
from quantized_net import errors

#: Log keys of the three errors, by the name the figure gives them.
ACCURACY_KEYS = (('training', 'main/accuracy'),
                 ('validation', 'validation/main/accuracy'),
                 ('test', 'test/main/accuracy'))
_KEY = dict(ACCURACY_KEYS)
# Labelled errors (%) on the log axis.
TICKS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


def error(entry, name):
    """The error in % of log ``entry`` for ``name`` (training, validation
    or test); None where the entry has no number for it."""
    accuracy = entry.get(_KEY[name])
    if not isinstance(accuracy, (int, float)):
        return None
    return 100 * (1 - accuracy)


def error_series(log):
    """``[(name, epochs, errors in %)]`` for each error the log has.

    Args:
        log (list of dict): LogReport entries, one an epoch.

    Returns:
        list: In the order of :data:`ACCURACY_KEYS`; a series skips the
        entries without its key. Training error is measured with dropout
        on, so it sits above the others.
    """
    if not isinstance(log, list) or not all(isinstance(entry, dict)
                                            for entry in log):
        raise errors.UsageError('the log is not a list of LogReport entries')
    series = []
    for name, _ in ACCURACY_KEYS:
        points = [(entry.get('epoch'), error(entry, name))
                  for entry in log]
        points = [(epoch, value) for epoch, value in points
                  if isinstance(epoch, int) and value is not None]
        if points:
            epochs, values = zip(*points)
            series.append((name, list(epochs), list(values)))
    if not series:
        raise errors.UsageError('the log has no accuracy to plot')
    return series


def best_validation(log):
    """The log entry of the epoch with the lowest validation error (the
    first of equals), the one whose test error a run reports; None where
    the run had no validation."""
    entries = [entry for entry in log
               if error(entry, 'validation') is not None and
               isinstance(entry.get('epoch'), int)]
    if not entries:
        return None
    # max returns the first of equals.
    return max(entries, key=lambda entry: entry[_KEY['validation']])


def draw(series, path, lines=(), best=None, title=None):
    """Writes the figure of ``series`` to ``path`` (whole or not at all).

    Args:
        series: From :func:`error_series`.
        path (str): File to write; its suffix names the format.
        lines: ``(error in %, label)`` pairs drawn as horizontal lines.
        best (dict): The entry of :func:`best_validation`, marked on the
            test curve.
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
    best_test = None if best is None else error(best, 'test')
    if best_test is not None:
        axes.plot([best['epoch']], [best_test], 'o', color='black',
                  label='best validation, epoch {}: test {:.2f}%'.format(
                      best['epoch'], best_test))
    # Errors fall by an order of magnitude: a log axis keeps the end legible.
    axes.set_yscale('log')
    values = [e for _, _, curve in series for e in curve if e > 0] + [
        value for value, _ in lines]
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
    buffer = io.BytesIO()
    figure.savefig(buffer, format=path.rsplit('.', 1)[-1], dpi=100)
    plt.close(figure)
    with atomic_write(path, 'wb') as f:
        f.write(buffer.getvalue())
