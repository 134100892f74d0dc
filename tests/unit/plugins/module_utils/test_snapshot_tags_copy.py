"""The DR-copy tags of the schema: a copy keeps its set's tags (the same set id), names where it came from and the
member volume it stands for, and is read back as that member although its own VolumeId is EC2's placeholder."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets, snapshot_tags

AT = datetime.datetime(2026, 11, 25, 1, 37, tzinfo=datetime.timezone.utc)


def source_tags(**extra):
    tags = snapshot_tags.build_set_tags(
        set_id="set-1", instance_id="i-1", engine="crash", consistency="crash", created_at=AT, version="0.2.0",
        volumes={"vol-1": {"device": "xvdb", "paths": ["D:\\"]}, "vol-2": {"device": "xvdc"}}, policy="nightly",
        user_tags={"Owner": "dba"})
    tags.update(extra)
    return tags


def test_a_copy_keeps_the_set_and_records_its_source_and_member_volume():
    tags = snapshot_tags.build_copy_tags(source_tags(), "vol-1", "snap-1", "us-east-1", "123456789012")
    assert tags[snapshot_tags.KEY_SET_ID] == "set-1" and tags[snapshot_tags.KEY_POLICY] == "nightly"
    assert tags["Owner"] == "dba" and tags[snapshot_tags.volume_key("vol-2")] == "device=xvdc;paths="
    assert snapshot_tags.decode_copy(tags) == {"set_id": "set-1", "region": "us-east-1", "account_id": "123456789012",
                                               "snapshot_id": "snap-1", "volume_id": "vol-1"}
    assert snapshot_tags.decode_copy(source_tags()) is None


def test_the_destination_policy_replaces_the_sources_and_a_hold_stays_behind():
    tags = snapshot_tags.build_copy_tags(source_tags(**{snapshot_tags.KEY_HOLD: "audit"}), "vol-1", "snap-1",
                                         "us-east-1", "123456789012", policy="vault")
    assert tags[snapshot_tags.KEY_POLICY] == "vault" and snapshot_tags.KEY_HOLD not in tags


def test_a_copy_of_a_copy_names_its_own_source():
    first = snapshot_tags.build_copy_tags(source_tags(), "vol-1", "snap-1", "us-east-1", "123456789012")
    second = snapshot_tags.build_copy_tags(first, "vol-1", "snap-2", "us-west-2", "123456789012")
    assert snapshot_tags.decode_copy(second)["snapshot_id"] == "snap-2"
    assert snapshot_tags.decode_copy(second)["region"] == "us-west-2"


def test_a_set_whose_copy_tags_do_not_fit_is_refused():
    crowded = source_tags(**dict(("user-%02d" % n, "x") for n in range(38)))
    assert len(crowded) <= snapshot_tags.MAX_TAGS_PER_SNAPSHOT
    with pytest.raises(snapshot_tags.TagSchemaError, match="needs 54 tags"):
        snapshot_tags.build_copy_tags(crowded, "vol-1", "snap-1", "us-east-1", "123456789012")


def test_a_copy_stands_for_the_member_volume_its_tags_name_not_its_placeholder_volume_id():
    tags = snapshot_tags.build_copy_tags(source_tags(), "vol-2", "snap-2", "us-east-1", "123456789012")
    snapshot = {"SnapshotId": "snap-9", "VolumeId": "vol-ffffffff", "State": "completed",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    member = snapshot_sets.describe_member(snapshot)
    assert (member["volume_id"], member["device"]) == ("vol-2", "xvdc")
    found = snapshot_sets.group_sets([snapshot])[0]
    assert found["missing_volume_ids"] == ["vol-1"] and found["status"] == "incomplete"
