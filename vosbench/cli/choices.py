"""Options declared the same way by every sub-command: enum-valued flags and ``--option KEY=JSON``."""
from __future__ import annotations

import argparse
import enum
import json
from typing import Any, Iterable

from vosbench.errors import VosbenchError


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


def add_option_argument(parser: argparse.ArgumentParser, help: str) -> argparse.Action:
    """The repeatable ``--option KEY=JSON`` of a method-specific setting (see `parse_options`)."""
    return parser.add_argument("--option", action="append", default=[], metavar="KEY=JSON", help=help)


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """``["crop=160", "flow=dis"]`` -> ``{"crop": 160, "flow": "dis"}``.

    The value is read as JSON (numbers, lists, true/false), else kept as the string typed;
    dashes in the key become underscores, so ``finetune-steps`` names ``finetune_steps``.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise VosbenchError(f"--option {pair!r} must look like KEY=VALUE (VALUE in JSON, e.g. crop=160)")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options
