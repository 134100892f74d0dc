"""Recovery drills: playbooks/restore_drill.yml through real ansible-playbook runs against the lab, with a worker
server (win-drill-01) beside the default fleet.

Proven on the lab's state: each host's newest set is restored onto the worker, its embedded shadow copies reverted
there, the application invariant check (the lab's, run as a user check) passes on the worker's copy of SQL Server's
data and log; every set carries its verdict in ``shadowsnap:drill``; afterwards the worker has exactly its own disks,
no volume of any drill exists and the fleet's volumes are untouched. A set whose embedded shadow copy is unusable on
the worker fails its drill, says why, is tagged ``failed`` - and is still cleaned up.
"""

import json
import os

import pytest

from lab.topology import DEFAULT_TOPOLOGY, copy_topology
from test_backup import SQL, backup
from test_restore_volumes import contents, volumes_of

pytestmark = pytest.mark.integration

DRILL = "- ansible.builtin.import_playbook: shadowsnap.ec2.restore_drill\n"
WORKER = "win-drill-01"
FLEET = ["win-sql-01", "win-web-01", "win-xen-01"]
CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "drill_checks", "lab_application.yml")
WORKER_HOST = {"name": WORKER, "instance_type": "m5.large", "style": "nitro",
               "windows": {"os": "2022", "edition": "Datacenter", "locale": "en-US"},
               "volumes": [{"device": "/dev/sda1", "size": 60, "drive": "C:"}]}


@pytest.fixture(name="drill_lab")
def drill_lab_fixture(lab, tmp_path):
    """The default fleet and a worker; (the lab, its inventory)."""
    lab.reset(topology=copy_topology(DEFAULT_TOPOLOGY) + [dict(WORKER_HOST)])
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    path = tmp_path / "drill.ini"
    lab.write_inventory(str(path))
    return lab, str(path)


def drill(lab, ansible_playbook, inventory, tmp_path, **variables):
    """(the run, the report, the run's custom stats) of playbooks/restore_drill.yml."""
    report_path = tmp_path / "drill-report.json"
    extra = {"target_hosts": ",".join(FLEET), "restore_worker": WORKER, "restore_drill_check_tasks": CHECKS,
             "lab_control_url": lab.url, "lab_application_hosts": [SQL], "restore_report_path": str(report_path)}
    extra.update(variables)
    run = ansible_playbook(lab, DRILL, extra, inventory=inventory, environment={"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    return run, report, json.loads(run.stdout).get("global_custom_stats", {})


def set_tags(lab, set_id):
    snapshots = lab.ec2().describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:shadowsnap:set-id", "Values": [set_id]}])["Snapshots"]
    return [{t["Key"]: t["Value"] for t in s["Tags"]} for s in snapshots]


def worker_as_it_was(lab, worker_volumes):
    """The worker has its own disks only; no volume of a drill is left anywhere."""
    instance_id = lab.instance(WORKER)["instance_id"]
    assert [a["volume_id"] for a in lab.attachments(instance_id)[instance_id]] == worker_volumes
    left = [v["VolumeId"] for v in volumes_of(lab).values()
            if any(t["Key"] == "shadowsnap:restore:id" for t in v.get("Tags", []))]
    assert left == [], "no restored volume is left behind"
    assert lab.host_state(WORKER)["exposures"] == {}


def test_a_scheduled_drill_of_three_hosts_restores_checks_tags_each_set_and_leaves_nothing_behind(
        drill_lab, ansible_playbook, tmp_path):
    lab, inventory = drill_lab
    lab.start_application(SQL, interval=0.005, checkpoint_every=100000)
    try:
        run, report = backup(lab, ansible_playbook, inventory, tmp_path, target_hosts=",".join(FLEET), backup_volumes=[],
                             backup_all_data_volumes=True, backup_set_id="")
    finally:
        lab.stop_application(SQL)
    assert run.rc == 0 and [h["consistency"] for h in report["hosts"]] == ["application"] * 3, run.stdout
    sets = {h["host"]: h["set_id"] for h in report["hosts"]}
    lab.application_transactions(SQL, count=5)
    fleet_volumes = {v["VolumeId"] for v in volumes_of(lab).values()}
    before = contents(lab, sorted(fleet_volumes))
    worker_volumes = [v["volume_id"] for v in lab.instance(WORKER)["volumes"]]

    run, report, stats = drill(lab, ansible_playbook, inventory, tmp_path, restore_drill_services="swprv")
    assert run.rc == 0, run.stdout[-3000:]
    results = {r["host"]: r for r in report["hosts"]}
    assert sorted(results) == FLEET and stats["shadowsnap_drill_counts"] == {"passed": 3, "failed": 0, "application": 3}
    for host, result in results.items():
        assert (result["status"], result["consistency"], result["set_id"]) == ("ok", "application", sets[host]), result
        assert result["drill"]["verdict"] == "passed" and result["drill"]["cleanup"]["status"] == "ok"
        assert {s["outcome"] for s in result["shadows"]} == {"reverted"}
        assert [(s["name"], s["status"]) for s in result["services"]] == [("swprv", "Running")], "a survey's text"
        tags = set_tags(lab, sets[host])
        assert {t["shadowsnap:drill"] for t in tags} == {"at=%s;verdict=passed;consistency=application"
                                                         % result["drill"]["tag"]["at"]}, tags
    sql = results[SQL]
    assert {v["source_volume_id"] for v in sql["volumes"]} == {v["volume_id"] for v in lab.instance(SQL)["volumes"]
                                                               if v["drive"] in ("D:", "E:", "F:")}
    worker_as_it_was(lab, worker_volumes)
    assert {v["VolumeId"] for v in volumes_of(lab).values()} == fleet_volumes
    assert contents(lab, sorted(fleet_volumes)) == before, "no volume of the fleet or the worker was changed"


def test_a_drill_of_a_set_whose_embedded_shadow_is_unusable_fails_says_why_and_still_cleans_up(
        drill_lab, ansible_playbook, tmp_path):
    lab, inventory = drill_lab
    run, report = backup(lab, ansible_playbook, inventory, tmp_path)
    assert run.rc == 0 and report["hosts"][0]["consistency"] == "application", run.stdout
    lab.configure_host(WORKER, shadow_loss_on_attach=True)
    worker_volumes = [v["volume_id"] for v in lab.instance(WORKER)["volumes"]]

    run, report, stats = drill(lab, ansible_playbook, inventory, tmp_path, target_hosts=SQL)
    assert run.rc != 0, "the job fails, so a scheduled run alerts"
    (result,) = report["hosts"]
    assert (result["status"], result["drill"]["verdict"]) == ("failed", "failed"), result
    assert "could not revert" in result["error"] and "missing" in result["error"], result["error"]
    assert "crash-consistent image only" in result["error"]
    assert stats["shadowsnap_drill_counts"] == {"passed": 0, "failed": 1, "application": 0}
    assert {t["shadowsnap:drill"].split(";")[1] for t in set_tags(lab, "sql-backup")} == {"verdict=failed"}
    assert result["drill"]["cleanup"]["status"] == "ok" and len(result["drill"]["cleanup"]["deleted_volume_ids"]) == 2
    worker_as_it_was(lab, worker_volumes)
