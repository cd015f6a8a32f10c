"""Every sub-command's help lists enum choices as the values a user types."""
from __future__ import annotations

import pytest

from vosbench.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_choice_values_not_enum_names(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "DatasetKind." not in text and "Track." not in text
    if "--dataset" in text:
        assert "davis2016" in text


def test_choices_metavar_lists_the_values():
    from vosbench.cli.choices import choices_metavar
    from vosbench.io.factory import DatasetKind

    assert choices_metavar(DatasetKind) == "{davis2016,davis2017,youtubevos,synthetic,folder,mose,mosev2,lvos,sav,vost}"


def test_run_help_lists_the_registered_methods(capsys):
    from vosbench.methods.registry import available_methods

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = "".join(capsys.readouterr().out.split())   # help text is wrapped, at hyphens too
    assert available_methods() and ",".join(available_methods()) in text
