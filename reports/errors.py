"""``ReportError``: a report that cannot be made (a bad argument, an unwritable file)."""

from __future__ import annotations

from sla.errors import SlabenchError

__all__ = ["ReportError"]


class ReportError(SlabenchError):
    """A report that cannot be made; str() is one line saying what is wrong and the fix."""
