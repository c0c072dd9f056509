"""Argument checks shared by the whole package: one message style for "this must be a whole number"."""

from __future__ import annotations

from typing import Any


def require_int(value: Any, name: str, minimum: int = 1, example: str | None = None) -> int:
    """`value` if it is an int (not a bool) >= `minimum`, else a ValueError naming the argument and the rule."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        hint = f" (e.g. {example})" if example else ""
        raise ValueError(f"{name} must be {rule}{hint}; got {value!r}.")
    return value
