# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proof that an EBS snapshot set holds a shadow set (shadow_proof.py): each check passing and failing on its own,
and the clocks read as the host and EC2 write them."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import shadow_proof

SET = "{5e7a0000-0000-4000-8000-000000000001}"
SHADOW_D = "{aaaaaaaa-0000-4000-8000-000000000001}"
SHADOW_L = "{aaaaaaaa-0000-4000-8000-000000000002}"
VOL_D, VOL_L = "vol-0abc0000000000001", "vol-0abc0000000000002"
INSTALLED = "20261125013700.250000+000"


def inputs():
    """A set taken 0.75 s (EC2's clock, moto-style whole seconds) after the shadow copies (the host's clock)."""
    shadows = {"D:": SHADOW_D, "L:": SHADOW_L}
    metadata = {VOL_D: {"paths": ["D:\\"], "shadow_id": SHADOW_D}, VOL_L: {"paths": ["L:\\"], "shadow_id": SHADOW_L}}
    ebs_set = {"set_id": "sql-1", "shadow_set_id": SET.upper(), "snapshots": [
        {"snapshot_id": "snap-d", "volume_id": VOL_D, "state": "pending", "shadow_id": SHADOW_D,
         "start_time": "2026-11-25T01:37:01+00:00"},
        {"snapshot_id": "snap-l", "volume_id": VOL_L, "state": "pending", "shadow_id": SHADOW_L,
         "start_time": "2026-11-25T01:37:01+00:00"}]}
    listing = [{"ID": SHADOW_D.upper(), "SetID": SET.upper(), "InstallDate": INSTALLED},
               {"ID": SHADOW_L.upper(), "SetID": SET.upper(), "InstallDate": INSTALLED},
               {"ID": "{bbbbbbbb-0000-4000-8000-000000000009}", "SetID": "{ffffffff-0000-4000-8000-000000000000}",
                "InstallDate": INSTALLED}]
    timeline = shadow_proof.Timeline(100.0, 101.25, 101.250002, 101.75, 101.75)
    return {"shadow_set_id": SET, "shadows": shadows, "volume_metadata": metadata, "ebs_set": ebs_set, "listing": listing,
            "timeline": timeline}


def prove(**changes):
    return shadow_proof.prove(**dict(inputs(), **changes))


def failed(proof):
    return {check["name"]: check["detail"] for check in proof.checks if not check["ok"]}


def test_a_set_taken_while_its_shadow_copies_existed_is_verified():
    proof = prove()
    assert proof.verified is True and proof.failures == []
    assert [check["name"] for check in proof.checks] == ["members", "shadow_ids", "states", "order", "shadows_present",
                                                         "host_clock"]
    result = proof.as_result()
    assert result["timeline"] == {"session_started": 0.0, "set_reported": 1.25, "snapshots_requested": 1.250002,
                                  "snapshots_returned": 1.75, "shadows_listed": 1.75}
    assert result["clock_tolerance_seconds"] == shadow_proof.CLOCK_TOLERANCE_SECONDS
    assert result["checks"][0]["detail"] == f"the set holds exactly the shadow set's EBS volumes: {VOL_D}, {VOL_L}"


def test_members_must_be_exactly_the_shadowed_volumes_and_not_none():
    data = inputs()
    data["ebs_set"]["snapshots"].pop()
    assert failed(shadow_proof.prove(**data)) == {"members": f"{VOL_L} (L:\\) is in the shadow set but has no snapshot in the set"}
    data = inputs()
    data["ebs_set"]["snapshots"].append({"snapshot_id": "snap-c", "volume_id": "vol-0boot", "state": "pending",
                                         "shadow_id": None, "start_time": "2026-11-25T01:37:01+00:00"})
    assert failed(shadow_proof.prove(**data))["members"] == (
        "vol-0boot has snapshot snap-c in the set but is not in the shadow set (its snapshot holds no shadow copy of this set)")
    empty = prove(volume_metadata={}, ebs_set={"shadow_set_id": SET, "snapshots": []})
    assert empty.verified is False
    assert failed(empty)["members"] == "the shadow set names no EBS volume, so no snapshot set can hold it"


def test_each_snapshot_carries_this_shadow_set_and_its_own_shadow_id():
    data = inputs()
    data["ebs_set"]["snapshots"][1]["shadow_id"] = SHADOW_D
    data["ebs_set"]["shadow_set_id"] = "{ffffffff-0000-4000-8000-000000000000}"
    assert failed(shadow_proof.prove(**data)) == {"shadow_ids": (
        f"the set is tagged with shadow set {{ffffffff-0000-4000-8000-000000000000}}, not {SET}; snapshot snap-l of {VOL_L} "
        f"is tagged with shadow copy {SHADOW_D}, not {SHADOW_L}")}


def test_a_snapshot_in_error_is_not_verified():
    data = inputs()
    data["ebs_set"]["snapshots"][0]["state"] = "error"
    assert failed(shadow_proof.prove(**data)) == {"states": f"snapshot snap-d of {VOL_D} is in error"}


def test_the_calls_must_have_been_made_in_order():
    proof = prove(timeline=shadow_proof.Timeline(100.0, 102.0, 101.5, 103.0, 102.5))
    assert failed(proof) == {"order": "CreateSnapshots was sent before the host reported the shadow set; the shadow copies "
                                      "were listed before CreateSnapshots returned"}


def test_a_shadow_copy_gone_after_the_ebs_point_in_time_is_not_verified():
    data = inputs()
    data["listing"] = data["listing"][1:]
    assert failed(shadow_proof.prove(**data)) == {"shadows_present": (
        f"shadow copy {SHADOW_D} of D: was gone when the host listed its shadow copies after CreateSnapshots returned: the "
        f"EBS snapshots may not hold it")}
    data["listing"][0]["SetID"] = "{ffffffff-0000-4000-8000-000000000000}"
    assert set(failed(shadow_proof.prove(**data))) == {"shadows_present"}, "a shadow copy of another set proves nothing"


@pytest.mark.parametrize("installed, start_time, verified", [
    ("20261125013705.900000+000", "2026-11-25T01:37:01+00:00", True),        # 4.9 s: within 5 s + the whole second
    ("20261125013707.100000+000", "2026-11-25T01:37:01+00:00", False),       # 6.1 s: beyond it
    ("20261125013706.500000+000", "2026-11-25T01:37:01.400000+00:00", False),  # 5.1 s with milliseconds: no second allowed
    ("20261125013300.000000+000", "2026-11-25T01:37:01+00:00", True),        # the host's clock behind EC2's
    ("20261125023706.000000+060", "2026-11-25T01:37:01+00:00", True),        # an offset in minutes, as WMI writes it
])
def test_the_hosts_record_of_the_shadow_creation_against_ec2s_start_time(installed, start_time, verified):
    data = inputs()
    for record in data["listing"]:
        record["InstallDate"] = installed
    for snapshot in data["ebs_set"]["snapshots"]:
        snapshot["start_time"] = start_time
    proof = shadow_proof.prove(**data)
    assert proof.verified is verified, proof.failures
    if not verified:
        assert set(failed(proof)) == {"host_clock"}
        assert "the host's clock is ahead of EC2's (resynchronise it: w32tm /resync)" in failed(proof)["host_clock"]


def test_times_that_cannot_be_read_are_not_verified():
    data = inputs()
    data["listing"][0]["InstallDate"] = None
    assert failed(shadow_proof.prove(**data)) == {"host_clock": (
        "snapshot snap-d: its start time '2026-11-25T01:37:01+00:00' or the creation time None of its shadow copy cannot be "
        "read")}


def test_clock_texts():
    assert shadow_proof.parse_wmi_datetime("20261125013700.123456+000") == datetime(
        2026, 11, 25, 1, 37, 0, 123456, tzinfo=timezone.utc)
    assert shadow_proof.parse_wmi_datetime("20261125013700.5-120") == datetime(
        2026, 11, 25, 3, 37, 0, 500000, tzinfo=timezone.utc)
    assert shadow_proof.parse_wmi_datetime("yesterday") is None and shadow_proof.parse_wmi_datetime(None) is None
    assert shadow_proof.parse_ec2_time("2026-11-25T01:37:01.250Z") == datetime(2026, 11, 25, 1, 37, 1, 250000,
                                                                               tzinfo=timezone.utc)
    assert shadow_proof.parse_ec2_time(datetime(2026, 11, 25, 1, 37, 1)) == datetime(2026, 11, 25, 1, 37, 1, tzinfo=timezone.utc)
    assert shadow_proof.parse_ec2_time("") is None


def test_what_was_not_proven_says_why():
    verification = shadow_proof.not_verified("check mode: nothing was made")
    assert verification == {"failures": ["check mode: nothing was made"], "checks": [], "timeline": {},
                            "clock_tolerance_seconds": shadow_proof.CLOCK_TOLERANCE_SECONDS}
    assert shadow_proof.Proof().verified is False, "no check, no proof"
    assert copy.deepcopy(prove().as_result()) == prove().as_result()
