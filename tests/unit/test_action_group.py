"""Every AWS-facing module is in the collection's action group, so a playbook's ``module_defaults`` (the Region of an
AWX job, docs/awx.md) reach it."""

import pathlib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_ec2_module_is_in_the_aws_action_group():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text(encoding="utf-8"))
    group = {entry for entry in runtime["action_groups"]["aws"] if isinstance(entry, str)}
    modules = {path.stem for path in (ROOT / "plugins" / "modules").glob("ec2_*.py")}
    assert modules - group == set()
    assert group - {path.stem for path in (ROOT / "plugins" / "modules").glob("*.py")} == set()
