"""ec2_snapshot_set_lock against the lab: a set locked whole (governance, compliance, duration or expiry),
idempotently; a final compliance lock is never weakened or lifted; retention keeps and reports a locked set."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set_lock as module
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    UTC, Module, ec2, lab_fixture, lab_process_fixture, make_set, present)
from unit.plugins.modules.test_ec2_snapshot_set_retention import daily_history, run as run_retention

DEFAULTS = dict(instance_id=None, state="locked", lock_mode="governance", lock_duration_days=None, lock_expires_on=None,
                cool_off_hours=None)


def lock(lab, set_id, check_mode=False, **params):
    return module.change_locks(Module(lab, dict(DEFAULTS, set_id=set_id, **params), check_mode=check_mode))


def test_a_set_is_locked_whole_idempotently_and_unlocked(lab):
    members = make_set(lab, "hold")
    planned = lock(lab, "hold", check_mode=True, lock_duration_days=30)
    assert sorted(planned["changed_snapshot_ids"]) == members and ec2(lab).describe_locked_snapshots()["Snapshots"] == []
    result = lock(lab, "hold", lock_duration_days=30)
    assert result["changed"] and {entry["state"] for entry in result["locks"]} == {"governance"}
    assert lock(lab, "hold", lock_duration_days=30)["changed"] is False, "the same lock is left as it is"
    longer = lock(lab, "hold", lock_duration_days=60)
    assert sorted(longer["changed_snapshot_ids"]) == members
    unlocked = lock(lab, "hold", state="unlocked")
    assert unlocked["changed"] and {entry["state"] for entry in unlocked["locks"]} == {"unlocked"}
    assert lock(lab, "hold", state="unlocked")["changed"] is False


def test_a_final_compliance_lock_is_never_weakened_or_lifted_but_can_be_extended(lab):
    members = make_set(lab, "case")
    until = datetime.datetime.now(UTC) + datetime.timedelta(days=10)
    result = lock(lab, "case", lock_mode="compliance", lock_expires_on=until.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert {entry["state"] for entry in result["locks"]} == {"compliance"}
    assert lock(lab, "case", lock_mode="compliance", lock_expires_on=until.strftime("%Y-%m-%dT%H:%M:%SZ"))["changed"] is False
    for params in ({"lock_duration_days": 30}, {"lock_mode": "compliance", "lock_duration_days": 2},
                   {"state": "unlocked"}):
        with pytest.raises(module.LockRefused, match="compliance lock past its cooling-off period"):
            lock(lab, "case", **params)
    extended = lock(lab, "case", lock_mode="compliance", lock_duration_days=30)
    assert sorted(extended["changed_snapshot_ids"]) == members
    assert "LockSnapshot" in lab.counts()["actions"] and "UnlockSnapshot" not in lab.counts()["actions"]


def test_a_compliance_lock_still_cooling_off_can_be_lifted(lab):
    make_set(lab, "mistake")
    result = lock(lab, "mistake", lock_mode="compliance", cool_off_hours=24, lock_duration_days=365)
    assert {entry["state"] for entry in result["locks"]} == {"compliance-cooloff"}
    assert lock(lab, "mistake", state="unlocked")["changed"] is True


def test_retention_keeps_and_reports_a_locked_set(lab):
    daily_history(lab, 3)
    members = lock(lab, "night-02", lock_mode="compliance", lock_duration_days=30)["changed_snapshot_ids"]
    result, dummy = run_retention(lab, keep_last=1)
    kept = dict((entry["set_id"], entry["reasons"]) for entry in result["kept_sets"])
    locked = [reason.split(" ", 2) for reason in kept["night-02"] if reason.startswith("locked: ")]
    assert sorted(snapshot_id for dummy, snapshot_id, lock_text in locked) == sorted(members)
    assert all(lock_text.startswith("(compliance lock until ") for dummy, snapshot_id, lock_text in locked)
    assert sorted(entry["set_id"] for entry in result["deleted_sets"]) == ["night-01", "night-03"]
    assert present(lab, members) == sorted(members) and {d["outcome"] for d in lab.deletions()} == {"deleted"}
