"""ec2_instance_restore planned and resumed: check mode plans without creating anything, and a re-run after a run that
died between the swap and deleting the launch volumes deletes those leftovers (found by their tag), nothing else."""

import pytest

from test_instance_restore import calls, describe, other_subnet, run_instance_restore, whole_set
from test_backup import SQL
from test_restore_volumes import run_module, tags, volumes_of

pytestmark = pytest.mark.integration

LAUNCH_VOLUME_TAG = "shadowsnap:restore:launch-volume-of"


def test_check_mode_plans_the_instance_and_creates_nothing(lab, ansible_playbook):
    whole_set(lab, ansible_playbook)
    subnet = other_subnet(lab)
    volumes_before = set(volumes_of(lab))
    run, planned = run_instance_restore(lab, ansible_playbook, check=True, set_id="sql-whole", subnet_id=subnet["SubnetId"],
                                        instance_type="m5.2xlarge")
    assert run.rc == 0, run.stdout
    assert planned["changed"] is True and planned["state"] == "planned" and planned["instance_id"] is None
    assert planned["launch"]["subnet_id"] == subnet["SubnetId"] and planned["launch"]["instance_type"] == "m5.2xlarge"
    assert planned["launch"]["availability_zone"] == subnet["AvailabilityZone"]
    assert planned["private_ip_address"] is None and all(v["volume_id"] is None for v in planned["volumes"])
    assert len(planned["volumes"]) == 4 and len(planned["windows"]["revert"]) == 3
    assert planned["created_volume_ids"] == [] and planned["deleted_launch_volume_ids"] == []
    assert calls(lab, "RunInstances") == 0 and calls(lab, "CreateVolume") == 0 and calls(lab, "StopInstances") == 0
    assert set(volumes_of(lab)) == volumes_before


def test_a_rerun_deletes_the_launch_volumes_an_interrupted_run_took_off_and_nothing_else(lab, ansible_playbook):
    whole_set(lab, ansible_playbook)
    run, result = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", start=False)
    assert run.rc == 0, run.stdout
    ec2 = lab.ec2()
    zone = describe(lab, result["instance_id"])["Placement"]["AvailabilityZone"]

    def volume(tag_value):
        created = ec2.create_volume(AvailabilityZone=zone, Size=30, TagSpecifications=[{"ResourceType": "volume", "Tags": [
            {"Key": LAUNCH_VOLUME_TAG, "Value": tag_value}]}] if tag_value else [])
        return created["VolumeId"]

    # what a run that died after the swap leaves: its launch volume taken off, tagged, not deleted
    leftover = volume(result["restore_id"])
    other_restores = volume("another-restore")
    untagged = volume(None)
    rerun, again = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", start=False)
    assert rerun.rc == 0, rerun.stdout
    assert again["deleted_launch_volume_ids"] == [leftover] and again["changed"] is True
    assert again["launched"] is False and again["created_volume_ids"] == []
    remaining = volumes_of(lab)
    assert leftover not in remaining and other_restores in remaining and untagged in remaining
    assert tags(remaining[other_restores])[LAUNCH_VOLUME_TAG] == "another-restore"
    assert all(volume_id in remaining for volume_id in result["volume_map"].values())


def test_state_absent_removes_a_runs_instance_and_volumes_and_refuses_anything_else(lab, ansible_playbook):
    whole_set(lab, ansible_playbook)
    run, result = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", start=False)
    assert run.rc == 0, run.stdout
    original = lab.instance(SQL)
    refused_run, refused = run_module("ec2_instance_restore", lab, ansible_playbook, expect_failure=True, state="absent",
                                      restore_id=result["restore_id"], instance_id=original["instance_id"],
                                      volume_ids=result["created_volume_ids"])
    assert refused["failed"] is True and original["instance_id"] in refused["msg"] and "nothing removed" in refused["msg"]
    assert describe(lab, original["instance_id"])["State"]["Name"] == "running"
    assert all(volume_id in volumes_of(lab) for volume_id in result["created_volume_ids"])

    removed_run, removed = run_module("ec2_instance_restore", lab, ansible_playbook, state="absent",
                                      restore_id=result["restore_id"], instance_id=result["instance_id"],
                                      volume_ids=result["created_volume_ids"])
    assert removed_run.rc == 0, removed_run.stdout
    assert removed["terminated_instance_id"] == result["instance_id"]
    assert sorted(removed["deleted_volume_ids"]) == sorted(result["created_volume_ids"])
    assert describe(lab, result["instance_id"])["State"]["Name"] == "terminated"
    assert not set(result["created_volume_ids"]) & set(volumes_of(lab))
    assert describe(lab, original["instance_id"])["State"]["Name"] == "running"
