"""Deleting whole sets against the lab (moto behind the fault proxy, EC2's refusals and token buckets), and the
pacer's arithmetic on a clock the test moves."""

import datetime

import pytest

from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_deletion, snapshot_sets
from unit.plugins.module_utils.lab_sets import (  # pylint: disable=unused-import
    OTHER_ACCOUNT, ec2, found_set, lab_fixture, lab_process_fixture, make_set, present, register_image_using)

ACCOUNT = "123456789012"


def deleting_client(lab, pacer=None):
    """The client ec2_snapshot_set and the retention module delete with: an ordinary one, paced."""
    return (pacer or set_deletion.DeletePacer()).attach(ec2(lab))


def test_a_set_is_deleted_whole_and_nothing_else(lab):
    doomed = make_set(lab, "doomed")
    kept = make_set(lab, "kept")
    outcome = set_deletion.delete_set(deleting_client(lab), found_set(lab, "doomed"))
    assert sorted(outcome["deleted_snapshot_ids"]) == doomed and len(doomed) == 3
    assert outcome["already_deleted"] == [] and outcome["refused"] == [] and outcome["errors"] == []
    assert present(lab, doomed + kept) == kept
    assert found_set(lab, "doomed") is None


def test_a_set_deleted_halfway_is_finished_and_a_member_gone_meanwhile_counts_as_deleted(lab):
    members = make_set(lab, "half")
    lab.ec2().delete_snapshot(SnapshotId=members[0])
    half = found_set(lab, "half")
    assert half["status"] == "incomplete", "the membership tags on the others tell"
    lab.ec2().delete_snapshot(SnapshotId=members[1])
    outcome = set_deletion.delete_set(deleting_client(lab), half)
    assert outcome["already_deleted"] == [members[1]] and outcome["deleted_snapshot_ids"] == [members[2]]
    assert present(lab, members) == []


def test_an_ami_used_or_locked_member_is_skipped_with_ec2s_reason_and_the_rest_deleted(lab):
    members = make_set(lab, "protected")
    client = ec2(lab)
    image_id = register_image_using(lab, members[0])
    client.lock_snapshot(SnapshotId=members[1], LockMode="compliance", LockDuration=30)
    outcome = set_deletion.delete_set(deleting_client(lab), found_set(lab, "protected"))
    refused = {entry["snapshot_id"]: entry["reason"] for entry in outcome["refused"]}
    assert refused[members[0]] == ("in use: InvalidSnapshot.InUse: The snapshot %s is currently in use by %s"
                                   % (members[0], image_id))
    assert refused[members[1]].startswith("locked: compliance lock until ")
    assert "InvalidSnapshot.Locked" in refused[members[1]], "EC2's answer is kept in the reason"
    assert outcome["deleted_snapshot_ids"] == [members[2]] and outcome["errors"] == []
    assert present(lab, members) == members[:2]


def test_other_failures_are_errors_and_do_not_stop_the_other_members(lab):
    members = make_set(lab, "denied")
    found = found_set(lab, "denied")
    first = found["snapshots"][0]["snapshot_id"]
    lab.faults(rules=[{"action": "DeleteSnapshot", "error": "UnauthorizedOperation", "count": 1}])
    outcome = set_deletion.delete_set(deleting_client(lab), found)
    assert [entry["snapshot_id"] for entry in outcome["errors"]] == [first]
    assert outcome["errors"][0]["error"].startswith("could not delete %s: UnauthorizedOperation" % first)
    assert sorted(outcome["deleted_snapshot_ids"]) == sorted(set(members) - {first}) and outcome["refused"] == []


def test_a_lost_delete_answer_is_retried_and_counts_as_deleted(lab):
    members = make_set(lab, "lost")
    found = found_set(lab, "lost")
    lab.faults(rules=[{"action": "DeleteSnapshot", "lose_response": "drop", "count": 1},
                      {"action": "DeleteSnapshot", "error": "InternalError", "count": 1}])
    outcome = set_deletion.delete_set(deleting_client(lab), found)
    assert present(lab, members) == [] and outcome["errors"] == []
    assert sorted(outcome["deleted_snapshot_ids"] + outcome["already_deleted"]) == members
    assert outcome["already_deleted"] == [found["snapshots"][0]["snapshot_id"]], \
        "the dropped answer's delete had been carried out"


def test_a_set_of_another_account_or_instance_or_without_the_schema_is_refused_whole(lab):
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "theirs", "created_at": "2026-01-01T00:00:00Z", "owner_id": OTHER_ACCOUNT},
                           {"set_id": "mixed", "created_at": "2026-01-01T00:00:00Z"},
                           {"set_id": "bare", "created_at": "2026-01-01T00:00:00Z", "tags": {"shadowsnap:schema": None}}])
    found = found_set(lab, "base")
    assert set_deletion.refusal(found, ACCOUNT, found["instance_id"]) is None
    assert set_deletion.refusal(found, ACCOUNT, "i-0000000000000000a") == (
        "its snapshots belong to instances %s, not only to i-0000000000000000a" % found["instance_id"])
    theirs = snapshot_sets.group_sets(ec2(lab).describe_snapshots(OwnerIds=[OTHER_ACCOUNT])["Snapshots"])[0]
    assert set_deletion.refusal(theirs, ACCOUNT) == "snapshots %s are not owned by account %s" % (
        ", ".join(sorted(member["snapshot_id"] for member in theirs["snapshots"])), ACCOUNT)
    assert "do not carry the collection's tag schema" in set_deletion.refusal(found_set(lab, "bare"), ACCOUNT)


def test_the_pool_deletes_at_most_workers_sets_at_a_time(lab):
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "set-%d" % n, "created_at": "2026-01-0%dT00:00:00Z" % (n + 1)} for n in range(6)])
    sets = [found_set(lab, "set-%d" % n) for n in range(6)]
    lab.faults(latency_ms=30)
    outcomes = set_deletion.delete_sets(deleting_client(lab), sets, workers=3)
    assert [outcome["set_id"] for outcome in outcomes] == ["set-%d" % n for n in range(6)], "in the order given"
    assert all(len(outcome["deleted_snapshot_ids"]) == 3 for outcome in outcomes)
    remaining = dict((found["set_id"], 3) for found in sets)
    open_sets, most = set(), 0
    for entry in lab.deletions():
        open_sets.add(entry["set_id"])
        remaining[entry["set_id"]] -= 1
        most = max(most, len(open_sets))
        if not remaining[entry["set_id"]]:
            open_sets.discard(entry["set_id"])
    assert most == 3, "three sets in flight at the most, and three at some point"


def test_paced_deletes_stay_inside_ec2s_bucket(lab):
    """The lab's DeleteSnapshot bucket at half EC2's figures (50 burst, 2.5 per second) and a pacer shaped like it:
    past the burst the deletes run at the refill rate, and EC2 never answers RequestLimitExceeded."""
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "set-%02d" % n, "created_at": "2026-01-01T00:%02d:00Z" % n} for n in range(22)])
    sets = [found_set(lab, "set-%02d" % n) for n in range(22)]
    lab.faults(rate_limits=0.5)
    pacer = set_deletion.DeletePacer(rate=2.5, burst=50)
    outcomes = set_deletion.delete_sets(deleting_client(lab, pacer), sets, workers=4)
    assert sum(len(outcome["deleted_snapshot_ids"]) for outcome in outcomes) == 66
    assert lab.counts()["actions"]["DeleteSnapshot"]["throttled"] == 0 and pacer.throttled == 0
    times = [datetime.datetime.fromisoformat(entry["lab_time"]) for entry in lab.deletions()]
    steady = (times[-1] - times[49]).total_seconds()
    assert 16 / steady >= 0.9 * 2.5, "16 deletes after the burst at %.2f per second" % (16 / steady)


def test_throttling_is_retried_and_slows_the_pacer_but_never_reaches_the_caller(lab):
    """The lab's bucket at a fifth of EC2's (20 burst, 1 per second) while the pacer thinks EC2's figures apply."""
    make_set(lab, "base")
    lab.clone_set("base", [{"set_id": "set-%d" % n, "created_at": "2026-01-01T00:0%d:00Z" % n} for n in range(9)])
    sets = [found_set(lab, "set-%d" % n) for n in range(9)]
    lab.faults(rate_limits=0.2)
    pacer = set_deletion.DeletePacer()
    outcomes = set_deletion.delete_sets(deleting_client(lab, pacer), sets, workers=4)
    assert all(outcome["errors"] == [] and len(outcome["deleted_snapshot_ids"]) == 3 for outcome in outcomes)
    throttled = lab.counts()["actions"]["DeleteSnapshot"]["throttled"]
    assert throttled > 0 and pacer.throttled == throttled, "the pacer saw every throttled answer"
    assert pacer.stats()["attempts"] == 27 + throttled


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_the_pacer_spends_its_burst_then_the_refill_rate():
    clock = FakeClock()
    pacer = set_deletion.DeletePacer(rate=5, burst=4, clock=clock, sleep=clock.sleep)
    for dummy in range(5):
        pacer.take()
    assert clock.sleeps == pytest.approx([0.2, 0.2]), "one token less than EC2's bucket"
    clock.now += 10
    for dummy in range(3):
        pacer.take()
    assert len(clock.sleeps) == 2, "idle time refills up to the burst, no more"
    pacer.take()
    assert clock.sleeps[-1] == pytest.approx(0.2)


def test_a_throttled_answer_empties_the_pacer_and_halves_its_rate_once_per_second_then_it_climbs_back():
    clock = FakeClock()
    pacer = set_deletion.DeletePacer(rate=4, burst=100, clock=clock, sleep=clock.sleep)
    pacer.answered("RequestLimitExceeded")
    pacer.answered("RequestLimitExceeded")
    assert pacer.rate == 2 and pacer.tokens == 0 and pacer.throttled == 2, "one cut for answers within a second"
    pacer.take()
    assert clock.sleeps == [0.5]
    clock.now += 1
    for dummy in range(5):
        pacer.answered("RequestLimitExceeded")
        clock.now += 1
    assert pacer.rate == pytest.approx(0.4), "never below a tenth of the configured rate"
    pacer.answered("InvalidSnapshot.InUse")
    assert pacer.rate == pytest.approx(0.4), "a refusal is no congestion"
    for dummy in range(30):
        pacer.answered("")
    assert pacer.rate == 4, "successes climb back to the configured rate, no higher"
    with pytest.raises(ValueError):
        set_deletion.DeletePacer(rate=0)


def test_images_and_locks_become_the_planners_maps():
    images = [{"ImageId": "ami-2", "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-a"}},
                                                           {"DeviceName": "xvdb", "Ebs": {"SnapshotId": "snap-b"}}]},
              {"ImageId": "ami-1", "BlockDeviceMappings": [{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": "snap-a"}},
                                                           {"DeviceName": "xvdc", "VirtualName": "ephemeral0"}]}]
    assert set_deletion.images_by_snapshot(images) == {"snap-a": ["ami-1", "ami-2"], "snap-b": ["ami-2"]}
    expires = datetime.datetime(2027, 1, 1, 12, tzinfo=datetime.timezone.utc)
    assert set_deletion.locks_by_snapshot([{"SnapshotId": "snap-a", "LockState": "compliance-cooloff", "LockExpiresOn": expires}]) == {
        "snap-a": "compliance-cooloff lock until 2027-01-01T12:00:00Z"}
