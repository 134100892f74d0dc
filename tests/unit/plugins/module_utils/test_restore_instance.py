"""Where a restored instance goes and from what: each field from the request, else the original, else the set's
record; the private IP only back in its own subnet with the original gone; the root member; RunInstances' parameters;
what each volume reaches."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import restore_instance
from ansible_collections.shadowsnap.ec2.plugins.module_utils.restore_volumes import RestoreError

RECORDED = {"image_id": "ami-set", "instance_type": "m5.xlarge", "availability_zone": "us-east-1a",
            "subnet_id": "subnet-set", "private_ip": "10.0.0.5", "root_device_name": "/dev/sda1",
            "security_group_ids": ["sg-set"], "iam_instance_profile": "Sql", "key_name": "ops"}
ORIGINAL = dict(RECORDED, image_id="ami-now", instance_type="m5.2xlarge", key_name=None)


def test_each_field_comes_from_the_request_else_the_original_else_the_set():
    launch, sources = restore_instance.resolve_launch({"subnet_id": "subnet-dr"}, ORIGINAL, RECORDED, "set-1")
    assert (launch["subnet_id"], sources["subnet_id"]) == ("subnet-dr", "input")
    assert (launch["image_id"], sources["image_id"]) == ("ami-now", "original")
    assert (launch["key_name"], sources["key_name"]) == ("ops", "set"), "the original has none now: the set's"
    launch, sources = restore_instance.resolve_launch({}, None, RECORDED, "set-1")
    assert set(sources.values()) == {"set"} and launch["security_group_ids"] == ["sg-set"]


@pytest.mark.parametrize("original, recorded, message", [
    (None, None, "the original instance is gone; set set-1 does not record image_id, instance_type, subnet_id, "
                 "security_group_ids (it was made before sets recorded where their instance was); give image_id"),
    (None, dict(RECORDED, security_group_ids=None), "set set-1 does not record security_group_ids; give "
                                                    "security_group_ids"),
    (dict(ORIGINAL, security_group_ids=[]), dict(RECORDED, security_group_ids=None),
     "the original instance has no security_group_ids"),
])
def test_a_field_nobody_gives_is_asked_for(original, recorded, message):
    with pytest.raises(RestoreError, match=message.replace("(", r"\(").replace(")", r"\)")):
        restore_instance.resolve_launch({}, original, recorded, "set-1")


@pytest.mark.parametrize("options, original, subnet, expected", [
    ({"private_ip_address": "10.0.0.9"}, ORIGINAL, "subnet-set", ("10.0.0.9", "input")),
    ({}, None, "subnet-set", ("10.0.0.5", "set")),
    ({}, ORIGINAL, "subnet-set", (None, None)),
    ({}, None, "subnet-dr", (None, None)),
])
def test_the_recorded_address_only_back_in_its_subnet_with_the_original_gone(options, original, subnet, expected):
    assert restore_instance.private_ip(options, original, RECORDED, {"subnet_id": subnet}) == expected


def member(volume_id, device, shadow_id="{s}"):
    return {"volume_id": volume_id, "snapshot_id": "snap-" + volume_id, "device": device, "paths": [],
            "shadow_id": shadow_id}


def test_the_root_member_is_the_one_at_the_recorded_root_device():
    found = {"set_id": "set-1", "snapshots": [member("vol-c", "/dev/sda1"), member("vol-d", "xvdb")]}
    assert restore_instance.check_root(found, RECORDED)["volume_id"] == "vol-c"
    with pytest.raises(RestoreError, match="has no root volume"):
        restore_instance.check_root(dict(found, snapshots=found["snapshots"][1:]), RECORDED)
    with pytest.raises(RestoreError, match="made before sets recorded the root device"):
        restore_instance.check_root(found, None)


def test_run_instances_leaves_the_amis_data_volumes_out():
    image = {"RootDeviceName": "/dev/sda1", "BlockDeviceMappings": [
        {"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-ami"}}, {"DeviceName": "xvdca", "VirtualName": "eph0"},
        {"DeviceName": "xvdb", "Ebs": {"SnapshotId": "snap-ami-data"}}]}
    parameters = restore_instance.launch_parameters(RECORDED, image, None)
    assert parameters["BlockDeviceMappings"] == [{"DeviceName": "xvdb", "NoDevice": ""}]
    assert parameters["IamInstanceProfile"] == {"Name": "Sql"} and "PrivateIpAddress" not in parameters
    assert "BlockDeviceMappings" not in restore_instance.launch_parameters(RECORDED, {"RootDeviceName": "/dev/sda1"},
                                                                           "10.0.0.5")


@pytest.mark.parametrize("engine, consistency, root, expected", [
    ("shadow", "application", True, ("crash", False, "crash")),
    ("shadow", "application", False, ("crash", True, "application")),
    ("aws_vss", "application", True, ("application", False, "application")),
    ("shadow", "unverified", False, ("crash", False, "crash")),
    ("crash", "crash", True, ("crash", False, "crash")),
])
def test_what_each_volume_holds_and_reaches(engine, consistency, root, expected):
    entry = restore_instance.volume_entry({"VolumeId": "vol-new"}, member("vol-c", "/dev/sda1"),
                                          {"engine": engine, "consistency": consistency}, root, "/dev/sda1")
    assert (entry["consistency"], entry["needs_shadow_revert"], entry["reaches"]) == expected


def test_restore_ids_and_run_tokens():
    assert restore_instance.default_restore_id("set-1", "subnet-dr") == "set-1@subnet-dr"
    first, second = restore_instance.run_token("set-1@subnet-dr"), restore_instance.run_token("set-1@subnet-dr")
    assert len(first) == 64 and first != second, "one token per run: a later run finds the instance by its tag"
