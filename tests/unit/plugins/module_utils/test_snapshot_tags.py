"""The tag schema: encoding round trips, limits and the rules that keep consistency claims honest."""

import datetime

import pytest
import yaml

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION

NOW = datetime.datetime(2026, 11, 25, 1, 2, 3, tzinfo=datetime.timezone.utc)


def build(**overrides):
    arguments = dict(
        set_id="set-1", instance_id="i-1", engine="shadow", consistency="unverified", created_at=NOW, version="0.1.0",
        volumes={"vol-b": {"device": "xvdb", "paths": ["D:\\"], "shadow_id": "{S-B}"}, "vol-a": {"device": "/dev/sda1"}},
    )
    arguments.update(overrides)
    return snapshot_tags.build_set_tags(**arguments)


@pytest.mark.parametrize("paths", [[], ["D:\\"], ["E:\\", "C:\\mnt\\logs;old|x=y%20"], ["C:\\Données\\日本"]])
def test_volume_value_round_trips(paths):
    value = snapshot_tags.encode_volume("xvdc", paths, "{0000-1111}")
    assert snapshot_tags.decode_volume(value) == {"device": "xvdc", "paths": paths, "shadow_id": "{0000-1111}"}


def test_set_tags_carry_the_schema_and_every_member():
    tags = build(policy="daily", backup_type="copy", shadow_set_id="{SET}", user_tags={"Name": "nightly", "Empty": None})
    assert tags["shadowsnap:set-id"] == "set-1"
    assert tags["shadowsnap:created-at"] == "2026-11-25T01:02:03Z"
    assert tags["shadowsnap:schema"] == snapshot_tags.SCHEMA_VERSION
    assert tags["Name"] == "nightly" and tags["Empty"] == ""
    decoded = snapshot_tags.decode_snapshot(tags, "vol-b")
    assert decoded["member_volume_ids"] == ["vol-a", "vol-b"]
    assert (decoded["device"], decoded["paths"], decoded["shadow_id"]) == ("xvdb", ["D:\\"], "{S-B}")
    assert decoded["backup_type"] == "copy" and decoded["policy"] == "daily" and decoded["shadow_set_id"] == "{SET}"
    assert decoded["user_tags"] == {"Name": "nightly", "Empty": ""}
    assert snapshot_tags.decode_snapshot(tags, "vol-a")["paths"] == []


def test_a_snapshot_whose_volume_is_not_in_the_membership_decodes_without_volume_data():
    decoded = snapshot_tags.decode_snapshot(build(), "vol-z")
    assert decoded["device"] is None and decoded["shadow_id"] is None


@pytest.mark.parametrize("overrides, message", [
    ({"engine": "crash", "consistency": "application"}, "crash engine cannot produce application"),
    ({"engine": "vss"}, "engine must be one of"),
    ({"consistency": "perfect"}, "consistency must be one of"),
    ({"backup_type": "incremental"}, "backup type must be one of"),
    ({"fallback_from": "shadow"}, "can stand in for a failed shadow or aws_vss backup"),
    ({"engine": "crash", "consistency": "crash", "fallback_from": "crash"}, "not 'crash' for 'crash'"),
    ({"user_tags": {"shadowsnap:set-id": "x"}}, "reserved prefix"),
    ({"user_tags": {"aws:backup": "x"}}, "AWS reserves"),
    ({"user_tags": {"T%d" % n: "v" for n in range(42)}}, "EC2 allows 50"),
    ({"volumes": {"vol-a": {"device": "xvdb", "paths": ["C:\\" + "x" * 260]}}}, "EC2 allows 256"),
])
def test_values_outside_the_schema_or_ec2_limits_are_refused(overrides, message):
    with pytest.raises(snapshot_tags.TagSchemaError, match=message):
        build(**overrides)


def test_a_fallback_set_records_the_engine_that_failed():
    tags = build(engine="crash", consistency="crash", fallback_from="aws_vss")
    assert tags["shadowsnap:fallback-from"] == "aws_vss"
    assert snapshot_tags.decode_snapshot(tags, "vol-a")["fallback_from"] == "aws_vss"
    assert snapshot_tags.decode_snapshot(build(), "vol-a")["fallback_from"] is None


def test_created_at_parses_back_and_tolerates_garbage():
    assert snapshot_tags.parse_created_at(snapshot_tags.format_created_at(NOW)) == NOW
    assert snapshot_tags.parse_created_at("yesterday") is None
    assert snapshot_tags.parse_created_at(None) is None


def test_collection_version_matches_galaxy_yml():
    with open("galaxy.yml", encoding="utf-8") as handle:
        assert yaml.safe_load(handle)["version"] == COLLECTION_VERSION


def test_the_default_set_id_is_the_instance_id_and_the_utc_time_to_the_second():
    local = datetime.datetime(2026, 11, 25, 2, 37, 0, 999999, tzinfo=datetime.timezone(datetime.timedelta(hours=1)))
    assert snapshot_tags.default_set_id("i-0123456789abcdef0", local) == "i-0123456789abcdef0-20261125T013700Z"


def test_the_awx_job_id_is_recorded_and_read_back_only_when_there_is_one():
    tags = build(job_id=4711)
    assert tags[snapshot_tags.KEY_AWX_JOB_ID] == "4711"
    assert snapshot_tags.decode_snapshot(tags, "vol-a")["awx_job_id"] == "4711"
    assert snapshot_tags.KEY_AWX_JOB_ID not in build(job_id="") and snapshot_tags.KEY_AWX_JOB_ID not in build()
