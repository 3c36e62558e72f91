"""A command's standard streams, made fit for its one-line messages: an
output the shell closed (``>&-``) becomes a sink, so that printing a table
cannot end a run, and text the terminal's encoding cannot show is escaped
rather than an error."""
import os
import sys


def make_usable():
    """Replaces a closed stdout or stderr with ``os.devnull``, and makes
    both escape what their encoding cannot write (stderr already does).
    Called before Chainer is imported: its reports bind ``sys.stdout`` as
    a default argument then."""
    for name in ('stdout', 'stderr'):
        stream = getattr(sys, name)
        if stream is None:
            setattr(sys, name, open(os.devnull, 'w'))
        elif hasattr(stream, 'reconfigure'):
            stream.reconfigure(errors='backslashreplace')
