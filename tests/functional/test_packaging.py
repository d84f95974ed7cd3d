"""`chalice package --merge-template infra/resources.yaml` gives a deployable template that
cfn-lint accepts, holding both chalice's functions and the resources of infra/."""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

from chalicelib.provision import load_template

PROJECT_DIR = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory):
    out = tmp_path_factory.mktemp("package")
    env = dict(os.environ, AWS_DEFAULT_REGION="us-east-1")
    chalice = pathlib.Path(sys.executable).with_name("chalice")
    result = subprocess.run([str(chalice), "package", "--stage", "prod", "--merge-template",
                             "infra/resources.yaml", str(out)], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "sam.yaml"


def test_the_merged_template_passes_cfn_lint(packaged):
    from cfnlint.api import lint_file

    matches = lint_file(packaged)
    assert [str(m) for m in matches] == []


def test_the_merged_template_holds_the_api_and_every_infra_resource(packaged):
    from chalicelib.provision import _TemplateLoader

    template = yaml.load(packaged.read_text(), Loader=_TemplateLoader)
    resources = template["Resources"]
    assert set(load_template()["Resources"]) <= set(resources)
    api = resources["APIHandler"]["Properties"]
    assert api["Environment"]["Variables"]["SLUICE_STAGE"] == "prod"
    assert api["Environment"]["Variables"]["SLUICE_ALLOW_PRIVATE_NETWORKS"] == "false"
    assert api["Runtime"] == f"python3.{sys.version_info.minor}"
