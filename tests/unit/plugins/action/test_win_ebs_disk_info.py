# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_disk_info end to end on the controller: the real action plugin, transport, mapping and EC2 look-up.

The Windows host is a fake at the connection boundary (agent_fakes.py); EC2 is moto's in-process mock, reached
through amazon.aws's client set-up and the collection's DescribeInstances code, as in production.
"""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleActionFail
from moto import mock_aws

from ansible_collections.shadowsnap.ec2.plugins.action.win_ebs_disk_info import ActionModule, ebs_selection
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.host_identity import resolve_identity
from unit.plugins.action.agent_fakes import FakeAgentHost, FakeConnection, make_action

REGION = "eu-west-1"
INSTANCE_ID = "i-0123456789abcdef0"
BOOT = "vol-02840a1b2c3d4e5f6"
DATA = "vol-0aac1b2c3d4e5f607"
GUID_C = "\\\\?\\Volume{0f3c5a52-0000-0000-0000-100000000000}\\"
GUID_D = "\\\\?\\Volume{1a2b3c4d-1111-2222-3333-444455556666}\\"
TASK_VARS = {"inventory_hostname": "win-sql-01"}

# amazon.aws.ec2_instance_info's block_device_mappings (snake_case).
MODULE_BDM = [
    {"device_name": "/dev/sda1", "ebs": {"volume_id": BOOT, "status": "attached", "delete_on_termination": True}},
    {"device_name": "xvdf", "ebs": {"volume_id": DATA, "status": "attached", "delete_on_termination": False}},
]


def facts(instance_id=INSTANCE_ID, region=REGION):
    ec2 = {"instance_id": instance_id, "region": region, "availability_zone": region + "a", "account_id": "123456789012",
           "instance_type": "m5.large"} if instance_id else None
    return {"hostname": "WIN-SQL-01", "oem_code_page": 437, "ec2": ec2}


def nvme_disk(number, volume_id, boot=False):
    return {"Number": number, "FriendlyName": "NVMe Amazon Elastic B", "SerialNumber": volume_id.replace("-", "") + "_00000001.",
            "BusType": 17, "PartitionStyle": 2, "OperationalStatus": [53264], "IsOffline": False, "IsBoot": boot,
            "IsSystem": boot, "Size": 64424509440}


def storage(boot=BOOT, data=DATA):
    return {
        "disks": [nvme_disk(1, data), nvme_disk(0, boot, boot=True)],
        "disk_drives": [],
        "partitions": [
            {"DiskNumber": 0, "PartitionNumber": 1, "DriveLetter": "C", "AccessPaths": ["C:\\", GUID_C], "IsBoot": True},
            {"DiskNumber": 1, "PartitionNumber": 2, "DriveLetter": "D", "AccessPaths": ["D:\\", GUID_D]},
        ],
        "volumes": [
            {"UniqueId": GUID_C, "DriveLetter": "C", "FileSystem": "NTFS", "DriveType": 3, "Size": 64000000000},
            {"UniqueId": GUID_D, "DriveLetter": "D", "FileSystem": "NTFS", "FileSystemLabel": "SQLData", "DriveType": 3},
        ],
        "shadow_storage": [{"Volume": GUID_D, "DiffVolume": GUID_D, "UsedSpace": 0, "AllocatedSpace": 0, "MaxSpace": 1 << 30}],
        "dynamic_disks": [],
        "storage_pools": [],
    }


def run(host, args=None, task_vars=None, check_mode=False):
    connection = FakeConnection(host)
    action = make_action(ActionModule, connection, args, check_mode=check_mode)
    return action.run(task_vars=dict(TASK_VARS, **(task_vars or {}))), host


@pytest.fixture(name="aws_env")
def aws_env_fixture(monkeypatch):
    """Credentials for moto and no endpoint or region from the machine; a stray AWS call would fail loudly."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def test_one_round_trip_and_no_aws_call_with_the_block_device_mapping_given(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # closed port: an EC2 call would fail the task
    host = FakeAgentHost(results={"facts": facts(), "storage": storage()})
    result, host = run(host, {"block_device_mappings": MODULE_BDM})
    assert not result.get("failed"), result.get("msg")
    assert result["round_trips"] == 1
    assert host.requests == [{"protocol": 1, "op": "batch", "args": {"requests": [
        {"op": "facts", "args": {}}, {"op": "storage", "args": {}}]}}]
    assert result["block_device_mapping_source"] == "option"
    assert result["instance"] == {"instance_id": INSTANCE_ID, "region": REGION, "availability_zone": "eu-west-1a",
                                  "account_id": "123456789012", "instance_type": "m5.large", "identity_source": "imds"}
    assert result["platform"] == "nitro"
    volumes = {volume["drive_letter"]: volume for volume in result["volumes"]}
    assert (volumes["C"]["ebs_volume_ids"], volumes["C"]["devices"]) == ([BOOT], ["/dev/sda1"])
    assert (volumes["D"]["ebs_volume_ids"], volumes["D"]["devices"], volumes["D"]["label"]) == ([DATA], ["xvdf"], "SQLData")
    assert volumes["D"]["shadow_storage"]["same_volume"] is True
    assert result["cross_check"] == {"ok": True, "errors": [], "missing_in_windows": [], "missing_in_ec2": []}
    assert [item["disk_number"] for item in result["attachments"]] == [0, 1]
    assert result["windows_hostname"] == "WIN-SQL-01"
    assert result["changed"] is False


@mock_aws
def test_the_block_device_mapping_comes_from_ec2_with_one_describe_call(aws_env):
    import boto3

    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement={"AvailabilityZone": REGION + "a"})
    instance_id = instance["Instances"][0]["InstanceId"]
    boot = instance["Instances"][0]["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    data = ec2.create_volume(Size=10, AvailabilityZone=REGION + "a")["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=instance_id, Device="xvdf")

    host = FakeAgentHost(results={"facts": facts(instance_id), "storage": storage(boot, data)})
    result, dummy = run(host)
    assert not result.get("failed"), result.get("msg")
    assert result["block_device_mapping_source"] == "ec2"
    assert result["instance"]["state"] == "running"
    assert [(item["volume_id"], item["device"], item["seen_by_windows"]) for item in result["attachments"]] == [
        (boot, "/dev/sda1", True),
        (data, "xvdf", True),
    ]
    assert result["round_trips"] == 1
    assert set(result["timings"]) == {"read", "ec2", "total"}

    ec2.detach_volume(VolumeId=data, InstanceId=instance_id)
    result, dummy = run(FakeAgentHost(results={"facts": facts(instance_id), "storage": storage(boot, data)}))
    assert result["failed"] is True
    assert f"Windows disk 1 is EBS volume {data} at" not in result["msg"]
    assert f"Windows disk 1 is EBS volume {data}, which is missing in EC2" in result["msg"]


@mock_aws
def test_an_instance_ec2_does_not_know_fails_clearly(aws_env):
    result, dummy = run(FakeAgentHost(results={"facts": facts("i-0fffffffffffffff0"), "storage": storage()}))
    assert result["failed"] is True
    assert result["msg"] == "win-sql-01: instance i-0fffffffffffffff0 does not exist in this account and Region"


def test_a_mismatch_fails_naming_volume_device_and_side(aws_env):
    bdm = MODULE_BDM + [{"device_name": "xvdg", "ebs": {"volume_id": "vol-0bbb0000000000000", "status": "attached"}}]
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}), {"block_device_mappings": bdm})
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"win-sql-01: Windows disks and the EBS volumes EC2 lists as attached to {INSTANCE_ID} disagree: "
        "EBS volume vol-0bbb0000000000000 attached at xvdg is missing in Windows"
    )
    assert result["cross_check"]["missing_in_windows"] == [{"volume_id": "vol-0bbb0000000000000", "device": "xvdg"}]
    assert result["volumes"], "the mapping is returned with the failure"


def test_a_mismatch_is_only_reported_when_asked_not_to_fail(aws_env):
    bdm = MODULE_BDM[:1]
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                        {"block_device_mappings": bdm, "fail_on_mismatch": False})
    assert not result.get("failed")
    assert result["cross_check"]["ok"] is False
    assert result["cross_check"]["missing_in_ec2"] == [{"volume_id": DATA, "device": None, "disk_number": 1}]


def test_without_imds_the_inventory_variables_identify_the_instance(aws_env):
    host = FakeAgentHost(results={"facts": facts(None), "storage": storage()})
    result, dummy = run(host, {"block_device_mappings": MODULE_BDM},
                        task_vars={"instance_id": INSTANCE_ID, "placement": {"region": REGION}})
    assert not result.get("failed"), result.get("msg")
    assert (result["instance"]["instance_id"], result["instance"]["region"], result["instance"]["identity_source"]) == (
        INSTANCE_ID, REGION, "inventory"
    )


def test_without_imds_or_identity_or_mapping_the_task_says_what_to_set(aws_env):
    result, dummy = run(FakeAgentHost(results={"facts": facts(None), "storage": storage()}))
    assert result["failed"] is True
    assert "IMDSv2 did not answer from the host; set instance_id (and region), or pass block_device_mappings" in result["msg"]
    assert result["round_trips"] == 1


def test_an_instance_id_that_contradicts_imds_fails(aws_env):
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                        {"instance_id": "i-0fffffffffffffff0", "block_device_mappings": MODULE_BDM})
    assert result["failed"] is True
    assert result["msg"] == (
        f"win-sql-01: the host says (IMDSv2) it is {INSTANCE_ID}, the task says instance_id=i-0fffffffffffffff0"
    )


def test_an_agent_failure_fails_the_task_with_its_hresult(aws_env):
    host = FakeAgentHost(results={"facts": facts()}, errors={"storage": {
        "message": "Access denied", "hresult": "0x80070005", "command": None, "exit_code": None}})
    result, dummy = run(host, {"block_device_mappings": MODULE_BDM})
    assert result["failed"] is True
    assert result["hresult_name"] == "E_ACCESSDENIED"
    assert result["msg"].startswith("win-sql-01: agent op 'storage' failed: Access denied")


def test_check_mode_reads_as_usual(aws_env):
    result, host = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                       {"block_device_mappings": MODULE_BDM}, check_mode=True)
    assert result["cross_check"]["ok"] is True
    assert len(host.requests) == 1


def test_unknown_options_are_refused(aws_env):
    with pytest.raises(AnsibleActionFail):
        run(FakeAgentHost(), {"volume": "D"})


def test_resolve_identity_precedence():
    imds = {"instance_id": "i-a", "region": "eu-west-1", "availability_zone": "eu-west-1b"}
    inventory = {"instance_id": "i-c", "placement": {"region": "us-west-2"}}
    assert resolve_identity(imds, None, None, inventory, "us-east-1")["instance_id"] == "i-a"
    assert resolve_identity(imds, None, None, inventory, "us-east-1")["region"] == "eu-west-1"
    assert resolve_identity(None, "i-b", None, inventory, "us-east-1")["identity_source"] == "option"
    assert resolve_identity(None, None, None, inventory, "us-east-1")["region"] == "us-west-2"
    assert resolve_identity(None, None, None, {}, "us-east-1")["region"] == "us-east-1"
    assert resolve_identity(None, None, None, {}, None)["identity_source"] is None


def test_select_volumes_resolves_drive_letters_ids_and_devices_into_ebs_volumes_with_their_paths(aws_env):
    host = FakeAgentHost(results={"facts": facts(), "storage": storage()})
    result, dummy = run(host, {"block_device_mappings": MODULE_BDM, "select_volumes": ["d:"]})
    assert not result.get("failed"), result.get("msg")
    assert result["round_trips"] == 1
    assert result["ebs_selection"] == {"volume_ids": [DATA], "volume_metadata": {DATA: {"paths": ["D:\\"]}}}
    for refs in ([DATA], ["xvdf"], ["/dev/xvdf"]):
        result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                            {"block_device_mappings": MODULE_BDM, "select_volumes": refs})
        assert result["ebs_selection"]["volume_metadata"] == {DATA: {"paths": ["D:\\"]}}, refs
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                        {"block_device_mappings": MODULE_BDM, "select_volumes": ["D:"], "include_boot": True})
    assert result["ebs_selection"]["volume_metadata"] == {BOOT: {"paths": ["C:\\"]}, DATA: {"paths": ["D:\\"]}}
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                        {"block_device_mappings": MODULE_BDM})
    assert "ebs_selection" not in result


def test_a_selected_volume_the_host_does_not_have_fails_with_the_volumes_it_has(aws_env):
    result, dummy = run(FakeAgentHost(results={"facts": facts(), "storage": storage()}),
                        {"block_device_mappings": MODULE_BDM, "select_volumes": ["D:", "G:"]})
    assert result["failed"] is True
    assert "volume 'G:' is not on this host (its volumes: C:\\, D:\\)" in result["msg"]


def test_a_selection_never_splits_a_disk():
    """A volume spanning two EBS volumes brings both, and every Windows volume on them is recorded."""
    volumes = [
        {"unique_id": "a", "drive_letter": "D", "mount_points": [], "all_ebs": True, "ebs_volume_ids": ["vol-1", "vol-2"]},
        {"unique_id": "b", "drive_letter": None, "mount_points": ["C:\\mnt\\logs"], "all_ebs": True,
         "ebs_volume_ids": ["vol-2"]},
        {"unique_id": "c", "drive_letter": "F", "mount_points": [], "all_ebs": True, "ebs_volume_ids": ["vol-3"]},
    ]
    selection = ebs_selection(volumes, [], ["D:"], include_boot=False)
    assert selection == {"volume_ids": ["vol-1", "vol-2"], "volume_metadata": {
        "vol-1": {"paths": ["D:\\"]}, "vol-2": {"paths": ["D:\\", "C:\\mnt\\logs\\"]}}}
    assert ebs_selection(volumes, [], ["C:\\mnt\\logs"], include_boot=False)["volume_ids"] == ["vol-1", "vol-2"]
