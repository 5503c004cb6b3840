"""Errors a user of the load generator can cause, and nothing else.

    SlabenchError            base: a user error; str() is one line saying what and how to fix
    ├── DatasetError         a prompt source (file, length spec) that cannot be used
    └── LoadSpecError        an arrival or load-shape option that cannot be used

Both subclasses are also `ValueError`s, so that code validating options (argparse `type=`
functions included) treats them as the bad values they are. Programming errors (a negative
worker index, a call after close) stay plain `ValueError`/`RuntimeError`.
"""

from __future__ import annotations

__all__ = ["DatasetError", "LoadSpecError", "SlabenchError"]


class SlabenchError(Exception):
    """A user error. The message is folded onto one line, whatever the caller passed."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.splitlines()))


class DatasetError(SlabenchError, ValueError):
    """A dataset source, or a prompt/output length spec, that cannot be used."""


class LoadSpecError(SlabenchError, ValueError):
    """An arrival schedule or load-shape spec that cannot be used."""
