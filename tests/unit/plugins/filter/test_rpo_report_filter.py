"""The RPO verdicts of the rpo_report filter, on sets grouped by snapshot_sets from snapshots tagged by the schema."""

import datetime
import math

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.shadowsnap.ec2.plugins.filter.rpo_report import (
    KINDS, TICK_SPACING, FilterModule, Timeline, age_text, rpo_report)
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets, snapshot_tags

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
VOLUMES = {"vol-root": {"device": "/dev/sda1"}, "vol-data": {"device": "xvdb", "paths": ["D:\\"]}}
INVENTORY = {"sql-01": "i-sql"}


def described(set_id, hours, instance_id="i-sql", engine="shadow", consistency="application", state="completed",
              drop=None, fallback_from=None):
    """DescribeSnapshots entries of one set as ec2_snapshot_set tags it; ``drop`` leaves one member volume out, and
    ``hours=None`` the created-at tag."""
    tags = snapshot_tags.build_set_tags(
        set_id=set_id, instance_id=instance_id, engine=engine, consistency=consistency,
        created_at=NOW - datetime.timedelta(hours=hours or 0), version="0.2.0", volumes=VOLUMES,
        fallback_from=fallback_from)
    if hours is None:
        del tags[snapshot_tags.KEY_CREATED_AT]
    return [
        {"SnapshotId": "snap-%s-%s" % (set_id, volume_id), "VolumeId": volume_id, "State": state,
         "StartTime": NOW, "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]}
        for volume_id in sorted(VOLUMES) if volume_id != drop
    ]


def sets(*described_sets):
    return snapshot_sets.group_sets([snapshot for one in described_sets for snapshot in one])


def report(found, inventory=None, **options):
    options.setdefault("now", NOW.isoformat())
    return rpo_report(found, inventory=INVENTORY if inventory is None else inventory, **options)


def row(result, instance_id="i-sql"):
    return next(one for one in result["instances"] if one["instance_id"] == instance_id)


def test_a_complete_application_set_within_the_rpo_is_in_and_says_how_old_it_is():
    result = report(sets(described("nightly", 3)), rpo_hours=24)
    (only,) = result["instances"]
    assert (only["verdict"], only["in_rpo"], only["hosts"], only["sources"]) == ("in_rpo", True, ["sql-01"], ["inventory"])
    assert (only["last_good"]["set_id"], only["last_good"]["age_seconds"]) == ("nightly", 3 * 3600)
    assert only["reason"] == "last good set 3.0 h old, within the RPO of 24 h"
    assert result["counts"] == {"instances": 1, "in_rpo": 1, "out_of_rpo": 0}
    assert (result["rpo_hours"], result["generated_at"]) == (24.0, "2026-06-30T12:00:00Z")


def test_the_rpo_boundary_itself_is_inside_and_one_second_more_is_out():
    at_limit = report(sets(described("nightly", 24)), rpo_hours=24)
    assert row(at_limit)["in_rpo"]
    later = report(sets(described("nightly", 24)), rpo_hours=24, now=(NOW + datetime.timedelta(seconds=1)).isoformat())
    assert not row(later)["in_rpo"]
    assert row(later)["reason"].startswith("last good set 24.0 h old, older than the RPO of 24 h")


@pytest.mark.parametrize("newest, kind, note", [
    (dict(engine="crash", consistency="crash", fallback_from="shadow"), "crash", "a fallback: the shadow engine failed"),
    (dict(engine="crash", consistency="crash"), "crash", "crash-consistent only: it does not count"),
    (dict(consistency="unverified"), "unverified", "never proven"),
    (dict(state="pending"), "pending", "does not count until all are completed"),
    (dict(state="error"), "incomplete", "failed (error)"),
    (dict(drop="vol-root"), "incomplete", "no snapshot of vol-root"),
])
def test_a_newer_set_that_is_not_good_never_counts_and_the_older_good_one_gives_the_age(newest, kind, note):
    result = report(sets(described("older", 30), described("newest", 1, **newest)), rpo_hours=24)
    judged = row(result)
    assert (judged["verdict"], judged["last_good"]["set_id"]) == ("out_of_rpo", "older")
    assert judged["last_good"]["age_seconds"] == 30 * 3600
    assert (judged["newest"]["set_id"], judged["newest"]["kind"]) == ("newest", kind)
    entry = judged["sets"][0]
    assert (entry["set_id"], entry["good"]) == ("newest", False) and note in entry["note"]
    assert "newer sets do not count (newest: %s 1.0 h ago)" % kind in judged["reason"]


def test_an_instance_without_any_set_or_without_a_good_one_is_out_and_says_so():
    result = report(sets(described("crash-only", 1, instance_id="i-web", engine="crash", consistency="crash")),
                    inventory={"sql-01": "i-sql", "web-01": "i-web"})
    assert row(result, "i-sql")["reason"] == "no snapshot set at all"
    assert row(result, "i-sql")["last_good"] is None and row(result, "i-sql")["newest"] is None
    web = row(result, "i-web")
    assert web["verdict"] == "out_of_rpo"
    assert web["reason"].startswith("no good set (complete and application-consistent); the newest is crash 1.0 h ago")
    assert result["counts"] == {"instances": 2, "in_rpo": 0, "out_of_rpo": 2}


def test_a_set_without_a_creation_time_does_not_count():
    judged = row(report(sets(described("undated", None))))
    assert judged["verdict"] == "out_of_rpo" and judged["last_good"] is None
    (entry,) = judged["sets"]
    assert (entry["age_seconds"], entry["position"], entry["good"]) == (None, None, False)
    assert "age is unknown" in entry["note"] and judged["newest"]["set_id"] == "undated"


def test_an_inventory_host_without_an_instance_id_is_a_row_that_cannot_be_judged():
    result = report(sets(described("nightly", 1)), inventory={"sql-01": "i-sql", "lost-01": ""})
    lost = next(one for one in result["instances"] if one["hosts"] == ["lost-01"])
    assert (lost["instance_id"], lost["verdict"], lost["sets"]) == ("", "out_of_rpo", [])
    assert "no EC2 instance id for lost-01" in lost["reason"]


def test_hosts_naming_one_instance_share_its_row():
    result = report(sets(described("nightly", 1)), inventory={"sql-01": "i-sql", "sql-01.example.com": "i-sql"})
    (only,) = result["instances"]
    assert only["hosts"] == ["sql-01", "sql-01.example.com"] and only["label"] == "sql-01, sql-01.example.com"


def test_windows_instances_ec2_lists_join_the_inventory_and_the_others_are_listed_as_ignored():
    listed = [
        {"instance_id": "i-sql", "platform": "windows", "tags": {"Name": "SQL Server"}},
        {"instance_id": "i-new", "platform": "windows", "tags": {"Name": "new-app"}},
        {"instance_id": "i-linux", "tags": {"Name": "bastion"}},
    ]
    result = report(sets(described("nightly", 1)), ec2_instances=listed)
    sql, new = row(result, "i-sql"), row(result, "i-new")
    assert (sql["sources"], sql["name"], sql["label"]) == (["inventory", "ec2"], "SQL Server", "sql-01")
    assert (new["sources"], new["hosts"], new["label"], new["reason"]) == (["ec2"], [], "new-app", "no snapshot set at all")
    assert result["ignored"] == [{"instance_id": "i-linux", "reason": "not a Windows instance (platform Linux/UNIX)"}]
    assert result["counts"]["instances"] == 2


def test_rows_come_stalest_first():
    found = sets(described("a", 2, instance_id="i-a"), described("b", 20, instance_id="i-b"),
                 described("c", 5, instance_id="i-c", consistency="unverified"))
    result = report(found, inventory={"a": "i-a", "b": "i-b", "c": "i-c", "d": "i-d"})
    assert [one["label"] for one in result["instances"]] == ["c", "d", "b", "a"]


def test_sets_are_newest_first_with_a_count_of_each_kind():
    judged = row(report(sets(described("old", 50), described("crash", 2, engine="crash", consistency="crash"),
                             described("new", 1))))
    assert [entry["set_id"] for entry in judged["sets"]] == ["new", "crash", "old"]
    assert judged["kinds"] == {"application": 2, "crash": 1, "unverified": 0, "pending": 0, "incomplete": 0}
    assert set(judged["kinds"]) == set(KINDS)


def test_the_timeline_puts_older_sets_further_left_and_leaves_out_what_is_older_than_it():
    judged = row(report(sets(*(described("s%d" % hours, hours) for hours in (0, 1, 5, 23, 100, 168, 169))),
                        rpo_hours=24, timeline_days=7))
    positions = [entry["position"] for entry in judged["sets"]]
    assert positions[0] == 100.0 and positions[-2] == 0.0 and positions[-1] is None
    assert positions[:-1] == sorted(positions[:-1], reverse=True) and len(set(positions[:-1])) == 6
    assert not judged["last_good_off_scale"]


def test_a_last_good_set_older_than_the_timeline_is_flagged_off_scale():
    judged = row(report(sets(described("ancient", 400), described("crash", 1, engine="crash", consistency="crash")),
                        rpo_hours=24, timeline_days=7))
    assert judged["last_good_off_scale"] and judged["last_good"]["set_id"] == "ancient"
    assert judged["sets"][1]["position"] is None


def test_the_timeline_spans_at_least_twice_the_rpo_and_labels_now_the_rpo_and_its_start():
    result = report([], rpo_hours=120, timeline_days=7)
    timeline = result["timeline"]
    assert timeline["hours"] == 240.0
    assert (timeline["start"], timeline["end"]) == ("2026-06-20T12:00:00Z", "2026-06-30T12:00:00Z")
    labels = [tick["label"] for tick in timeline["ticks"]]
    assert labels[0] == "-10 d" and labels[-1] == "now" and "-5 d" in labels
    (rpo_tick,) = [tick for tick in timeline["ticks"] if tick["rpo"]]
    assert rpo_tick["position"] == timeline["rpo_position"]
    spots = [tick["position"] for tick in timeline["ticks"]]
    assert spots == sorted(spots) and all(b - a >= TICK_SPACING for a, b in zip(spots, spots[1:]))


def test_the_last_rpo_period_takes_about_half_the_default_timeline():
    timeline = Timeline(window_hours=168, rpo_hours=24)
    assert 40 < 100 - timeline.position(24 * 3600) < 60
    assert timeline.position(-60) == 100.0, "a set from a skewed clock is at now"


@pytest.mark.parametrize("seconds, text", [(0, "0 min"), (59 * 60, "59 min"), (3600, "1.0 h"), (47 * 3600, "47.0 h"),
                                           (50 * 3600, "2 d 2 h"), (-30, "0 min")])
def test_ages_read_as_people_say_them(seconds, text):
    assert age_text(seconds) == text


@pytest.mark.parametrize("option, value", [("rpo_hours", 0), ("rpo_hours", -1), ("rpo_hours", "a day"),
                                           ("rpo_hours", True), ("rpo_hours", math.nan), ("rpo_hours", None),
                                           ("timeline_days", 0), ("now", "yesterday")])
def test_bad_options_are_refused_with_their_name(option, value):
    with pytest.raises(AnsibleFilterError, match=option):
        report([], **{option: value})


def test_options_given_as_survey_text_are_read_as_numbers():
    result = report(sets(described("nightly", 3)), rpo_hours="2.5", timeline_days="1")
    assert (result["rpo_hours"], result["timeline"]["hours"], row(result)["in_rpo"]) == (2.5, 24.0, False)


@pytest.mark.parametrize("found", [{"sets": []}, ["set-1"], "sets"])
def test_input_that_is_not_a_list_of_sets_is_refused(found):
    with pytest.raises(AnsibleFilterError, match="list of sets"):
        report(found)


def test_the_filter_is_published_under_its_name():
    assert FilterModule().filters() == {"rpo_report": rpo_report}
