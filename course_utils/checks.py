"""Small checks shared by the whole package: "this must be a whole number", "is that process still running"."""

from __future__ import annotations

import os
from typing import Any


def require_int(value: Any, name: str, minimum: int = 1, example: str | None = None) -> int:
    """`value` if it is an int (not a bool) >= `minimum`, else a ValueError naming the argument and the rule."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        hint = f" (e.g. {example})" if example else ""
        raise ValueError(f"{name} must be {rule}{hint}; got {value!r}.")
    return value


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists here; True when unsure, so that nothing live is ever removed.

    On Windows it always answers True: there `os.kill` would signal or end the process instead of probing it.
    """
    if os.name == "nt" or pid <= 0:  # ids <= 0 address process groups, not one process
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # PermissionError: it exists but belongs to another user; anything else: unsure
    return True
