# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The proof that an EBS snapshot set holds a VSS shadow copy set: ``verified`` and its reasons (docs/engines.md).

Pure Python over what ``win_vss_snapshot_set`` knows once ``CreateSnapshots`` has returned: the shadow set diskshadow
recorded, the EBS set EC2 answered, the host's listing of its shadow copies made after that answer, and the order in
which the plugin made those calls (instants of the controller's monotonic clock). Nothing here reads the controller's
wall clock: the order of EBS points in time and shadow copies rests on the order of the calls, and is cross-checked
with the host's own record of the shadow creation (Win32_ShadowCopy ``InstallDate``) against EC2's ``StartTime``,
within :data:`CLOCK_TOLERANCE_SECONDS`.

The set is verified when every check holds:

- ``members``: the set's snapshots are exactly the EBS volumes under the shadow set, and there is at least one;
- ``shadow_ids``: the set carries this shadow set's id, and each snapshot the shadow id of its volume;
- ``states``: no snapshot is in ``error``;
- ``order``: ``CreateSnapshots`` was sent after the host reported the shadow set, and the listing was asked for after
  it returned (when every EBS point in time was fixed);
- ``shadows_present``: every shadow copy recorded at creation is in that listing, so it existed when each EBS point
  in time was fixed (a shadow copy deleted in between is never re-created with the same id);
- ``host_clock``: no snapshot started, by EC2's clock, more than the tolerance before its shadow copy was created, by
  the host's clock.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid

# How far the host's clock and EC2's may disagree. EC2 instances keep time from the Amazon Time Sync Service, well
# within this; a host further off fails the check and is told to fix its time.
CLOCK_TOLERANCE_SECONDS = 5.0
# EC2 reports StartTime with milliseconds, some answers cut to the second: a whole second is allowed for that.
WHOLE_SECOND = 1.0

_WMI_DATETIME = re.compile(r"^(?P<stamp>\d{14})(?:\.(?P<fraction>\d{1,6}))?(?P<sign>[+-])(?P<minutes>\d{3})$")


def parse_wmi_datetime(text) -> datetime | None:
    """A WMI (DMTF) datetime such as ``20261125013700.123456+000`` (the offset in minutes) in UTC, or None."""
    match = _WMI_DATETIME.match(str(text or "").strip())
    if not match:
        return None
    local = datetime.strptime(match.group("stamp"), "%Y%m%d%H%M%S")
    local = local.replace(microsecond=int((match.group("fraction") or "0").ljust(6, "0")))
    offset = int(match.group("minutes")) * (1 if match.group("sign") == "+" else -1)
    return (local - timedelta(minutes=offset)).replace(tzinfo=timezone.utc)


def parse_ec2_time(value) -> datetime | None:
    """EC2's ``StartTime`` (a datetime, or its ISO text as a set result carries it) in UTC, or None."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value or "").replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


@dataclass
class Timeline:
    """Instants of the controller's monotonic clock, in seconds, in the order the plugin made its calls."""

    session_started: float
    set_reported: float
    snapshots_requested: float
    snapshots_returned: float
    shadows_listed: float

    def as_result(self) -> dict:
        """Seconds since the session started, to the microsecond."""
        return {name: round(getattr(self, name) - self.session_started, 6)
                for name in ("session_started", "set_reported", "snapshots_requested", "snapshots_returned",
                             "shadows_listed")}


@dataclass
class Proof:
    """``verified`` and why: one entry per check (``name``, ``ok``, ``detail``), the failures spelled out."""

    checks: list = field(default_factory=list)
    timeline: dict = field(default_factory=dict)

    @property
    def verified(self) -> bool:
        return bool(self.checks) and all(check["ok"] for check in self.checks)

    @property
    def failures(self) -> list[str]:
        return [check["detail"] for check in self.checks if not check["ok"]]

    def add(self, name: str, problems: list[str], proven: str) -> None:
        self.checks.append({"name": name, "ok": not problems, "detail": "; ".join(problems) if problems else proven})

    def as_result(self) -> dict:
        return {"failures": self.failures, "checks": list(self.checks), "timeline": dict(self.timeline),
                "clock_tolerance_seconds": CLOCK_TOLERANCE_SECONDS}


def not_verified(reason: str) -> dict:
    """The ``verification`` of a task that had no EBS set to prove (none asked for, check mode, an existing set)."""
    return {"failures": [reason], "checks": [], "timeline": {}, "clock_tolerance_seconds": CLOCK_TOLERANCE_SECONDS}


def _members(expected: dict, snapshots: dict) -> list[str]:
    problems = []
    if not expected:
        problems.append("the shadow set names no EBS volume, so no snapshot set can hold it")
    for volume_id in sorted(set(expected) - set(snapshots)):
        problems.append(f"{volume_id} ({', '.join(expected[volume_id].get('paths') or [])}) is in the shadow set but has "
                        f"no snapshot in the set")
    for volume_id in sorted(set(snapshots) - set(expected)):
        problems.append(f"{volume_id} has snapshot {snapshots[volume_id]['snapshot_id']} in the set but is not in the "
                        f"shadow set (its snapshot holds no shadow copy of this set)")
    return problems


def _shadow_ids(shadow_set_id: str, ebs_set: dict, expected: dict, snapshots: dict) -> list[str]:
    problems = []
    if normalise_guid(ebs_set.get("shadow_set_id")) != shadow_set_id:
        problems.append(f"the set is tagged with shadow set {ebs_set.get('shadow_set_id')}, not {shadow_set_id}")
    for volume_id in sorted(set(expected) & set(snapshots)):
        wanted = normalise_guid(expected[volume_id].get("shadow_id"))
        tagged = normalise_guid(snapshots[volume_id].get("shadow_id"))
        if wanted is None or tagged != wanted:
            problems.append(f"snapshot {snapshots[volume_id]['snapshot_id']} of {volume_id} is tagged with shadow copy "
                            f"{snapshots[volume_id].get('shadow_id')}, not {wanted}")
    return problems


def _order(timeline: Timeline) -> list[str]:
    steps = [("the host reported the shadow set", timeline.set_reported),
             ("CreateSnapshots was sent", timeline.snapshots_requested),
             ("CreateSnapshots returned", timeline.snapshots_returned),
             ("the shadow copies were listed", timeline.shadows_listed)]
    return [f"{later} before {earlier}" for (earlier, before), (later, after) in zip(steps, steps[1:]) if after < before]


def _host_clock(listed: dict, snapshots: dict, expected: dict) -> list[str]:
    problems = []
    for volume_id in sorted(set(expected) & set(snapshots)):
        snapshot = snapshots[volume_id]
        record = listed.get(normalise_guid(expected[volume_id].get("shadow_id")))
        if record is None:
            continue
        installed = parse_wmi_datetime(record.get("InstallDate"))
        started = parse_ec2_time(snapshot.get("start_time"))
        if installed is None or started is None:
            problems.append(f"snapshot {snapshot['snapshot_id']}: its start time {snapshot.get('start_time')!r} or the "
                            f"creation time {record.get('InstallDate')!r} of its shadow copy cannot be read")
            continue
        allowance = CLOCK_TOLERANCE_SECONDS + (WHOLE_SECOND if started.microsecond == 0 else 0.0)
        lead = (installed - started).total_seconds()
        if lead > allowance:
            problems.append(
                f"snapshot {snapshot['snapshot_id']} of {volume_id} started at {started.isoformat()} (EC2's clock), "
                f"{lead:.3f} s before its shadow copy {record.get('ID')} was created at {installed.isoformat()} (the "
                f"host's clock), beyond the {allowance:g} s allowed: the host's clock is ahead of EC2's (resynchronise "
                f"it: w32tm /resync), or the snapshot does not hold the shadow copy")
    return problems


def prove(shadow_set_id: str, shadows: dict, volume_metadata: dict, ebs_set: dict, listing: list[dict],
          timeline: Timeline) -> Proof:
    """The proof for a shadow set (``shadow_set_id``, ``shadows``: volume path -> shadow id) and the EBS set taken
    while it existed (``volume_metadata`` keyed by EBS volume id as shadow_plan.ec2_volume_metadata gives it;
    ``ebs_set`` as action_ec2.create_shadow_snapshot_set returns it; ``listing``: Win32_ShadowCopy records read after
    CreateSnapshots returned)."""
    shadow_set_id = normalise_guid(shadow_set_id)
    snapshots = {snapshot["volume_id"]: snapshot for snapshot in ebs_set.get("snapshots") or []}
    recorded = {normalise_guid(shadow_id): path for path, shadow_id in shadows.items()}
    listed = {normalise_guid(record.get("ID")): record for record in listing or []
              if normalise_guid(record.get("SetID")) == shadow_set_id}
    proof = Proof(timeline=timeline.as_result())
    proof.add("members", _members(volume_metadata, snapshots),
              f"the set holds exactly the shadow set's EBS volumes: {', '.join(sorted(volume_metadata))}")
    proof.add("shadow_ids", _shadow_ids(shadow_set_id, ebs_set, volume_metadata, snapshots),
              f"every snapshot carries shadow set {shadow_set_id} and the shadow id of its volume")
    proof.add("states", [f"snapshot {snapshot['snapshot_id']} of {volume_id} is in error"
                         for volume_id, snapshot in sorted(snapshots.items()) if snapshot.get("state") == "error"],
              "no snapshot is in error")
    proof.add("order", _order(timeline),
              "CreateSnapshots was sent after the host reported the shadow set, and the shadow copies were listed "
              "after it returned")
    proof.add("shadows_present", [f"shadow copy {shadow_id} of {path} was gone when the host listed its shadow copies "
                                  f"after CreateSnapshots returned: the EBS snapshots may not hold it"
                                  for shadow_id, path in recorded.items() if shadow_id not in listed],
              f"all {len(recorded)} shadow copies still existed after every EBS point in time was fixed")
    proof.add("host_clock", _host_clock(listed, snapshots, volume_metadata),
              f"no snapshot started before its shadow copy was created (EC2's and the host's clocks, within "
              f"{CLOCK_TOLERANCE_SECONDS:g} s)")
    return proof
