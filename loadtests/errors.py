"""Errors a user of the load generator can cause, and nothing else.

    sla.errors.SlabenchError the one base of user errors (one line; ``report_error``)
    ├── DatasetError         a prompt source (file, length spec) that cannot be used
    └── LoadSpecError        an arrival or load-shape option that cannot be used

Both subclasses are also `ValueError`s, so that code validating options (argparse `type=`
functions included) treats them as the bad values they are. Programming errors (a negative
worker index, a call after close) stay plain `ValueError`/`RuntimeError`.
"""

from __future__ import annotations

from sla.errors import SlabenchError

__all__ = ["DatasetError", "LoadSpecError"]


class DatasetError(SlabenchError, ValueError):
    """A dataset source, or a prompt/output length spec, that cannot be used."""


class LoadSpecError(SlabenchError, ValueError):
    """An arrival schedule or load-shape spec that cannot be used."""
