"""Self-checks for the exercises at the end of each notebook."""

from __future__ import annotations

import math


def check(question: str, answer: object, expected: object, tolerance: float = 1e-3) -> bool:
    """Print whether `answer` matches `expected` (numbers within `tolerance`); None means not answered."""
    if answer is None:
        print(f"{question}: not answered yet - replace None with your answer and run the cell again.")
        return False
    if isinstance(expected, (int, float)) and isinstance(answer, (int, float)):
        correct = math.isclose(float(answer), float(expected), rel_tol=0.0, abs_tol=tolerance)
    else:
        correct = str(answer).strip().lower() == str(expected).strip().lower()
    print(f"{question}: {'correct' if correct else 'not quite - try again (the solution is below)'}")
    return correct
