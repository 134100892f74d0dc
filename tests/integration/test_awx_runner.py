"""The backup as AWX runs it: ansible-runner itself, only the AWS key pair AWX's credential injects, a Region from the
survey, survey answers as strings, the fact cache, and the artifacts (``set_stats``) a workflow reads."""

import json
import os
import sys

import ansible_runner
import pytest

from conftest import ANSIBLE_PLAYBOOK, COLLECTIONS_PATH
from test_backup import SQL, assert_nothing_left_behind, lab_snapshots
from test_backup_operations import untagged

pytestmark = pytest.mark.integration

FLEET = ["win-sql-01", "win-web-01", "win-xen-01"]
# What AWX's Amazon Web Services credential injects: a key pair, no Region.
AWX_ENVIRONMENT_DROPS = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")


def run_job(lab, tmp_path, monkeypatch, extravars):
    for name in AWX_ENVIRONMENT_DROPS:
        monkeypatch.delenv(name, raising=False)
    # ansible-runner finds ansible-playbook on PATH, as in an execution environment.
    monkeypatch.setenv("PATH", os.path.dirname(ANSIBLE_PLAYBOOK) + os.pathsep + os.environ["PATH"])
    private = tmp_path / "job"
    (private / "project").mkdir(parents=True)
    (private / "project" / "backup.yml").write_text("- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n",
                                                    encoding="utf-8")
    inventory = private / "inventory.ini"
    lab.write_inventory(str(inventory))
    environment = {name: value for name, value in lab.state["environment"].items() if name not in AWX_ENVIRONMENT_DROPS}
    environment.update(ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_PYTHON_INTERPRETER=sys.executable,
                       ANSIBLE_NOCOLOR="1")
    runner = ansible_runner.run(private_data_dir=str(private), playbook="backup.yml", inventory=str(inventory),
                                extravars=extravars, envvars=environment, quiet=True)
    stats_event = next(event for event in reversed(list(runner.events)) if event["event"] == "playbook_on_stats")
    return runner, stats_event["event_data"].get("artifact_data", {})


def cached_facts(runner, host):
    """A host's facts in the job's fact cache. ansible-core 2.19 names the file ``s1_<host>`` and keeps each fact's
    origin tags beside it, which ansible-runner 2.4's own get_fact_cache does not read yet."""
    folder = runner.config.fact_cache
    (name,) = [n for n in os.listdir(folder) if n in (host, "s1_" + host)]
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        cached = json.load(handle)
    return untagged(json.loads(cached["__payload__"])) if "__payload__" in cached else cached


def test_aws_keys_and_a_survey_region_back_up_three_hosts(lab, tmp_path, monkeypatch):
    survey = {"target_hosts": ",".join(FLEET), "aws_region": lab.state["environment"]["AWS_REGION"],
              "backup_all_data_volumes": "true", "backup_include_boot": "false", "backup_max_concurrent": 10,
              "backup_fail_on_fallback": "true"}
    # AWX adds its own variables to every job's extra vars, the job id among them.
    runner, artifacts = run_job(lab, tmp_path, monkeypatch, dict(survey, awx_job_id=4711, tower_job_id=4711))
    assert runner.rc == 0, runner.stdout.read()
    assert artifacts["shadowsnap_backup_counts"] == {"ok": 3, "fallback": 0, "failed": 0}
    assert sorted(artifacts["shadowsnap_backup"]) == FLEET
    for host in FLEET:
        assert cached_facts(runner, host)["backup_result"]["consistency"] == "application"
    boots = {v["volume_id"] for name in FLEET for v in lab.instance(name)["volumes"] if v["drive"] == "C:"}
    assert lab_snapshots(lab) and not boots & {s["VolumeId"] for s in lab_snapshots(lab)}
    assert {s["tags"].get("shadowsnap:awx-job-id") for s in lab_snapshots(lab)} == {"4711"}, "every set names its job"


def test_without_a_region_the_job_fails_before_anything_exists(lab, tmp_path, monkeypatch):
    survey = {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_type": "full"}
    runner, artifacts = run_job(lab, tmp_path, monkeypatch, survey)
    assert runner.rc != 0
    assert artifacts["shadowsnap_backup_counts"] == {"ok": 0, "fallback": 0, "failed": 1}
    assert "region" in artifacts["shadowsnap_backup"][SQL]["error"]
    assert lab_snapshots(lab) == []
    assert lab.vss_events(SQL, event="Freeze") == []
    assert_nothing_left_behind(lab)
    assert not os.environ.get("AWS_REGION")
