"""Enum-valued options, declared the same way by every sub-command."""
from __future__ import annotations

import argparse
import enum
from typing import Any, Iterable


def choices_metavar(choices: Iterable[enum.Enum]) -> str:
    """``{davis2016,davis2017,...}``: the values a user types.

    argparse lists choices with ``str()``, which for our ``str`` enums gives the member
    names (``DatasetKind.DAVIS2016``), not what the command line takes.
    """
    return "{" + ",".join(str(choice.value) for choice in choices) + "}"


def add_enum_argument(parser: argparse.ArgumentParser, flag: str, choices: Iterable[enum.Enum], *,
                      default: enum.Enum | None, **kwargs: Any) -> argparse.Action:
    """``--flag`` taking one of `choices` (members of one enum), parsed into the member and listed
    in the help as the values typed."""
    choices = list(choices)
    return parser.add_argument(flag, type=type(choices[0]), choices=choices, default=default,
                               metavar=choices_metavar(choices), **kwargs)
