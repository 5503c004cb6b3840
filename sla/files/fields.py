"""A JSON object read field by field into typed values, for the ``from_dict`` of a file format.

    obj = Fields(data, CapacityError, f"{path}: ")
    load = obj.number("load")                 # a finite number, else one line:
    # "runs/sweep/capacity.json: steps[2].load must be a number, got 'fast'"
    for step in obj.objects("steps"): ...     # nested objects name where they sit

A missing key reads as None (or the default) for the optional readers and fails for the
required ones; a value of the wrong type always fails. Booleans are not numbers, and numbers
must be finite. Every failure is one line of ``error`` (a ``SlabenchError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NoReturn, TypeVar

from sla.errors import SlabenchError

__all__ = ["Fields"]

T = TypeVar("T", bound=str)
_MISSING = object()


class Fields:
    def __init__(
        self, data: Mapping[str, object], error: type[SlabenchError], where: str = ""
    ) -> None:
        self.data = data
        self.error = error
        self.where = where  # the file and the path to this object: "x.json: steps[2]."

    def fail(self, key: str, what: str) -> NoReturn:
        value = self.data.get(key)
        got = "nothing" if key not in self.data else repr(value)
        raise self.error(f"{self.where}{key} must be {what}, got {got}")

    def _get(self, key: str, required: bool, what: str) -> object:
        value = self.data.get(key, _MISSING)
        if value is _MISSING or (value is None and required):
            if required:
                self.fail(key, what)
            return None
        return value

    def number(self, key: str) -> float:
        value = self.opt_number(key, required=True)
        assert value is not None
        return value

    def opt_number(self, key: str, *, required: bool = False) -> float | None:
        value = self._get(key, required, "a number")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(key, "a number")
        if not math.isfinite(value):
            self.fail(key, "a finite number")
        return float(value)

    def integer(self, key: str) -> int:
        value = self.opt_integer(key, required=True)
        assert value is not None
        return value

    def opt_integer(self, key: str, *, required: bool = False) -> int | None:
        value = self._get(key, required, "a whole number")
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "a whole number")
        return value

    def text(self, key: str) -> str:
        value = self.opt_text(key, required=True)
        assert value is not None
        return value

    def opt_text(self, key: str, *, required: bool = False) -> str | None:
        value = self._get(key, required, "text")
        if value is not None and not isinstance(value, str):
            self.fail(key, "text")
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._get(key, False, "true or false")
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(key, "true or false")
        return value

    def choice(self, key: str, choices: tuple[T, ...]) -> T:
        value = self.data.get(key)
        for choice in choices:
            if value == choice:
                return choice
        self.fail(key, "one of " + ", ".join(choices))

    def obj(self, key: str) -> Fields | None:
        """The object under ``key``; None when it is missing or null."""
        value = self._get(key, False, "an object")
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.fail(key, "an object")
        return Fields(value, self.error, f"{self.where}{key}.")

    def objects(self, key: str) -> list[Fields]:
        """The list of objects under ``key`` (missing: empty)."""
        value = self._get(key, False, "a list of objects")
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            self.fail(key, "a list of objects")
        return [Fields(v, self.error, f"{self.where}{key}[{i}].") for i, v in enumerate(value)]

    def texts(self, key: str) -> tuple[str, ...]:
        """The list of strings under ``key`` (missing: empty)."""
        value = self._get(key, False, "a list of text")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(key, "a list of text")
        return tuple(value)

    def numbers(self, key: str) -> tuple[float, ...]:
        """The list of finite numbers under ``key`` (missing: empty)."""
        value = self._get(key, False, "a list of numbers")
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(key, "a list of numbers")
        items = Fields({f"[{i}]": v for i, v in enumerate(value)}, self.error, self.where + key)
        return tuple(items.number(f"[{i}]") for i in range(len(value)))
