"""Help text for enum choices, shared by the sub-commands."""
from __future__ import annotations

import enum
from typing import Iterable


def choices_metavar(choices: Iterable[enum.Enum]) -> str:
    """``{davis2016,davis2017,...}``: the values a user types.

    argparse lists choices with ``str()``, which for our ``str`` enums gives the member
    names (``DatasetKind.DAVIS2016``), not what the command line takes.
    """
    return "{" + ",".join(str(choice.value) for choice in choices) + "}"
