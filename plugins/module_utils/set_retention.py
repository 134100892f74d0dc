# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The safety rules around a retention plan of snapshot sets (docs/retention.md), as one pure function.

restic's keep rules (retention.py) decide which complete sets a policy keeps. Around them, this module decides which
sets retention may touch at all, which sets fill the policy's slots, and which sets are kept whatever the rules say;
every decision carries its reasons, so a check-mode plan explains itself. It works on set summaries as
snapshot_sets.summarise_set returns them and calls no AWS API: the caller passes in what EC2 knows about locks and
AMIs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.shadowsnap.ec2.plugins.module_utils import retention, snapshot_tags

DEFAULT_MIN_AGE = datetime.timedelta(hours=24)


def _format_age(age):
    minutes = int(age.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return "".join("%d%s" % (value, unit) for value, unit in ((days, "d"), (hours, "h"), (minutes, "min")) if value) or "0min"


def _out_of_scope(summary, account_id, region, policy_name):
    """Why retention must not touch this set at all, or None when it may plan it."""
    members = summary["snapshots"]
    untagged = [member["snapshot_id"] for member in members if not snapshot_tags.is_schema_tagged(member["tags"])]
    if untagged:
        return "snapshots %s do not carry the collection's tag schema" % ", ".join(untagged)
    versions = sorted(set(member["tags"][snapshot_tags.KEY_SCHEMA] for member in members))
    if versions != [snapshot_tags.SCHEMA_VERSION]:
        return "tag schema version %s, not %s, which this collection reads" % (", ".join(versions), snapshot_tags.SCHEMA_VERSION)
    owners = sorted(set(member.get("owner_id") or "(unknown)" for member in members) - {account_id})
    if owners:
        return "snapshots owned by account %s, not %s" % (", ".join(owners), account_id)
    if summary.get("region") != region:
        return "in Region %s, not %s" % (summary.get("region") or "(unknown)", region)
    if not summary.get("instance_id"):
        return "no instance id tag"
    if policy_name is not None and summary.get("policy") != policy_name:
        return "policy %s, not %s" % (summary.get("policy") or "(none)", policy_name)
    if snapshot_tags.parse_created_at(summary.get("created_at")) is None:
        return "created-at tag %r is missing or malformed" % summary.get("created_at")
    return None


def _consistency(summary):
    """The set's consistency; members that disagree (an interrupted re-tag) count as unverified, never application."""
    values = set(member["tags"].get(snapshot_tags.KEY_CONSISTENCY) for member in summary["snapshots"])
    return values.pop() if len(values) == 1 else "unverified"


def _protections(summary, locked_snapshots, image_snapshots):
    """Reasons that keep the set whatever the rules say: a hold tag, a snapshot lock, an AMI using a member."""
    reasons = []
    for member in summary["snapshots"]:
        snapshot_id = member["snapshot_id"]
        if snapshot_tags.KEY_HOLD in member["tags"]:
            why = member["tags"][snapshot_tags.KEY_HOLD]
            reasons.append("held: %s on %s%s" % (snapshot_tags.KEY_HOLD, snapshot_id, " (%s)" % why if why else ""))
        if snapshot_id in locked_snapshots:
            lock = locked_snapshots[snapshot_id]
            reasons.append("locked: %s%s" % (snapshot_id, " (%s)" % lock if lock else ""))
        images = image_snapshots.get(snapshot_id)
        if images:
            images = [images] if isinstance(images, str) else sorted(images)
            reasons.append("in use: %s backs AMI %s" % (snapshot_id, ", ".join(images)))
    return reasons


def _unfinished(summary):
    """Why a set cannot fill a slot (it is not a whole, settled set), or None."""
    if summary["status"] == "error":
        return "failed: snapshots %s are in state error; fills no slot" % ", ".join(summary["error_snapshot_ids"])
    if summary["status"] == "incomplete":
        return (
            "incomplete: volumes %s have no snapshot left (an interrupted deletion or a lost snapshot); fills no slot"
            % ", ".join(summary["missing_volume_ids"])
        )
    if summary["status"] == "pending":
        return "pending: snapshots %s are still being created; fills no slot" % ", ".join(summary["pending_snapshot_ids"])
    return None


def _entry(summary, reasons):
    return {
        "set_id": summary["set_id"],
        "instance_id": summary.get("instance_id"),
        "policy": summary.get("policy"),
        "created_at": summary.get("created_at"),
        "status": summary.get("status"),
        "consistency": _consistency(summary),
        "snapshot_ids": sorted(member["snapshot_id"] for member in summary["snapshots"]),
        "reasons": reasons,
    }


def _plan_group(group, policy, now, min_age, locked_snapshots, image_snapshots):
    """(keep, delete) entries of one instance's sets of one policy, newest first."""
    created = dict((summary["set_id"], snapshot_tags.parse_created_at(summary["created_at"])) for summary in group)
    reasons = dict((summary["set_id"], []) for summary in group)
    kept, candidates, application = set(), [], []
    for summary in group:
        set_id = summary["set_id"]
        young = now - created[set_id] < min_age
        unfinished = _unfinished(summary)
        if unfinished:
            reasons[set_id].append(unfinished)
            if summary["status"] == "pending":
                reasons[set_id].append("kept: a set still being created is never deleted")
                kept.add(set_id)
            elif young:
                reasons[set_id].append("younger than %s: its backup may still be running" % _format_age(min_age))
                kept.add(set_id)
        elif _consistency(summary) == "unverified" and young:
            reasons[set_id].append(
                "unverified and younger than %s: its backup may still be running; fills no slot" % _format_age(min_age))
            kept.add(set_id)
        else:
            candidates.append({"set_id": set_id, "created_at": created[set_id]})
            if _consistency(summary) == "application":
                application.append(candidates[-1])

    plan = retention.plan_retention(candidates, policy, now=now)
    for decision in plan["keep"]:
        reasons[decision["set_id"]].extend(decision["reasons"])
        kept.add(decision["set_id"])
    for decision in plan["delete"]:
        reasons[decision["set_id"]].append("no rule of the policy keeps it")
    if application:
        newest = max(application, key=lambda candidate: candidate["created_at"])["set_id"]
        reasons[newest].append("newest complete application set of %s" % group[0]["instance_id"])
        kept.add(newest)

    keep, delete = [], []
    for summary in sorted(group, key=lambda summary: created[summary["set_id"]], reverse=True):
        protections = _protections(summary, locked_snapshots, image_snapshots)
        reasons[summary["set_id"]].extend(protections)
        entry = _entry(summary, reasons[summary["set_id"]])
        (keep if summary["set_id"] in kept or protections else delete).append(entry)
    return keep, delete


def plan_set_retention(sets, policy, now=None, account_id=None, region=None, policy_name=None,
                       locked_snapshots=None, image_snapshots=None, min_age=DEFAULT_MIN_AGE):
    """The retention plan of ``sets`` (summaries as snapshot_sets.summarise_set returns them).

    Each summary must say its ``region`` and each member its ``owner_id`` (DescribeSnapshots' OwnerId); a set whose
    account or Region is not ``account_id`` / ``region``, that does not carry the schema, or (with ``policy_name``)
    belongs to another policy is skipped, never touched. The others are planned per instance and policy.
    ``locked_snapshots`` maps snapshot ids under a snapshot lock to a description of the lock; ``image_snapshots``
    maps snapshot ids to the AMIs that use them. ``min_age`` is how long a backup may still be running on a set.

    Returns ``{"keep": [...], "delete": [...], "skipped": [...]}``; every entry has the set's id, instance, policy,
    created-at, status, consistency, all its snapshot ids and the reasons for the decision. Raises
    retention.RetentionPolicyError for an empty or malformed policy, whatever the sets.
    """
    if not account_id or not region:
        raise retention.RetentionPolicyError("the account id and the Region the sets were listed in are both needed")
    policy = retention.normalise_policy(policy)
    now = now or datetime.datetime.now(datetime.timezone.utc)
    groups, skipped = {}, []
    for summary in sets:
        why_not = _out_of_scope(summary, account_id, region, policy_name)
        if why_not:
            skipped.append(_entry(summary, ["skipped: " + why_not]))
        else:
            groups.setdefault((summary["instance_id"], summary.get("policy") or ""), []).append(summary)
    keep, delete = [], []
    for key in sorted(groups):
        group_keep, group_delete = _plan_group(groups[key], policy, now, min_age, locked_snapshots or {}, image_snapshots or {})
        keep.extend(group_keep)
        delete.extend(group_delete)
    return {"keep": keep, "delete": delete, "skipped": skipped}
