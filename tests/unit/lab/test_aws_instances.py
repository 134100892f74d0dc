"""The lab's EC2 instances against the whole lab, through the fault proxy as the collection reaches it: RunInstances'
block devices from snapshots and its client token, StopInstances and StartInstances with their states and the
IncorrectInstanceState answers EC2 documents, and the root device's attach and detach on a stopped instance only."""

import botocore.exceptions
import pytest

from lab.control import windows_image_id
from test_aws_ebs import collection_ec2
from test_aws_volumes import error_of, wait_for

HOST = "win-sql-01"


@pytest.fixture(name="ec2")
def ec2_fixture(client):
    return collection_ec2(client)


def instance_state(ec2, instance_id):
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


def launch(ec2, client, **arguments):
    arguments.setdefault("ImageId", windows_image_id(client.ec2()))
    return ec2.run_instances(MinCount=1, MaxCount=1, InstanceType="m5.large", **arguments)["Instances"][0]


def test_block_devices_from_snapshots_keep_encryption_iops_and_throughput(client, ec2):
    zone = client.instance(HOST)["availability_zone"]
    data = client.ec2().create_volume(AvailabilityZone=zone, Size=100)["VolumeId"]
    plain = ec2.create_snapshot(VolumeId=data)["SnapshotId"]
    key = client.ec2().create_volume(AvailabilityZone=zone, Size=1, Encrypted=True,
                                     KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/lab")
    sealed = ec2.create_snapshot(VolumeId=key["VolumeId"])["SnapshotId"]
    instance = launch(ec2, client, BlockDeviceMappings=[
        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 60, "VolumeType": "gp3"}},
        {"DeviceName": "xvdb", "Ebs": {"SnapshotId": plain, "VolumeSize": 120, "VolumeType": "gp3", "Iops": 6000,
                                       "Throughput": 500}},
        {"DeviceName": "xvdc", "Ebs": {"SnapshotId": sealed, "VolumeType": "io2", "Iops": 4000}},
    ])
    volumes = dict((m["DeviceName"], m["Ebs"]["VolumeId"]) for m in instance["BlockDeviceMappings"])
    described = dict((v["VolumeId"], v) for v in ec2.describe_volumes(VolumeIds=list(volumes.values()))["Volumes"])
    root, data_volume, encrypted = (described[volumes[d]] for d in ("/dev/sda1", "xvdb", "xvdc"))
    assert root["Encrypted"] is False and data_volume["Encrypted"] is False
    assert (data_volume["Size"], data_volume["Iops"], data_volume["Throughput"], data_volume["SnapshotId"]) == (
        120, 6000, 500, plain)
    assert encrypted["Encrypted"] is True and encrypted["KmsKeyId"].endswith("key/lab") and encrypted["Iops"] == 4000


def test_a_repeated_client_token_answers_the_first_launch(client, ec2):
    first = launch(ec2, client, ClientToken="restore-1")
    again = launch(ec2, client, ClientToken="restore-1")
    assert again["InstanceId"] == first["InstanceId"]
    code, message = error_of(ec2.run_instances, ImageId=first["ImageId"], MinCount=1, MaxCount=1,
                             InstanceType="m5.xlarge", ClientToken="restore-1")
    assert code == "IdempotentParameterMismatch" and "restore-1" in message
    assert launch(ec2, client)["InstanceId"] != first["InstanceId"]


def test_stop_and_start_go_through_their_states_and_refuse_the_wrong_ones(client, ec2):
    client.instances(pending_seconds=5, stopping_seconds=5)
    instance_id = launch(ec2, client)["InstanceId"]
    assert instance_state(ec2, instance_id) == "pending"
    code, message = error_of(ec2.stop_instances, InstanceIds=[instance_id])
    assert code == "IncorrectInstanceState" and "can be stopped" in message
    assert wait_for(lambda: instance_state(ec2, instance_id) == "running")
    stopping = ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]
    assert (stopping["PreviousState"]["Name"], stopping["CurrentState"]["Name"]) == ("running", "stopping")
    code, message = error_of(ec2.start_instances, InstanceIds=[instance_id])
    assert code == "IncorrectInstanceState" and "can be started" in message
    assert wait_for(lambda: instance_state(ec2, instance_id) == "stopped")
    assert ec2.stop_instances(InstanceIds=[instance_id])["StoppingInstances"][0]["CurrentState"]["Name"] == "stopped"
    starting = ec2.start_instances(InstanceIds=[instance_id])["StartingInstances"][0]
    assert (starting["PreviousState"]["Name"], starting["CurrentState"]["Name"]) == ("stopped", "pending")
    assert wait_for(lambda: instance_state(ec2, instance_id) == "running")
    ec2.terminate_instances(InstanceIds=[instance_id])
    assert error_of(ec2.start_instances, InstanceIds=[instance_id])[0] == "IncorrectInstanceState"


def test_the_root_device_is_swapped_only_on_a_stopped_instance(client, ec2):
    instance = launch(ec2, client)
    instance_id, root_device = instance["InstanceId"], instance["RootDeviceName"]
    root = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    spare = ec2.create_volume(AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=60)["VolumeId"]
    assert error_of(ec2.detach_volume, VolumeId=root, InstanceId=instance_id)[0] == "IncorrectState"
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.detach_volume(VolumeId=root, InstanceId=instance_id)
    ec2.start_instances(InstanceIds=[instance_id])
    code, message = error_of(ec2.attach_volume, VolumeId=spare, InstanceId=instance_id, Device=root_device)
    assert code == "IncorrectInstanceState" and "is not 'stopped'" in message
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.attach_volume(VolumeId=spare, InstanceId=instance_id, Device=root_device)
    assert wait_for(lambda: ec2.describe_volumes(VolumeIds=[spare])["Volumes"][0]["Attachments"][0]["State"] == "attached")


def test_an_unknown_setting_is_refused(client):
    with pytest.raises(RuntimeError, match="unknown instance setting"):
        client.instances(booting_seconds=1)


def test_attach_to_an_instance_between_states_is_refused(client, ec2):
    client.instances(stopping_seconds=5)
    instance = launch(ec2, client)
    spare = ec2.create_volume(AvailabilityZone=instance["Placement"]["AvailabilityZone"], Size=1)["VolumeId"]
    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    with pytest.raises(botocore.exceptions.ClientError, match="is not 'running' or 'stopped'"):
        ec2.attach_volume(VolumeId=spare, InstanceId=instance["InstanceId"], Device="xvdf")


def test_a_launch_without_subnet_or_group_gets_the_defaults_and_a_terminated_address_is_free_again(client, ec2):
    first = launch(ec2, client)
    subnet = ec2.describe_subnets(SubnetIds=[first["SubnetId"]])["Subnets"][0]
    assert subnet["DefaultForAz"] is True and subnet["AvailabilityZone"] == first["Placement"]["AvailabilityZone"]
    assert [g["GroupName"] for g in first["SecurityGroups"]] == ["default"]
    code, message = error_of(ec2.run_instances, ImageId=first["ImageId"], MinCount=1, MaxCount=1,
                             SubnetId=first["SubnetId"], PrivateIpAddress=first["PrivateIpAddress"])
    assert code == "InvalidIPAddress.InUse" and first["PrivateIpAddress"] in message
    ec2.terminate_instances(InstanceIds=[first["InstanceId"]])
    again = launch(ec2, client, SubnetId=first["SubnetId"], PrivateIpAddress=first["PrivateIpAddress"])
    assert again["PrivateIpAddress"] == first["PrivateIpAddress"]
