"""The archive rule and the 90-day minimum (module_utils/set_tiers.py) on set summaries, without AWS."""

import datetime

from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers

NOW = datetime.datetime(2026, 12, 1, 12, tzinfo=datetime.timezone.utc)


def summary(set_id, days, status="completed", tier="standard"):
    return {"set_id": set_id, "status": status, "snapshots": [
        {"snapshot_id": "snap-%s-%d" % (set_id, n), "volume_id": "vol-%d" % n, "storage_tier": tier} for n in range(2)],
        "created_at": (NOW - datetime.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def kept(found, *reasons):
    return {"set_id": found["set_id"], "instance_id": "i-1", "policy": "nightly", "created_at": found["created_at"],
            "reasons": list(reasons) or ["monthly snapshot"]}


def test_the_archive_rule_spares_the_newest_application_set_ami_used_incomplete_and_archived_sets():
    sets = [summary("newest-app", 100), summary("recent", 10), summary("old", 200), summary("used", 300),
            summary("half", 400, status="incomplete"), summary("archived", 500, tier="archive"), summary("oldest", 600)]
    entries = [kept(sets[0], "monthly snapshot", "newest complete application set of i-1")] + [kept(s) for s in sets[1:]]
    chosen = set_tiers.plan_archival(entries, dict((s["set_id"], s) for s in sets), {}, {"snap-used-1": ["ami-1"]},
                                     NOW, after_days=30, keep_standard=1)
    assert [(entry["set_id"], reasons) for entry, reasons in chosen] == [
        ("old", ["archived: older than 30 days", "archived: beyond the newest 1 complete sets kept in the standard tier"]),
        ("oldest", ["archived: older than 30 days", "archived: beyond the newest 1 complete sets kept in the standard tier"])]
    by_age = set_tiers.plan_archival(entries, dict((s["set_id"], s) for s in sets), {}, {"snap-used-1": ["ami-1"]},
                                     NOW, after_days=30)
    assert [entry["set_id"] for entry, dummy in by_age] == ["old", "oldest"], "the newest application set stays"
    by_count = set_tiers.plan_archival(entries, dict((s["set_id"], s) for s in sets), {}, {}, NOW, keep_standard=3)
    assert [entry["set_id"] for entry, dummy in by_count] == ["used", "oldest"], \
        "the newest application set takes one of the count's slots; with no AMI using it, set used is archived too"


def test_an_archival_in_progress_makes_a_set_neither_standard_nor_archived():
    found = summary("moving", 100)
    statuses = {"snap-moving-0": {"LastTieringOperationStatus": "archival-in-progress", "StorageTier": "standard"}}
    assert set_tiers.set_tier(found, statuses) == "mixed"
    assert set_tiers.member_state(found["snapshots"][0], statuses) == "archival-in-progress"


def test_early_deletion_counts_from_the_archival_and_names_the_cost():
    found = summary("young", 200, tier="archive")
    statuses = {"snap-young-0": {"ArchivalCompleteTime": NOW - datetime.timedelta(days=89, hours=23)},
                "snap-young-1": {"ArchivalCompleteTime": NOW - datetime.timedelta(days=90)}}
    early = set_tiers.early_deletions(found, statuses, NOW)
    assert early == [{"snapshot_id": "snap-young-0", "days_archived": 89, "days_billed_anyway": 1}]
    assert "snap-young-0 89 days, 1 days still billed" in set_tiers.early_deletion_reason("young", early)
