"""The launch record a set carries for a whole-instance restore: read from DescribeInstances, written within the tag
budget, read back from any member."""

import datetime

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets, snapshot_tags

INSTANCE = {
    "InstanceId": "i-0123456789abcdef0", "ImageId": "ami-0123456789abcdef0", "InstanceType": "m5.xlarge",
    "Placement": {"AvailabilityZone": "us-east-1a"}, "SubnetId": "subnet-0123456789abcdef0",
    "PrivateIpAddress": "10.0.1.17", "RootDeviceName": "/dev/sda1", "KeyName": "ops;keys",
    "IamInstanceProfile": {"Arn": "arn:aws:iam::123456789012:instance-profile/windows/SqlServers",
                           "Id": "AIPAEXAMPLE"},
    "SecurityGroups": [{"GroupId": "sg-0123456789abcdef0", "GroupName": "sql"},
                       {"GroupId": "sg-0fedcba9876543210", "GroupName": "rdp"}],
    "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"VolumeId": "vol-root", "Status": "attached"}},
                            {"DeviceName": "xvdb", "Ebs": {"VolumeId": "vol-d", "Status": "attached"}}],
}
FIELDS = dict(set_id="set-1", engine="crash", consistency="crash", version="0.3.0", policy="default",
              created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))


def test_the_record_round_trips_through_the_tags_of_every_member():
    tags = snapshot_sets.plan_snapshot_set(INSTANCE, {"volumes": "all"}, {}, **FIELDS)[2]
    launch = snapshot_tags.decode_launch(tags)
    assert launch == {
        "image_id": "ami-0123456789abcdef0", "instance_type": "m5.xlarge", "availability_zone": "us-east-1a",
        "subnet_id": "subnet-0123456789abcdef0", "private_ip": "10.0.1.17", "root_device_name": "/dev/sda1",
        "security_group_ids": ["sg-0123456789abcdef0", "sg-0fedcba9876543210"], "iam_instance_profile": "SqlServers",
        "key_name": "ops;keys"}
    assert snapshot_tags.decode_snapshot(tags, "vol-d")["launch"] == launch
    # 8 set-level tags, 2 members, 4 launch tags
    assert len(tags) == 14


def test_an_instance_without_groups_profile_or_key_costs_one_tag():
    bare = dict(INSTANCE, SecurityGroups=[], KeyName=None)
    del bare["IamInstanceProfile"]
    tags = snapshot_tags.launch_tags(snapshot_sets.launch_record(bare))
    assert list(tags) == [snapshot_tags.KEY_LAUNCH]
    launch = snapshot_tags.decode_launch(tags)
    assert launch["security_group_ids"] is None and launch["iam_instance_profile"] is None and launch["key_name"] is None


def test_security_groups_that_do_not_fit_are_not_recorded_at_all():
    many = dict(INSTANCE, SecurityGroups=[{"GroupId": "sg-%017x" % n} for n in range(13)])
    tags = snapshot_tags.launch_tags(snapshot_sets.launch_record(many))
    assert snapshot_tags.KEY_LAUNCH_SECURITY_GROUPS not in tags
    assert snapshot_tags.decode_launch(tags)["security_group_ids"] is None
    twelve = dict(INSTANCE, SecurityGroups=[{"GroupId": "sg-%017x" % n} for n in range(12)])
    assert len(snapshot_tags.decode_launch(snapshot_tags.launch_tags(
        snapshot_sets.launch_record(twelve)))["security_group_ids"]) == 12


def test_the_longest_values_fit_ec2s_limits():
    longest = dict(INSTANCE, InstanceType="u-24tb1.112xlarge", Placement={"AvailabilityZone": "ap-southeast-2-akl-1a"},
                   PrivateIpAddress="100.100.100.100", KeyName="k" * 255,
                   IamInstanceProfile={"Arn": "arn:aws:iam::123456789012:instance-profile/" + "p/" * 200 + "n" * 128})
    tags = snapshot_tags.launch_tags(snapshot_sets.launch_record(longest))
    snapshot_tags.check_tag_limits(tags)
    assert tags[snapshot_tags.KEY_LAUNCH_PROFILE] == "n" * 128


def test_a_set_from_before_the_record_has_none():
    tags = snapshot_tags.build_set_tags(instance_id="i-1", volumes={"vol-d": {"device": "xvdb"}}, **FIELDS)
    assert snapshot_tags.decode_launch(tags) is None
    assert snapshot_tags.decode_snapshot(tags, "vol-d")["launch"] is None
