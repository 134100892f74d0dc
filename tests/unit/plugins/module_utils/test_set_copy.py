"""Copying whole sets against the lab (moto behind the fault proxy, with pending copies and the per-destination cap):
the plan, the queue under the cap, a lost CopySnapshot answer and other tools' copies."""

import boto3
import botocore.config
import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_copy
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import NO_AUTOMATIC_RETRIES
from lab.control import LAB_CREDENTIALS
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    ec2, lab_fixture, lab_process_fixture, make_set)

ACCOUNT = "123456789012"
DR_REGION = "us-west-2"


def dr_client(lab, config=None):
    return boto3.client("ec2", region_name=DR_REGION, endpoint_url=lab.state["aws_endpoint_url"],
                        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(**config) if config else None)


def planned(lab, set_ids):
    sources = set_copy.source_sets(ec2(lab), set_ids)
    existing = set_copy.destination_copies(dr_client(lab), sources)
    return set_copy.plan_copies(sources, existing, lab.state["region"], ACCOUNT)


def queue(lab, limit=2):
    return set_copy.CopyQueue(dr_client(lab, NO_AUTOMATIC_RETRIES), dr_client(lab), lab.state["region"], limit=limit,
                              poll_interval=0.05)


def test_the_queue_keeps_the_cap_busy_and_never_above_it(lab):
    lab.copy_settings(copy_seconds=1.5)
    make_set(lab, "a")
    make_set(lab, "b", host="win-xen-01")
    plan = planned(lab, ["a", "b"])
    copies = queue(lab, limit=2)
    assert copies.run(plan) == []
    assert [entry["action"] for entry in plan] == ["copied"] * 5 and {e["state"] for e in plan} == {"completed"}
    assert copies.max_in_flight == 2 and lab.copies()["max_in_flight"] == {ACCOUNT + "/" + DR_REGION: 2}
    assert copies.occupancy() > 0.6
    assert all(entry["completed_at"] > entry["started_at"] >= entry["queued_at"] for entry in plan)
    assert {e["action"] for e in planned(lab, ["a", "b"])} == {"present"}


def test_a_lost_copy_answer_is_found_by_its_tags_and_never_copied_twice(lab):
    make_set(lab, "a")
    lab.faults([{"action": "CopySnapshot", "lose_response": "internal_error", "count": 1}])
    plan = planned(lab, ["a"])
    copies = queue(lab, limit=5)
    copies.sleep = lambda seconds: None
    copies.run(plan)
    assert [entry.get("reconciled", False) for entry in plan].count(True) == 1
    assert len(lab.copies()["copies"]) == len(plan) == 3


def test_copies_of_other_tools_holding_the_cap_keep_the_members_queued_and_do_not_fail_the_run(lab):
    sources = make_set(lab, "a")
    lab.copy_settings(copy_seconds=600, max_concurrent_copies=2)
    for snapshot_id in sources[:2]:
        dr_client(lab).copy_snapshot(SourceRegion=lab.state["region"], SourceSnapshotId=snapshot_id)
    plan = planned(lab, ["a"])
    copies = queue(lab, limit=2)
    copies.sleep = lambda seconds, sleep=copies.sleep: sleep(min(seconds, 0.1))
    left = copies.run(plan, timeout=1)
    assert copies.capacity_refusals >= 1 and [entry["action"] for entry in left] == ["queued"] * 3
    assert lab.copies()["max_in_flight"] == {ACCOUNT + "/" + DR_REGION: 2}


def test_a_run_out_of_time_returns_what_is_in_flight_and_queued_and_the_next_finds_them(lab):
    lab.copy_settings(copy_seconds=30)
    make_set(lab, "a")
    plan = planned(lab, ["a"])
    left = queue(lab, limit=1).run(plan, timeout=0)
    assert [entry["action"] for entry in left] == ["copied", "queued", "queued"]
    assert [entry["action"] for entry in planned(lab, ["a"])] == ["pending", "copy", "copy"]


def test_a_set_not_complete_or_missing_is_refused_before_any_copy(lab):
    lab.ebs(pending_seconds=30)
    make_set(lab, "young")
    with pytest.raises(set_copy.SetCopyError, match="set young is pending"):
        set_copy.source_sets(ec2(lab), ["young"])
    with pytest.raises(set_copy.SetCopyError, match="no snapshot .* carries the set id nowhere"):
        set_copy.source_sets(ec2(lab), ["young", "nowhere"])


def test_the_destination_must_not_hold_a_set_of_that_id_that_is_no_copy(lab):
    make_set(lab, "a")
    with pytest.raises(set_copy.SetCopyError, match="no copy"):
        set_copy.destination_copies(ec2(lab), ["a"])
