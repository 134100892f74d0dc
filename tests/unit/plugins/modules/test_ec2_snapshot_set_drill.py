"""ec2_snapshot_set_drill against the lab: a drill's verdict lands on every member of the set in one tag, a later
drill replaces it, a repeat changes nothing, and a set with no tag left is refused with nothing written."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_snapshot_set_drill as module
from unit.plugins.module_utils.lab_sets import UTC, Module, ec2, lab_fixture, lab_process_fixture, make_set  # noqa: F401 pylint: disable=unused-import

NIGHT = datetime.datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def drill(lab, set_id, verdict, moment=NIGHT, check_mode=False, consistency="application"):
    params = dict(set_id=set_id, verdict=verdict, consistency=consistency, drilled_at=None)
    return module.record(Module(lab, params, check_mode=check_mode), moment)


def drill_tags(lab, snapshot_ids):
    snapshots = ec2(lab).describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
    return sorted({t["Value"] for s in snapshots for t in s["Tags"] if t["Key"] == snapshot_tags.KEY_DRILL})


def test_the_verdict_is_on_every_member_replaced_by_the_next_drill_and_a_repeat_changes_nothing(lab):
    members = make_set(lab, "drilled")
    planned = drill(lab, "drilled", "passed", check_mode=True)
    assert planned["changed"] and planned["snapshot_ids"] == members and drill_tags(lab, members) == []
    result = drill(lab, "drilled", "passed")
    assert result["drill"] == {"at": "2026-12-02T02:00:00Z", "verdict": "passed", "consistency": "application"}
    assert drill_tags(lab, members) == ["at=2026-12-02T02:00:00Z;verdict=passed;consistency=application"]
    assert drill(lab, "drilled", "passed")["changed"] is False
    later = drill(lab, "drilled", "failed", moment=NIGHT + datetime.timedelta(days=1), consistency="crash")
    assert later["previous"]["verdict"] == "passed" and later["snapshot_ids"] == members
    assert drill_tags(lab, members) == ["at=2026-12-03T02:00:00Z;verdict=failed;consistency=crash"]


def test_a_set_with_no_tag_left_or_no_set_at_all_is_refused_before_any_tag_is_written(lab):
    members = make_set(lab, "crowded")
    own = len(ec2(lab).describe_snapshots(SnapshotIds=members[:1])["Snapshots"][0]["Tags"])
    ec2(lab).create_tags(Resources=members[:1], Tags=[{"Key": "user-%d" % n, "Value": "x"}
                                                      for n in range(snapshot_tags.MAX_TAGS_PER_SNAPSHOT - own)])
    with pytest.raises(snapshot_tags.TagSchemaError, match="%s already carry the 50 tags" % members[0]):
        drill(lab, "crowded", "passed")
    assert drill_tags(lab, members) == []
    with pytest.raises(snapshot_tags.TagSchemaError, match="no snapshot set gone"):
        drill(lab, "gone", "passed")


def test_a_verdict_outside_the_schema_is_refused_and_a_tag_decodes_back():
    with pytest.raises(snapshot_tags.TagSchemaError, match="passed, failed"):
        snapshot_tags.encode_drill(NIGHT, "maybe", "crash")
    value = snapshot_tags.encode_drill(NIGHT, "failed", "crash")
    assert snapshot_tags.decode_drill({snapshot_tags.KEY_DRILL: value}) == {
        "at": "2026-12-02T02:00:00Z", "verdict": "failed", "consistency": "crash"}
    assert snapshot_tags.decode_drill({}) is None
