"""Exceptions raised by vosbench.

Library code raises; only the CLI turns an exception into an exit status.
Every input problem names the file it is about and what to do about it.
"""
from __future__ import annotations

from os import PathLike


class VosbenchError(Exception):
    """Base class of every error vosbench raises on purpose."""


class InputError(VosbenchError):
    """A file or folder given to vosbench is missing, unreadable or malformed."""

    def __init__(self, path: str | PathLike | None, problem: str, fix: str = ""):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: " if self.path else ""
        text = f"{where}{problem}"
        if fix:
            text += f" Fix: {fix}"
        super().__init__(text)

    def __reduce__(self):
        # Errors cross process boundaries (joblib workers): rebuild from the fields, not the message.
        return (type(self), (self.path, self.problem, self.fix))


class ValidationError(VosbenchError):
    """A results folder failed validation; `problems` lists every InputError found."""

    def __init__(self, problems: list[InputError]):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) found in the results:"
        lines = [head] + [f"  - {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more")
        super().__init__("\n".join(lines))

    def __reduce__(self):
        return (type(self), (self.problems,))
