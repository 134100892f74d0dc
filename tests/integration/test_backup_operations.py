"""The backup playbook run as AWX and pipelines run it: a fleet's counts, the Region, survey strings, re-runs, leftovers.

Real ansible-playbook runs against the lab; the json callback shows ``set_stats`` as AWX receives it.
"""

import datetime
import json
import re

import pytest

from test_backup import BACKUP, SQL, assert_nothing_left_behind, lab_snapshots

pytestmark = pytest.mark.integration

FLEET = ["win-sql-01", "win-web-01", "win-xen-01"]
STATS = {"ANSIBLE_SHOW_CUSTOM_STATS": "true"}
NO_REGION = {"AWS_REGION": None, "AWS_DEFAULT_REGION": None}


@pytest.fixture
def inventory(lab, tmp_path):
    path = tmp_path / "windows.ini"
    lab.write_inventory(str(path))
    return str(path)


def untagged(value):
    """A fact as Ansible's cache serialises it (2.19 keeps each value's origin tags beside it), without the tags."""
    if isinstance(value, dict):
        if "__ansible_type" in value and "value" in value:
            return untagged(value["value"])
        return {key: untagged(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untagged(item) for item in value]
    return value


def run_backup(lab, ansible_playbook, inventory, tmp_path, environment=None, **variables):
    report_path = tmp_path / "report.json"
    extra = {"target_hosts": SQL, "backup_volumes": ["D:", "E:"], "backup_report_path": str(report_path)}
    extra.update(variables)
    run = ansible_playbook(lab, BACKUP, extra, inventory=inventory, environment=dict(STATS, **(environment or {})))
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    stats = json.loads(run.stdout)["global_custom_stats"]
    return run, report, stats


def test_a_fleet_run_publishes_its_counts_once_over_all_hosts_and_caches_each_result(lab, ansible_playbook, inventory,
                                                                                     tmp_path):
    cache = tmp_path / "facts"
    run, report, stats = run_backup(lab, ansible_playbook, inventory, tmp_path, target_hosts=",".join(FLEET),
                                    backup_volumes=[], backup_all_data_volumes=True,
                                    environment={"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
                                                 "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)})
    assert run.rc == 0, run.stdout
    assert [h["status"] for h in report["hosts"]] == ["ok"] * 3
    assert stats["shadowsnap_backup_counts"] == {"ok": 3, "fallback": 0, "failed": 0}
    assert sorted(stats["shadowsnap_backup"]) == FLEET
    for host in FLEET:
        (path,) = [p for p in cache.iterdir() if p.name == host or p.name.endswith("_" + host)]
        cached = untagged(json.loads(json.loads(path.read_text(encoding="utf-8"))["__payload__"]))
        assert cached["backup_result"]["status"] == "ok", "the fact cache (AWX's fact storage) holds each result"


def test_without_a_region_the_backup_fails_before_anything_exists(lab, ansible_playbook, inventory, tmp_path):
    run, report, stats = run_backup(lab, ansible_playbook, inventory, tmp_path, environment=NO_REGION, backup_type="full")
    assert run.rc != 0
    (result,) = report["hosts"]
    assert result["status"] == "failed" and "nothing was created" in result["error"] and "region" in result["error"]
    assert stats["shadowsnap_backup_counts"] == {"ok": 0, "fallback": 0, "failed": 1}
    assert lab_snapshots(lab) == []
    assert lab.vss_events(SQL, event="Freeze") == [], "no shadow set was made"
    assert_nothing_left_behind(lab)


@pytest.mark.parametrize("option", ["aws_region", "backup_aws_region"])
def test_the_region_input_reaches_every_aws_call(lab, ansible_playbook, inventory, tmp_path, option):
    region = lab.state["environment"]["AWS_REGION"]
    variables = {option: region, "backup_type": "full"}
    run, report, _stats = run_backup(lab, ansible_playbook, inventory, tmp_path, environment=NO_REGION, **variables)
    assert run.rc == 0, run.stdout
    assert (report["hosts"][0]["status"], report["hosts"][0]["consistency"]) == ("ok", "application")
    assert {s["tags"]["shadowsnap:consistency"] for s in lab_snapshots(lab)} == {"application"}


@pytest.mark.parametrize("engine", ["crash", "shadow"])
def test_survey_answers_are_strings_and_behave_as_their_values(lab, ansible_playbook, inventory, tmp_path, engine):
    survey = {"backup_engine": engine, "backup_include_boot": "false", "backup_all_data_volumes": "false",
              "backup_keep_shadows": "false", "backup_restart_failed_writers": "false", "backup_hold_timeout": "600",
              "backup_max_concurrent": "10", "backup_leftover_age": "0", "backup_settle_after": "900",
              "backup_fail_on_fallback": "false", "backup_set_id": "survey-" + engine}
    run, report, _stats = run_backup(lab, ansible_playbook, inventory, tmp_path, **survey)
    assert run.rc == 0, run.stdout
    assert report["hosts"][0]["status"] == "ok"
    boot = next(v["volume_id"] for v in lab.instance(SQL)["volumes"] if v["drive"] == "C:")
    snapshotted = {s["VolumeId"] for s in lab_snapshots(lab)}
    assert snapshotted and boot not in snapshotted, "'false' from a survey keeps the boot volume out"


def test_a_set_id_that_exists_is_reported_and_nothing_new_is_made(lab, ansible_playbook, inventory, tmp_path):
    first, report, _stats = run_backup(lab, ansible_playbook, inventory, tmp_path, backup_set_id="nightly-1", backup_type="full")
    assert first.rc == 0, first.stdout
    snapshots = sorted(s["SnapshotId"] for s in lab_snapshots(lab))
    freezes = len(lab.vss_events(SQL, event="Freeze"))
    again, report, _stats = run_backup(lab, ansible_playbook, inventory, tmp_path, backup_set_id="nightly-1", backup_type="full")
    assert again.rc == 0, again.stdout
    (result,) = report["hosts"]
    assert (result["status"], result["consistency"], result["existing"]) == ("ok", "application", True)
    assert sorted(result["snapshots"].values()) == snapshots
    assert sorted(s["SnapshotId"] for s in lab_snapshots(lab)) == snapshots, "no second EBS set"
    assert len(lab.vss_events(SQL, event="Freeze")) == freezes, "no second shadow set"
    assert len(lab.vss_events(SQL, event="BackupComplete", writer="SqlServerWriter")) == 1


def test_a_set_an_earlier_run_left_unverified_is_settled_crash_by_the_next_run(lab, ansible_playbook, inventory, tmp_path):
    leftover = ansible_playbook(lab, """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A set taken under a VSS session that never reported back
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ instance_id }}"
        set_id: lost-run
        volumes: data
        engine: shadow
        consistency: unverified
""", {"instance_id": lab.instance(SQL)["instance_id"]})
    assert leftover.rc == 0, leftover.stdout
    ec2 = lab.ec2()
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ec2.create_tags(Resources=[s["SnapshotId"] for s in lab_snapshots(lab)],
                    Tags=[{"Key": "shadowsnap:created-at", "Value": old}])

    run, report, _stats = run_backup(lab, ansible_playbook, inventory, tmp_path, backup_set_id="next-run")
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    assert result["settled_leftovers"] == ["lost-run"] and result["settle_errors"] == []
    by_set = {}
    for snapshot in lab_snapshots(lab):
        by_set.setdefault(snapshot["tags"]["shadowsnap:set-id"], set()).add(snapshot["tags"]["shadowsnap:consistency"])
    assert by_set == {"lost-run": {"crash"}, "next-run": {"application"}}


def test_without_the_instance_id_the_plugin_makes_the_default_set_id_and_the_role_reads_it_back(
        lab, ansible_playbook, inventory, tmp_path):
    """An inventory that does not name the instance: the host's IMDS does, and the set id follows the one rule."""
    anonymous = tmp_path / "anonymous.ini"
    anonymous.write_text(re.sub(r" ec2_instance_id=\S+", "", open(inventory, encoding="utf-8").read()), encoding="utf-8")
    assert "ec2_instance_id" not in anonymous.read_text(encoding="utf-8")
    run, report, _stats = run_backup(lab, ansible_playbook, str(anonymous), tmp_path)
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    instance_id = lab.instance(SQL)["instance_id"]
    assert (result["status"], result["consistency"], result["instance_id"]) == ("ok", "application", instance_id)
    assert re.fullmatch(re.escape(instance_id) + r"-\d{8}T\d{6}Z", result["set_id"]), result["set_id"]
    assert {s["tags"]["shadowsnap:set-id"] for s in lab_snapshots(lab)} == {result["set_id"]}
    assert_nothing_left_behind(lab)
