"""Retention through real ansible-playbook runs of shadowsnap.ec2.retention against the lab.

The fleet: each of the lab's three instances has a real set made by ec2_snapshot_set today and 119 copies of it, one
per day before (the lab clones it with back-dated created-at tags), 360 sets and 720 snapshots in all, more than a
DescribeSnapshots page. Around them: a held set, a locked set, a set an AMI uses, a set with a schema version this
collection does not read, another account's copy of a set (shared with this one) and loose snapshots of both accounts.
The policy is GFS (keep_daily 7, keep_weekly 4, keep_monthly 3). What it keeps is computed here from the calendar, not
by the collection's planner: the newest set of each of the 7 newest days, 4 newest ISO weeks and 3 newest months.
"""

import datetime
import json
import subprocess
import time
from collections import Counter

import pytest

from integration.conftest import kill_controller, playbook_command

pytestmark = pytest.mark.integration

RETENTION = "- ansible.builtin.import_playbook: shadowsnap.ec2.retention\n"
MODULE_TASK = "shadowsnap.ec2.retention : Apply the retention policy to the snapshot sets"
DAYS = 120
POLICY = {"retention_keep_daily": 7, "retention_keep_weekly": 4, "retention_keep_monthly": 3}
OTHER_ACCOUNT = "210987654321"
HOSTS = ("win-sql-01", "win-web-01", "win-xen-01")
BASE_SETS = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: base sets
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ item.instance_id }}"
        set_id: "{{ item.set_id }}"
        volumes: data
        engine: shadow
        consistency: application
        backup_type: copy
        policy: nightly
      loop: "{{ bases }}"
"""


def set_id(host, day):
    return "%s-d%03d" % (host, day)


def gfs_kept(moments):
    """The moments GFS keeps, from the calendar: the newest moment of each of the newest periods of each rule."""
    kept = set()
    for count, period in ((7, lambda moment: moment.date()), (4, lambda moment: moment.isocalendar()[:2]),
                          (3, lambda moment: (moment.year, moment.month))):
        newest = {}
        for moment in sorted(moments, reverse=True):
            newest.setdefault(period(moment), moment)
        assert len(newest) > count, "more periods than slots: the oldest set is not kept by any rule"
        kept.update(newest[key] for key in sorted(newest, reverse=True)[:count])
    return kept


class Fleet:
    """The seeded fleet and what the policy must do to it."""

    def __init__(self, lab, ansible_playbook):
        self.lab = lab
        # Today's set at the start of today (UTC, the policy's time zone): dated today and in the past at any hour.
        self.anchor = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        moments = dict((day, self.anchor - datetime.timedelta(days=day)) for day in range(DAYS))
        kept_moments = gfs_kept(moments.values())
        bases = [{"instance_id": lab.instance(host)["instance_id"], "set_id": set_id(host, 0)} for host in HOSTS]
        run = ansible_playbook(lab, BASE_SETS, {"bases": bases})
        assert run.rc == 0, run.stdout
        self.snapshots = {}
        for host in HOSTS:
            base = set_id(host, 0)
            self.snapshots[base] = sorted(run.result("base sets")["results"][HOSTS.index(host)]["volume_snapshot_map"].values())
            lab.backdate_set(base, moments[0].isoformat())
            self.snapshots.update(lab.clone_set(base, [{"set_id": set_id(host, day), "created_at": moments[day].isoformat()}
                                                       for day in range(1, DAYS)]))
        self.expected_kept = set(set_id(host, day) for host in HOSTS for day in range(DAYS) if moments[day] in kept_moments)
        candidates = [day for day in range(30, DAYS) if moments[day] not in kept_moments]
        self.held, self.locked, self.ami_used = (set_id("win-sql-01", candidates[0]), set_id("win-sql-01", candidates[5]),
                                                 set_id("win-web-01", candidates[10]))
        self.protect()
        self.expected_deleted = set(self.snapshots) - self.expected_kept - {self.held, self.locked, self.ami_used}
        self.old_schema = lab.clone_set(set_id("win-xen-01", 0), [
            {"set_id": "xen-schema-0", "created_at": (self.anchor - datetime.timedelta(days=400)).isoformat(),
             "tags": {"shadowsnap:schema": "0"}}])["xen-schema-0"]
        self.theirs = lab.clone_set(set_id("win-sql-01", 0), [
            {"set_id": set_id("win-sql-01", 200), "created_at": (self.anchor - datetime.timedelta(days=200)).isoformat(),
             "owner_id": OTHER_ACCOUNT}])[set_id("win-sql-01", 200)]
        volume_id = lab.instance("win-sql-01")["volumes"][1]["volume_id"]
        self.theirs += lab.seed_snapshots(volume_id, count=2, owner_id=OTHER_ACCOUNT, tags={"Name": "their backup"})
        self.loose = lab.seed_snapshots(volume_id, count=2, tags={"Name": "hand-made"})

    def protect(self):
        ec2 = self.lab.ec2()
        ec2.create_tags(Resources=self.snapshots[self.held][:1], Tags=[{"Key": "shadowsnap:hold", "Value": "case 4711"}])
        ec2.lock_snapshot(SnapshotId=self.snapshots[self.locked][-1], LockMode="compliance", LockDuration=365)
        self.image_id = ec2.register_image(Name="web-from-set", RootDeviceName="/dev/sda1", BlockDeviceMappings=[
            {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": self.snapshots[self.ami_used][0]}}])["ImageId"]

    def present(self):
        """Every snapshot moto holds, by id, with its owner (read directly, not through the proxy)."""
        pages = self.lab.ec2().get_paginator("describe_snapshots").paginate(OwnerIds=["self", OTHER_ACCOUNT])
        return dict((s["SnapshotId"], s["OwnerId"]) for s in pages.build_full_result()["Snapshots"])

    def sets_present(self):
        present = self.present()
        return dict((set_id_, sorted(i for i in ids if i in present)) for set_id_, ids in self.snapshots.items())

    def assert_planned_result(self):
        """Exactly the planned sets are gone, whole; everything else is there, whole."""
        present = self.present()
        for name, snapshot_ids in self.snapshots.items():
            still = [i for i in snapshot_ids if i in present]
            assert still == ([] if name in self.expected_deleted else snapshot_ids), name
        assert all(i in present for i in self.old_schema + self.theirs + self.loose)
        assert {present[i] for i in self.theirs} == {OTHER_ACCOUNT}


@pytest.fixture(name="fleet")
def fleet_fixture(lab, ansible_playbook):
    return Fleet(lab, ansible_playbook)


def retention_vars(tmp_path, **extra):
    return dict(POLICY, retention_policy="nightly", retention_delete_rate=100, retention_delete_burst=100,
                retention_report_path=str(tmp_path / "report.json"), **extra)


def by_set(entries):
    return dict((entry["set_id"], entry) for entry in entries)


def test_check_mode_prints_the_plan_with_every_reason_and_deletes_nothing(fleet, ansible_playbook, tmp_path):
    before = fleet.present()
    run = ansible_playbook(fleet.lab, RETENTION, retention_vars(tmp_path), check=True)
    assert run.rc == 0, run.stdout
    assert fleet.present() == before and fleet.lab.deletions() == []
    result = run.result(MODULE_TASK)
    assert set(by_set(result["deleted_sets"])) == fleet.expected_deleted
    assert set(by_set(result["kept_sets"])) == fleet.expected_kept | {fleet.held, fleet.locked, fleet.ami_used}
    assert result["counts"]["snapshots_deleted"] == 0

    shown = [item["msg"] for task in run.tasks if task["task"]["name"].startswith("shadowsnap.ec2.retention : Show")
             for item in task["hosts"]["localhost"].get("results", [])]
    oldest = set_id("win-xen-01", DAYS - 1)
    assert "would delete %s of %s (%s): no rule of the policy keeps it" % (
        oldest, fleet.lab.instance("win-xen-01")["instance_id"],
        (fleet.anchor - datetime.timedelta(days=DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")) in shown
    newest = set_id("win-sql-01", 0)
    assert any(line.startswith("kept %s" % newest) and line.endswith(
        "daily snapshot; weekly snapshot; monthly snapshot; newest complete application set of %s"
        % fleet.lab.instance("win-sql-01")["instance_id"]) for line in shown)
    assert len(shown) == len(fleet.snapshots) + 1, "one line per set, the skipped one too"
    with open(tmp_path / "report.json", encoding="utf-8") as handle:
        report = json.load(handle)
    assert report["plan_only"] is True and report["counts"]["deleted"] == len(fleet.expected_deleted)


def test_the_planned_sets_are_deleted_whole_and_protected_foreign_and_untagged_ones_are_untouched(
        fleet, ansible_playbook, tmp_path):
    run = ansible_playbook(fleet.lab, RETENTION, retention_vars(tmp_path),
                           environment={"ANSIBLE_SHOW_CUSTOM_STATS": "1"})
    assert run.rc == 0, run.stdout
    fleet.assert_planned_result()
    result = run.result(MODULE_TASK)
    assert set(by_set(result["deleted_sets"])) == fleet.expected_deleted
    kept = by_set(result["kept_sets"])
    assert kept[fleet.held]["reasons"] == ["no rule of the policy keeps it", "held: shadowsnap:hold on %s (case 4711)"
                                           % fleet.snapshots[fleet.held][0]]
    assert kept[fleet.locked]["reasons"][-1].startswith("locked: %s (compliance lock until " % fleet.snapshots[fleet.locked][-1])
    assert kept[fleet.ami_used]["reasons"][-1] == "in use: %s backs AMI %s" % (fleet.snapshots[fleet.ami_used][0], fleet.image_id)
    skipped = by_set(result["skipped_sets"])
    assert skipped["xen-schema-0"]["reasons"] == ["skipped: tag schema version 0, not 1, which this collection reads"]
    assert set(skipped) == {"xen-schema-0"}, "another account's sets are never even listed"
    deleted_snapshots = sum(len(fleet.snapshots[name]) for name in fleet.expected_deleted)
    assert result["counts"] == {"kept": len(fleet.expected_kept) + 3, "deleted": len(fleet.expected_deleted),
                                "archived": 0, "skipped": 1, "snapshots_deleted": deleted_snapshots}
    outcomes = Counter(entry["outcome"] for entry in fleet.lab.deletions())
    assert outcomes == {"deleted": deleted_snapshots}, "no protected, foreign or loose snapshot was even tried"
    assert fleet.lab.counts()["unfiltered_describes"] == 0
    document = json.loads(run.stdout)
    assert document["global_custom_stats"]["shadowsnap_retention"]["counts"] == result["counts"]

    again = ansible_playbook(fleet.lab, RETENTION, retention_vars(tmp_path))
    assert again.rc == 0 and again.result(MODULE_TASK)["changed"] is False
    assert again.result(MODULE_TASK)["deleted_sets"] == []


def test_a_controller_killed_mid_delete_then_a_rerun_ends_with_exactly_the_planned_result(fleet, tmp_path):
    """ansible-playbook and everything it started are killed (SIGKILL) while deletes run with 150 ms of latency per
    EC2 call, at a moment when a set is deleted halfway; the next run finishes it and the rest."""
    fleet.lab.faults(latency_ms=150)
    command, environment = playbook_command(fleet.lab, tmp_path, RETENTION, retention_vars(tmp_path))
    with subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            counts = Counter(entry["set_id"] for entry in fleet.lab.deletions() if entry["outcome"] == "deleted")
            if len(counts) >= 3 and any(0 < count < len(fleet.snapshots[name]) for name, count in counts.items()):
                break
            time.sleep(0.02)
        kill_controller(process)
        process.wait(timeout=30)
    time.sleep(0.5)
    settled = len(fleet.lab.deletions())
    time.sleep(1)
    assert len(fleet.lab.deletions()) == settled, "requests already sent were carried out, and then nothing"
    halfway = [name for name, ids in fleet.sets_present().items() if 0 < len(ids) < len(fleet.snapshots[name])]
    assert halfway, "the kill left a set deleted halfway"
    assert set(halfway) <= fleet.expected_deleted, "only planned sets were touched"
    assert any(ids for name, ids in fleet.sets_present().items() if name in fleet.expected_deleted), "deletes were left"

    fleet.lab.clear_faults()
    command, environment = playbook_command(fleet.lab, tmp_path, RETENTION, retention_vars(tmp_path))
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-3000:]
    fleet.assert_planned_result()
    rerun = [task for play in json.loads(completed.stdout)["plays"] for task in play["tasks"]
             if task["task"]["name"] == MODULE_TASK][0]["hosts"]["localhost"]
    finished = by_set(rerun["deleted_sets"])
    for name in halfway:
        assert finished[name]["reasons"][0].startswith("incomplete: volumes "), "recognised as deleted halfway"
    assert {e["outcome"] for e in fleet.lab.deletions()} == {"deleted"}
