"""The restore and swap tags of the schema: what a restored volume records, what a replaced volume records, and that
both read back from the tags alone."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags

AT = datetime.datetime(2026, 11, 25, 1, 37, 5, 123456, tzinfo=datetime.timezone.utc)


def restored_tags(**overrides):
    values = dict(restore_id="r-1", set_id="set-1", snapshot_id="snap-1", source_instance_id="i-1",
                  source_volume_id="vol-1", device="xvdb", paths=["D:\\", "C:\\Mounts\\a|b;c=d%e"],
                  shadow_id="{aaaaaaaa-0000-4000-8000-000000000001}", engine="shadow", set_consistency="application",
                  consistency="crash", created_at=AT, version="0.2.0")
    values.update(overrides)
    return snapshot_tags.build_restored_volume_tags(**values)


def test_a_restored_volume_reads_back_what_it_was_restored_from():
    tags = restored_tags(user_tags={"Owner": "dba"})
    assert tags[snapshot_tags.KEY_RESTORE_PATHS] == "D:\\|C:\\Mounts\\a%7Cb%3Bc%3Dd%25e"
    assert tags[snapshot_tags.KEY_SCHEMA] == "1" and tags["Owner"] == "dba"
    assert snapshot_tags.decode_restored_volume(tags) == {
        "restore_id": "r-1", "set_id": "set-1", "snapshot_id": "snap-1", "source_instance_id": "i-1",
        "source_volume_id": "vol-1", "device": "xvdb", "paths": ["D:\\", "C:\\Mounts\\a|b;c=d%e"],
        "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000001}", "engine": "shadow", "set_consistency": "application",
        "consistency": "crash", "created_at": "2026-11-25T01:37:05Z"}
    without_shadow = restored_tags(shadow_id=None)
    assert snapshot_tags.KEY_RESTORE_SHADOW_ID not in without_shadow
    assert snapshot_tags.decode_restored_volume(without_shadow)["shadow_id"] is None
    assert snapshot_tags.decode_restored_volume({"Name": "not restored"}) is None


def test_restore_tags_do_not_look_like_set_membership():
    """A restored volume's keys never start with the per-volume prefix of a set, so no reader takes them for members."""
    assert not any(key.startswith(snapshot_tags.VOLUME_KEY_PREFIX) for key in restored_tags())


@pytest.mark.parametrize("user_tags, message", [
    ({"shadowsnap:restore:id": "x"}, "reserved prefix"),
    ({"aws:cloudformation": "x"}, "which AWS reserves"),
    ({"Note": "x" * 257}, "257 characters long"),
])
def test_restore_tags_are_checked_like_a_sets(user_tags, message):
    with pytest.raises(snapshot_tags.TagSchemaError, match=message):
        restored_tags(user_tags=user_tags)


def test_a_replaced_volume_finds_its_own_entry_among_its_swaps_entries():
    tags = {snapshot_tags.replaced_by_key("vol-1"): snapshot_tags.encode_replaced("vol-r1", "xvdb", "i-1", AT),
            snapshot_tags.replaced_by_key("vol-2"): snapshot_tags.encode_replaced("vol-r2", "/dev/xvdc", "i-1", AT)}
    assert tags[snapshot_tags.replaced_by_key("vol-1")] == "volume=vol-r1;device=xvdb;instance=i-1;at=2026-11-25T01:37:05Z"
    assert snapshot_tags.decode_replaced(tags, "vol-2") == {"volume_id": "vol-r2", "device": "/dev/xvdc",
                                                            "instance_id": "i-1", "at": "2026-11-25T01:37:05Z"}
    assert snapshot_tags.decode_replaced(tags, "vol-3") is None
