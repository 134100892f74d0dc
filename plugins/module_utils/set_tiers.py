# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Snapshot sets and the EBS archive tier: archiving whole sets, bringing them back, and the 90-day minimum.

Shared by ec2_snapshot_set_tier, ec2_snapshot_set_retention (its archive rule, and the refusal to delete a set archived
less than 90 days ago), ec2_snapshot_set (``state: absent``) and ec2_snapshot_set_volumes (a restore that brings an
archived set back first). A set is archived or restored whole, member by member; a member already on its way (an
archival or a restore in progress) is left to finish, so a re-run after an interruption completes the set. EC2 bills
an archived snapshot for at least 90 days and takes up to 72 hours to restore one: both are said where they matter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api

ARCHIVE = "archive"
MINIMUM_ARCHIVE_DAYS = 90
MAX_RESTORE_HOURS = 72
STATUS_FILTER_SIZE = 200
TIER_WAIT_DELAY = 5


class TierError(Exception):
    """A set that cannot be archived or brought back as asked; nothing was changed."""


def _moment(value):
    if value is None or hasattr(value, "astimezone"):
        return value
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def tier_statuses(client, snapshot_ids):
    """``{snapshot id: DescribeSnapshotTierStatus item}`` of the snapshots that have a tiering history."""
    snapshot_ids = sorted(snapshot_ids)
    statuses = {}
    for start in range(0, len(snapshot_ids), STATUS_FILTER_SIZE):
        for item in ec2_api.describe_snapshot_tier_status(client, snapshot_ids[start:start + STATUS_FILTER_SIZE]):
            statuses[item["SnapshotId"]] = item
    return statuses


def member_state(member, statuses):
    """``standard``, ``archive``, or the operation in progress (``archival-in-progress``, ...) of one member."""
    operation = statuses.get(member["snapshot_id"], {}).get("LastTieringOperationStatus", "")
    if operation.endswith("-in-progress"):
        return operation
    return statuses.get(member["snapshot_id"], {}).get("StorageTier") or member.get("storage_tier") or "standard"


def set_tier(found, statuses=None):
    """The members' state (:func:`member_state`) when they all share it, else ``mixed`` (an archival or a restore
    interrupted, or members at different stages)."""
    states = set(member_state(member, statuses or {}) for member in found["snapshots"])
    return states.pop() if len(states) == 1 else "mixed"


def archived_members(found):
    """The members DescribeSnapshots lists in the archive tier."""
    return [member for member in found["snapshots"] if member.get("storage_tier") == ARCHIVE]


def early_deletions(found, statuses, now):
    """The members archived less than 90 days ago, each with the days spent in the archive and the days a delete now
    would still be billed for."""
    early = []
    for member in archived_members(found):
        status = statuses.get(member["snapshot_id"], {})
        since = _moment(status.get("ArchivalCompleteTime") or status.get("LastTieringStartTime"))
        days = (now - since).days if since else 0
        if days < MINIMUM_ARCHIVE_DAYS:
            early.append({"snapshot_id": member["snapshot_id"], "days_archived": days,
                          "days_billed_anyway": MINIMUM_ARCHIVE_DAYS - days})
    return early


def early_deletion_reason(set_id, early):
    """What deleting these members now costs, for a refusal."""
    return (
        "set %s was archived less than %d days ago (%s): EC2 bills an archived snapshot for at least %d days, so "
        "deleting it now still bills the remaining days at the archive tier's price on each snapshot's full size; "
        "set force_archived_delete to delete it anyway" % (
            set_id, MINIMUM_ARCHIVE_DAYS, ", ".join("%s %d days, %d days still billed" % (
                entry["snapshot_id"], entry["days_archived"], entry["days_billed_anyway"]) for entry in early),
            MINIMUM_ARCHIVE_DAYS))


def archive_refusal(found, images):
    """Why EC2 would refuse to archive the set (it is not complete, an AMI uses a member), or None."""
    if found["status"] != "completed":
        return "set %s is %s; only complete sets are archived" % (found["set_id"], found["status"])
    used = sorted(member["snapshot_id"] for member in found["snapshots"] if member["snapshot_id"] in images)
    if used:
        return "set %s has snapshots an AMI uses (%s), which EC2 does not archive" % (found["set_id"], ", ".join(used))
    return None


def archive_set(client, found, statuses):
    """ModifySnapshotTier for every member still in the standard tier; returns the snapshot ids it was sent for."""
    started = []
    for member in found["snapshots"]:
        if member_state(member, statuses) == "standard":
            ec2_api.archive_snapshot(client, member["snapshot_id"])
            started.append(member["snapshot_id"])
    return started


def restore_set(client, found, statuses, temporary_days=None):
    """RestoreSnapshotTier for every member in the archive (and, for a permanent restore, every member restored only
    for a while); returns the snapshot ids it was sent for."""
    started = []
    for member in found["snapshots"]:
        state = member_state(member, statuses)
        temporary = statuses.get(member["snapshot_id"], {}).get("LastTieringOperationStatus") == "temporary-restore-completed"
        if state == ARCHIVE or (state == "standard" and temporary and temporary_days is None):
            ec2_api.restore_snapshot_tier(client, member["snapshot_id"], temporary_days)
            started.append(member["snapshot_id"])
    return started


def wait_for_tier(client, found, tier, timeout, sleep=time.sleep, clock=time.monotonic):
    """Until every member is in ``tier`` with no operation in progress; the last statuses. AnsibleEC2Error after
    ``timeout`` seconds, saying which members are still on their way."""
    snapshot_ids = [member["snapshot_id"] for member in found["snapshots"]]
    deadline = clock() + timeout
    while True:
        statuses = tier_statuses(client, snapshot_ids)
        waiting = sorted("%s %s" % (member["snapshot_id"], member_state(member, statuses)) for member in found["snapshots"]
                         if member_state(member, statuses) != tier)
        if not waiting:
            return statuses
        if clock() + TIER_WAIT_DELAY > deadline:
            raise AnsibleEC2Error(message="set %s is not in the %s tier after %d s (%s)%s" % (
                found["set_id"], tier, timeout, ", ".join(waiting),
                "; EC2 takes up to %d hours to restore an archived snapshot: run again later" % MAX_RESTORE_HOURS
                if tier == "standard" else ""))
        sleep(TIER_WAIT_DELAY)


def plan_archival(kept, sets_by_id, statuses, images, now, after_days=None, keep_standard=None):
    """The kept sets the archive rule moves to the archive tier: complete sets older than ``after_days`` and/or beyond
    the ``keep_standard`` newest complete kept sets of their instance and policy, never the newest complete
    ``application`` set (a restore must not wait for it) nor a set an AMI uses. ``kept`` are the retention plan's
    kept entries (newest first per group). Returns ``[(entry, reasons)]``; a set already archived is not listed."""
    chosen, position = [], {}
    for entry in kept:
        found = sets_by_id[entry["set_id"]]
        if found["status"] != "completed":
            continue
        group = (entry["instance_id"], entry["policy"])
        rank = position[group] = position.get(group, -1) + 1
        if any(reason.startswith("newest complete application set") for reason in entry["reasons"]):
            continue
        reasons = []
        created = _moment(entry["created_at"])
        if after_days is not None:
            if now - created < datetime.timedelta(days=after_days):
                continue
            reasons.append("archived: older than %d days" % after_days)
        if keep_standard is not None:
            if rank < keep_standard:
                continue
            reasons.append("archived: beyond the newest %d complete sets kept in the standard tier" % keep_standard)
        if set_tier(found, statuses) == ARCHIVE or archive_refusal(found, images):
            continue
        chosen.append((entry, reasons))
    return chosen
