"""Whole-instance restore, the AWS part: ec2_instance_restore through real ansible-playbook runs against the lab (moto
with EC2's instance and volume rules, the fault proxy, the data plane).

Proven on EC2's state, not assumed: the new instance holds every volume of the set (root included) at the recorded
devices, each with its snapshot's content; the original instance and its volumes are untouched; a re-run creates
nothing; a failure removes exactly what the failing run created.
"""

import pytest

from test_backup import SQL
from test_restore_volumes import crash_set, run_module, tags, volumes_of

pytestmark = pytest.mark.integration

SHADOW_IDS = {"/dev/sda1": "{00000000-0000-4000-8000-000000000001}", "xvdb": "{00000000-0000-4000-8000-000000000002}",
              "xvdc": "{00000000-0000-4000-8000-000000000003}", "xvdd": "{00000000-0000-4000-8000-000000000004}"}


def whole_set(lab, ansible_playbook, set_id="sql-whole"):
    """A set of every volume of the SQL host, tagged as the shadow engine tags one (shadow ids, application)."""
    instance = lab.instance(SQL)
    metadata = {v["device"]: {"paths": [v["drive"] + "\\"], "shadow_id": SHADOW_IDS[v["device"]]}
                for v in instance["volumes"]}
    return crash_set(lab, ansible_playbook, set_id, volumes="all", volume_metadata=metadata, engine="shadow",
                     consistency="application", backup_type="copy",
                     shadow_set_id="{00000000-0000-4000-8000-00000000000f}")


def run_instance_restore(lab, ansible_playbook, **args):
    return run_module("ec2_instance_restore", lab, ansible_playbook, **args)


def other_subnet(lab):
    """A new subnet of the default VPC in a zone the SQL host is not in."""
    ec2 = lab.ec2()
    zone = lab.instance(SQL)["availability_zone"]
    other = "us-east-1b" if zone != "us-east-1b" else "us-east-1c"
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.200.0/24", AvailabilityZone=other)["Subnet"]


def describe(lab, instance_id):
    return lab.ec2().describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]


def calls(lab, action):
    return lab.counts()["actions"].get(action, {}).get("attempts", 0)


def test_a_set_becomes_a_new_instance_in_another_subnet_and_a_rerun_creates_nothing(lab, ansible_playbook):
    lab.instances(pending_seconds=0.3, stopping_seconds=0.3)
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    found = whole_set(lab, ansible_playbook)
    original_id = lab.instance(SQL)["instance_id"]
    original_before = describe(lab, original_id)
    volumes_before = volumes_of(lab)
    subnet = other_subnet(lab)
    run, result = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", subnet_id=subnet["SubnetId"],
                                       instance_type="m5.2xlarge")
    assert run.rc == 0, run.stdout
    assert result["changed"] is True and result["launched"] is True and result["state"] == "running"
    new = describe(lab, result["instance_id"])
    assert (new["SubnetId"], new["Placement"]["AvailabilityZone"], new["InstanceType"]) == (
        subnet["SubnetId"], subnet["AvailabilityZone"], "m5.2xlarge")
    assert result["launch_sources"]["subnet_id"] == "input" and result["launch_sources"]["image_id"] == "original"
    assert result["launch_sources"]["security_group_ids"] == "original" and result["launch"]["private_ip"] is None
    new_tags = tags(new)
    assert new_tags["shadowsnap:restore:id"] == result["restore_id"] == "sql-whole@" + subnet["SubnetId"]
    assert new_tags["shadowsnap:restore:set-id"] == "sql-whole"
    assert new_tags["shadowsnap:restore:source-instance"] == original_id

    # every member at its recorded device, the root at the root device, each holding its snapshot's content
    attached = dict((a["device"], a["volume_id"]) for a in lab.attachments(result["instance_id"])[result["instance_id"]])
    snapshot_of = dict((s["volume_id"], s["snapshot_id"]) for s in found["snapshots"])
    device_of = dict((v["volume_id"], v["device"]) for v in lab.instance(SQL)["volumes"])
    assert sorted(attached) == sorted(device_of.values())
    restored = volumes_of(lab)
    for source, restored_id in result["volume_map"].items():
        assert attached[device_of[source]] == restored_id
        assert restored[restored_id]["SnapshotId"] == snapshot_of[source]
        assert lab.volume_content(restored_id)["files"] == lab.snapshot_content(
            snapshot_of[source], include_system=True)["files"]
    assert len(result["created_volume_ids"]) == 4 and len(result["deleted_launch_volume_ids"]) == 1
    assert result["deleted_launch_volume_ids"][0] not in restored, "the launch's own root volume is deleted"

    # what each volume holds and can reach; what the Windows side does next
    by_device = dict((v["source_device"], v) for v in result["volumes"])
    assert by_device["/dev/sda1"]["root"] is True and by_device["/dev/sda1"]["reaches"] == "crash"
    assert by_device["/dev/sda1"]["needs_shadow_revert"] is False
    assert all(by_device[d]["consistency"] == "crash" and by_device[d]["needs_shadow_revert"]
               and by_device[d]["reaches"] == "application" for d in ("xvdb", "xvdc", "xvdd"))
    assert sorted(v["device"] for v in result["windows"]["revert"]) == ["xvdb", "xvdc", "xvdd"]
    assert result["windows"]["revert"][0]["shadow_id"] in SHADOW_IDS.values()

    # the original is untouched
    original_after = describe(lab, original_id)
    assert original_after["State"]["Name"] == "running"
    assert original_after["BlockDeviceMappings"] == original_before["BlockDeviceMappings"]
    assert tags(original_after) == tags(original_before)
    assert all(restored[volume_id]["Attachments"] == volumes_before[volume_id]["Attachments"]
               and tags(restored[volume_id]) == tags(volumes_before[volume_id]) for volume_id in volumes_before)

    # a re-run finds everything and creates nothing
    launches, creates = calls(lab, "RunInstances"), calls(lab, "CreateVolume")
    rerun, again = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", subnet_id=subnet["SubnetId"],
                                        instance_type="m5.2xlarge")
    assert rerun.rc == 0, rerun.stdout
    assert again["changed"] is False and again["launched"] is False and again["created_volume_ids"] == []
    assert again["instance_id"] == result["instance_id"] and again["volume_map"] == result["volume_map"]
    assert (calls(lab, "RunInstances"), calls(lab, "CreateVolume"), calls(lab, "StopInstances")) == (launches, creates, 1)


def test_defaults_come_from_the_set_when_the_original_is_terminated(lab, ansible_playbook):
    found = whole_set(lab, ansible_playbook)
    recorded = found["launch"]
    original_id = lab.instance(SQL)["instance_id"]
    lab.ec2().terminate_instances(InstanceIds=[original_id])
    run, result = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", start=False)
    assert run.rc == 0, run.stdout
    assert all(source == "set" for field, source in result["launch_sources"].items() if result["launch"][field])
    new = describe(lab, result["instance_id"])
    assert new["State"]["Name"] == "stopped" and result["state"] == "stopped"
    assert (new["ImageId"], new["InstanceType"], new["SubnetId"], new["Placement"]["AvailabilityZone"]) == (
        recorded["image_id"], recorded["instance_type"], recorded["subnet_id"], recorded["availability_zone"])
    assert [g["GroupId"] for g in new["SecurityGroups"]] == recorded["security_group_ids"]
    assert new["PrivateIpAddress"] == recorded["private_ip"], "back in its subnet, the original gone: its address"
    assert len(result["volume_map"]) == 4


@pytest.mark.parametrize("case, expected", [
    ("no launch record", "does not record image_id, instance_type, subnet_id, security_group_ids"),
    ("AMI gone", "no longer exists; give image_id"),
    ("no root volume in the set", "has no root volume"),
])
def test_bad_inputs_fail_clearly_and_create_nothing(lab, ansible_playbook, case, expected):
    ec2 = lab.ec2()
    original_id = lab.instance(SQL)["instance_id"]
    if case == "no root volume in the set":
        crash_set(lab, ansible_playbook, "sql-whole")
    else:
        found = whole_set(lab, ansible_playbook)
    if case == "no launch record":
        ec2.terminate_instances(InstanceIds=[original_id])
        ec2.delete_tags(Resources=[s["snapshot_id"] for s in found["snapshots"]],
                        Tags=[{"Key": key} for key in found["snapshots"][0]["tags"] if key.startswith("shadowsnap:launch")])
    if case == "AMI gone":
        ec2.deregister_image(ImageId=found["launch"]["image_id"])
    before = set(volumes_of(lab))
    run, failed = run_instance_restore(lab, ansible_playbook, expect_failure=True, set_id="sql-whole")
    assert failed["failed"] is True and expected in failed["msg"], failed["msg"]
    assert calls(lab, "RunInstances") == 0 and calls(lab, "CreateVolume") == 0 and set(volumes_of(lab)) == before


def test_throttled_launch_is_retried_once_and_a_create_volume_failing_halfway_removes_only_this_run(
        lab, ansible_playbook):
    whole_set(lab, ansible_playbook)
    subnet = other_subnet(lab)
    earlier_run, earlier = run_module("ec2_snapshot_set_volumes", lab, ansible_playbook, set_id="sql-whole",
                                      availability_zone=subnet["AvailabilityZone"], volumes=["D:"])
    assert earlier_run.rc == 0, earlier_run.stdout
    instances_before = set(i["InstanceId"] for r in lab.ec2().describe_instances()["Reservations"] for i in r["Instances"])
    volumes_before = set(volumes_of(lab))
    used = sum(v["Size"] for v in volumes_of(lab).values())
    lab.volumes(storage_limit_gib=used + 8 + 60 + 100)
    lab.faults(rules=[{"action": "RunInstances", "error": "RequestLimitExceeded", "count": 2}])
    run, failed = run_instance_restore(lab, ansible_playbook, expect_failure=True, set_id="sql-whole",
                                       subnet_id=subnet["SubnetId"])
    assert failed["failed"] is True and "VolumeLimitExceeded" in failed["msg"], failed["msg"]
    launches = lab.counts()["actions"]["RunInstances"]
    assert launches["throttled"] + launches["faults"] == 2 and launches["ok"] == 1, "one instance, after two refusals"
    terminated = failed["terminated_instance_id"]
    assert terminated not in instances_before and describe(lab, terminated)["State"]["Name"] == "terminated"
    assert "terminated " + terminated in failed["msg"] and len(failed["deleted_volume_ids"]) == 2
    assert set(volumes_of(lab)) == volumes_before, "root and D: of this run deleted; the earlier restore's D: kept"
    assert earlier["volume_map"][lab.instance(SQL)["volumes"][1]["volume_id"]] in volumes_of(lab)
    assert describe(lab, lab.instance(SQL)["instance_id"])["State"]["Name"] == "running"


def test_in_the_originals_subnet_while_it_runs_the_new_instance_gets_another_address(lab, ansible_playbook):
    found = whole_set(lab, ansible_playbook)
    run, result = run_instance_restore(lab, ansible_playbook, set_id="sql-whole", start=False)
    assert run.rc == 0, run.stdout
    assert result["launch"]["subnet_id"] == found["launch"]["subnet_id"] and result["launch_sources"]["private_ip"] is None
    new = describe(lab, result["instance_id"])
    assert new["PrivateIpAddress"] != found["launch"]["private_ip"]
    assert describe(lab, found["instance_id"])["PrivateIpAddress"] == found["launch"]["private_ip"]
