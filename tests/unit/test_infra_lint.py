"""infra/resources.yaml passes cfn-lint without a single error, warning or informational match."""

import pathlib

from cfnlint.api import ManualArgs, lint_file

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "infra" / "resources.yaml"


def test_resources_template_has_no_lint_matches():
    matches = lint_file(TEMPLATE, ManualArgs(include_checks=["I"]))

    assert [str(match) for match in matches] == []
