#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: ec2_snapshot_set_retention
short_description: Apply a retention policy to snapshot sets - restic's keep rules on whole sets, with every reason
version_added: 0.1.0
description:
  - Reads the snapshot sets of the given instances (or every set of this account and Region that carries the
    collection's tag schema), plans which to keep and which to delete with restic's C(forget) rules on whole sets,
    and deletes the sets the plan deletes, whole.
  - The keep rules are restic's, exactly - O(keep_last), O(keep_hourly) ... O(keep_yearly) keep the newest set of
    each of the newest periods that have sets; one set fills its period in every rule it matches; the oldest set is
    kept while a rule still has slots; O(keep_within) and O(keep_within_hourly) ... O(keep_within_yearly) count back
    from the newest set, in calendar years, months, days and hours. Weeks are ISO weeks. See the retention document in
    the collection's C(docs/) folder.
  - Sets are planned per instance and policy name. Safety rules apply around the keep rules, each reported as a
    reason - only sets that carry the schema, in this account and Region, are touched (others are listed as skipped);
    the newest complete V(application) set of each instance is always kept; a set any member of which carries the
    tag C(shadowsnap:hold), is under a snapshot lock or backs an AMI is kept; V(unverified) and V(pending) sets younger
    than O(min_age_hours) are kept (a backup may still be running); incomplete and failed sets fill no slot and are
    deleted whole, which is how a deletion interrupted halfway is finished by the next run.
  - With an archive rule (O(archive_after_days), O(archive_keep_standard)), kept sets are moved to the archive tier
    whole, and reported in RV(archived_sets). A planned deletion of a set archived less than 90 days ago is skipped
    unless O(force_archived_delete).
  - A policy that keeps nothing is refused before any API call, never taken as "delete everything".
  - In check mode nothing is deleted - the result is the plan, with every reason.
  - Deletes run on O(max_concurrency) threads, one set per thread at a time, paced by a client-side token bucket
    shaped like EC2's C(DeleteSnapshot) bucket (O(delete_burst), O(delete_rate)). Throttling that still happens
    (another tool spends the same bucket) slows the pacer down and is retried with jittered backoff; it is never
    reported as a failure.
  - A member that EC2 refuses to delete (an AMI registered or a lock set after the plan was made) is skipped with
    EC2's reason and never stops the other sets. Any other failure fails the task after every set was tried, with
    the whole result.
options:
  instance_ids:
    description:
      - Only the sets of these instances. Default - every schema-tagged set of this account and Region.
    type: list
    elements: str
  policy:
    description:
      - Only the sets of this retention policy name (the C(shadowsnap:policy) tag that the backup recorded).
      - Default - the sets of every policy, each policy planned on its own with the same rules.
    type: str
  keep_last:
    description: Keep the newest N sets. V(-1) keeps all. V(0) switches the rule off.
    type: int
    default: 0
  keep_hourly:
    description: Keep the newest set of each of the N newest hours that have sets (V(-1) - every hour).
    type: int
    default: 0
  keep_daily:
    description: Keep the newest set of each of the N newest days that have sets (V(-1) - every day).
    type: int
    default: 0
  keep_weekly:
    description: Keep the newest set of each of the N newest ISO weeks that have sets (V(-1) - every week).
    type: int
    default: 0
  keep_monthly:
    description: Keep the newest set of each of the N newest months that have sets (V(-1) - every month).
    type: int
    default: 0
  keep_yearly:
    description: Keep the newest set of each of the N newest years that have sets (V(-1) - every year).
    type: int
    default: 0
  keep_within:
    description:
      - Keep every set newer than the newest set minus this duration - whole numbers of years C(y), months C(m), days
        C(d) and hours C(h), such as V(1y2m3d4h) (a week is V(7d)).
    type: str
  keep_within_hourly:
    description: Keep the newest set of every hour within this duration of the newest set.
    type: str
  keep_within_daily:
    description: Keep the newest set of every day within this duration of the newest set.
    type: str
  keep_within_weekly:
    description: Keep the newest set of every ISO week within this duration of the newest set.
    type: str
  keep_within_monthly:
    description: Keep the newest set of every month within this duration of the newest set.
    type: str
  keep_within_yearly:
    description: Keep the newest set of every year within this duration of the newest set.
    type: str
  time_zone:
    description:
      - The IANA time zone of the calendar periods (days, weeks, months, years), such as V(Europe/Berlin).
    type: str
    default: UTC
  min_age_hours:
    description:
      - How long a backup may still be running. V(unverified) and V(pending) sets younger than this are kept, and
        incomplete or failed sets are deleted only once they are older.
    type: int
    default: 24
  max_concurrency:
    description:
      - How many sets are deleted at the same time (1 to 10), each by its own thread, one member after the other.
      - An interrupted run leaves at most this many sets partly deleted; the next run finishes them.
    type: int
    default: 4
  delete_rate:
    description:
      - C(DeleteSnapshot) requests per second the pacer allows once its burst is spent. EC2 refills the account's
        bucket at 5 per second per Region; lower it to leave room for other tools that delete snapshots.
    type: float
    default: 5.0
  delete_burst:
    description:
      - C(DeleteSnapshot) requests the pacer allows at once before it falls back to O(delete_rate). EC2's bucket
        holds 100.
    type: int
    default: 100
  archive_after_days:
    description:
      - The archive rule by age - kept, complete sets older than this many days are moved to the EBS archive tier,
        whole (C(ModifySnapshotTier) on every member). With O(archive_keep_standard) too, a set must meet both.
      - The newest complete V(application) set of each instance and sets an AMI uses are never archived. EC2 bills an
        archived snapshot for at least 90 days on its full size and takes up to 72 hours to restore one - archive
        sets that the policy keeps for months and that are rarely restored.
    type: int
  archive_keep_standard:
    description:
      - The archive rule by count - of each instance's and policy's kept, complete sets, the newest this many stay in
        the standard tier and older ones are archived.
    type: int
  force_archived_delete:
    description:
      - Delete planned sets that were archived less than 90 days ago anyway. Without it they are skipped with what a
        delete would cost - EC2 still bills the rest of the 90 days.
    type: bool
    default: false
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Calls C(sts:GetCallerIdentity) (the account guard), C(DescribeSnapshots) filtered by owner and tags and paginated,
    C(DescribeImages) of the account's own AMIs, C(DescribeLockedSnapshots), C(DeleteSnapshot), and, for archived
    sets and the archive rule, C(DescribeSnapshotTierStatus) and C(ModifySnapshotTier); see the IAM policy document
    in the collection's C(docs/) folder.
  - Supports check mode, which plans and deletes nothing.
  - Verified against the collection's lab (moto behind a fault proxy that enforces EC2's token buckets, pagination
    and owner filters, and answers snapshot locks and AMI mappings), not yet against EC2.
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Plan the retention of two instances' nightly sets (check mode deletes nothing)
  shadowsnap.ec2.ec2_snapshot_set_retention:
    instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210]
    policy: nightly
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
  check_mode: true
  register: plan

- name: Keep a week of hourly sets and a year of monthly ones, on every set of the account and Region
  shadowsnap.ec2.ec2_snapshot_set_retention:
    keep_within_hourly: 7d
    keep_within_monthly: 1y
    time_zone: Europe/Berlin
  register: retention

- name: Show why each set was kept
  ansible.builtin.debug:
    msg: "{{ item.set_id }}: {{ item.reasons | join('; ') }}"
  loop: "{{ retention.kept_sets }}"
  loop_control:
    label: "{{ item.set_id }}"
"""

RETURN = r"""
account_id:
  description: The account whose sets were planned.
  returned: always
  type: str
  sample: "123456789012"
region:
  description: The Region whose sets were planned.
  returned: always
  type: str
  sample: eu-west-1
kept_sets:
  description: The sets kept, newest first per instance and policy, each with every reason that keeps it.
  returned: always
  type: list
  elements: dict
  contains:
    set_id:
      description: The set's id.
      type: str
    instance_id:
      description: The instance the set was taken from.
      type: str
    policy:
      description: The set's policy name.
      type: str
    created_at:
      description: The set's created-at tag (UTC).
      type: str
    status:
      description: V(completed), V(pending), V(error) or V(incomplete).
      type: str
    consistency:
      description: V(application), V(crash) or V(unverified).
      type: str
    snapshot_ids:
      description: The set's snapshots.
      type: list
      elements: str
    reasons:
      description: Why the set is kept, in restic's words for the keep rules (V(daily snapshot), V(oldest monthly
        snapshot), V(within 7d)), and the safety rules (V(held), V(locked), V(in use), V(newest complete application
        set of i-...)).
      type: list
      elements: str
  sample: [{"set_id": "nightly-i-0123456789abcdef0-20261124", "instance_id": "i-0123456789abcdef0", "policy": "nightly",
            "created_at": "2026-11-24T01:00:00Z", "status": "completed", "consistency": "application",
            "snapshot_ids": ["snap-0123456789abcdef0"],
            "reasons": ["daily snapshot", "weekly snapshot", "monthly snapshot", "newest complete application set of i-0123456789abcdef0"]}]
deleted_sets:
  description:
    - The sets deleted whole (in check mode, that would be deleted), with the same keys as RV(kept_sets) and the reason
      V(no rule of the policy keeps it) (or why an incomplete or failed set fills no slot).
    - C(deleted_snapshot_ids) are the snapshots this run deleted, C(already_deleted) those an earlier attempt did,
      C(seconds) how long the set took. In check mode C(deleted_snapshot_ids) is empty.
  returned: always
  type: list
  elements: dict
skipped_sets:
  description:
    - Sets left untouched because retention may not act on them (no tag schema, another account or Region, no
      created-at tag), and sets planned for deletion of which EC2 refused a member (an AMI uses it, a lock protects
      it) or a delete failed - with C(refused) (each snapshot and EC2's reason), C(errors) (the failures, which also
      fail the task) and the members deleted before (C(deleted_snapshot_ids)).
  returned: always
  type: list
  elements: dict
archived_sets:
  description:
    - The kept sets the archive rule moved to the archive tier (in check mode, would move), with the same keys as
      RV(kept_sets), the rule's reasons, and C(started_snapshot_ids) (the members C(ModifySnapshotTier) was sent for;
      empty in check mode). They are listed in RV(kept_sets) too.
  returned: always
  type: list
  elements: dict
counts:
  description: How many sets were kept, deleted, archived and skipped, and how many snapshots were deleted.
  returned: always
  type: dict
  sample: {"kept": 14, "deleted": 106, "archived": 2, "skipped": 1, "snapshots_deleted": 318}
timings:
  description: Seconds spent reading (sets, AMIs, locks), planning, deleting, in total; and the deletes per second.
  returned: always
  type: dict
  sample: {"read": 1.2, "plan": 0.05, "delete": 62.0, "total": 63.3, "deletes_per_second": 5.1}
pacing:
  description:
    - The pacer of the deletes - C(attempts) (DeleteSnapshot requests sent, retries included), C(throttled) (answers
      C(RequestLimitExceeded), all retried), C(paced_seconds) (time the threads waited for the bucket), C(rate) (its
      rate at the end, per second).
  returned: always
  type: dict
  sample: {"attempts": 318, "throttled": 0, "paced_seconds": 431.2, "rate": 5.0}
"""

import datetime
import time

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.iam import get_aws_account_id
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import retention
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_deletion
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_retention
from ansible_collections.shadowsnap.ec2.plugins.module_utils import set_tiers
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import ec2_client


def policy_of(params):
    """The keep rules of the task, as retention.normalise_policy reads them."""
    policy = dict((key, params[key]) for key in retention.POLICY_KEYS)
    policy["time_zone"] = params["time_zone"]
    return policy


def deletion_entries(planned, outcomes):
    """(deleted, partial) entries of the sets the plan deleted: whole, or in part (EC2 refused a member, or a delete
    failed), with the reasons."""
    deleted, partial = [], []
    for entry, outcome in zip(planned, outcomes):
        entry = dict(entry, deleted_snapshot_ids=outcome["deleted_snapshot_ids"],
                     already_deleted=outcome["already_deleted"], seconds=outcome["seconds"])
        if outcome["refused"] or outcome["errors"]:
            reasons = ["not deleted whole: %s %s" % (refused["snapshot_id"], refused["reason"]) for refused in outcome["refused"]]
            reasons += [error["error"] for error in outcome["errors"]]
            partial.append(dict(entry, refused=outcome["refused"], errors=outcome["errors"], reasons=entry["reasons"] + reasons))
        else:
            deleted.append(entry)
    return deleted, partial


def tiered_members(sets):
    """The snapshot ids whose tier history matters: members of archived sets, and every member of a complete set."""
    return [member["snapshot_id"] for found in sets for member in found["snapshots"]
            if found["status"] == "completed" or member.get("storage_tier") == set_tiers.ARCHIVE]


def hold_early_deletions(doomed, by_id, statuses, now, force, module):
    """(doomed, skipped): planned deletions of sets archived less than 90 days ago are skipped, with the cost, unless
    forced."""
    kept, skipped = [], []
    for entry in doomed:
        early = set_tiers.early_deletions(by_id[entry["set_id"]], statuses, now)
        if early and not force:
            reason = set_tiers.early_deletion_reason(entry["set_id"], early)
            module.warn(reason)
            skipped.append(dict(entry, reasons=entry["reasons"] + ["not deleted: " + reason]))
        else:
            kept.append(entry)
    return kept, skipped


def archive_kept(module, client, plan, by_id, statuses, images, now):
    """The archive rule carried out on the kept sets (planned only, in check mode)."""
    params = module.params
    if params["archive_after_days"] is None and params["archive_keep_standard"] is None:
        return []
    archived = []
    for entry, reasons in set_tiers.plan_archival(plan["keep"], by_id, statuses, images, now,
                                                  params["archive_after_days"], params["archive_keep_standard"]):
        started = [] if module.check_mode else set_tiers.archive_set(client, by_id[entry["set_id"]], statuses)
        entry["reasons"].extend(reasons)
        archived.append(dict(entry, started_snapshot_ids=started))
    return archived


def run_retention(module):
    """The task's result: the plan, carried out unless in check mode."""
    params = module.params
    policy = policy_of(params)
    retention.normalise_policy(policy)
    began = time.monotonic()
    client = ec2_client(module)
    account_id = get_aws_account_id(module)
    region = client.meta.region_name
    sets = snapshot_sets.list_sets(client, instance_ids=params["instance_ids"], policy=params["policy"])
    images = set_deletion.images_by_snapshot(ec2_api.describe_images(client))
    locks = set_deletion.locks_by_snapshot(ec2_api.describe_locked_snapshots(client))
    archive_rule = params["archive_after_days"] is not None or params["archive_keep_standard"] is not None
    statuses = set_tiers.tier_statuses(client, tiered_members(sets if archive_rule else [
        found for found in sets if set_tiers.archived_members(found)]))
    now = datetime.datetime.now(datetime.timezone.utc)
    read_at = time.monotonic()
    plan = set_retention.plan_set_retention(
        sets, policy, account_id=account_id, region=region, policy_name=params["policy"], locked_snapshots=locks,
        image_snapshots=images, min_age=datetime.timedelta(hours=params["min_age_hours"]), now=now)
    planned_at = time.monotonic()

    by_id = dict((found["set_id"], found) for found in sets)
    doomed, held_archived = hold_early_deletions(sorted(plan["delete"], key=lambda entry: entry["created_at"]), by_id,
                                                 statuses, now, params["force_archived_delete"], module)
    plan["skipped"].extend(held_archived)
    archived = archive_kept(module, client, plan, by_id, statuses, images, now)
    pacer = set_deletion.DeletePacer(params["delete_rate"], params["delete_burst"])
    if module.check_mode:
        deleted, partial = [dict(entry, deleted_snapshot_ids=[], already_deleted=[]) for entry in doomed], []
    else:
        outcomes = set_deletion.delete_sets(pacer.attach(client), [by_id[entry["set_id"]] for entry in doomed],
                                            params["max_concurrency"])
        deleted, partial = deletion_entries(doomed, outcomes)
    done_at = time.monotonic()

    snapshots_deleted = sum(len(entry["deleted_snapshot_ids"]) for entry in deleted + partial)
    delete_seconds = done_at - planned_at
    result = {
        "changed": bool(deleted or archived or any(entry["deleted_snapshot_ids"] for entry in partial)),
        "account_id": account_id, "region": region,
        "kept_sets": plan["keep"], "deleted_sets": deleted, "archived_sets": archived,
        "skipped_sets": plan["skipped"] + partial,
        "counts": {"kept": len(plan["keep"]), "deleted": len(deleted), "archived": len(archived),
                   "skipped": len(plan["skipped"]) + len(partial),
                   "snapshots_deleted": snapshots_deleted},
        "timings": {"read": round(read_at - began, 3), "plan": round(planned_at - read_at, 3),
                    "delete": round(delete_seconds, 3), "total": round(done_at - began, 3),
                    "deletes_per_second": round(snapshots_deleted / delete_seconds, 2) if delete_seconds > 0 else 0.0},
        "pacing": pacer.stats(),
    }
    for entry in partial:
        if entry["refused"]:
            module.warn("set %s was not deleted whole: %s" % (entry["set_id"], "; ".join(
                "%s %s" % (member["snapshot_id"], member["reason"]) for member in entry["refused"])))
    errors = [error["error"] for entry in partial for error in entry["errors"]]
    if errors:
        module.fail_json(msg="retention could not delete every planned set: %s" % "; ".join(errors), **result)
    return result


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str"),
        policy=dict(type="str"),
        time_zone=dict(type="str", default="UTC"),
        min_age_hours=dict(type="int", default=24),
        max_concurrency=dict(type="int", default=4),
        delete_rate=dict(type="float", default=set_deletion.DELETE_RATE),
        delete_burst=dict(type="int", default=set_deletion.DELETE_BURST),
        archive_after_days=dict(type="int"),
        archive_keep_standard=dict(type="int"),
        force_archived_delete=dict(type="bool", default=False),
    )
    for key in retention.POLICY_KEYS:
        argument_spec[key] = dict(type="str") if key.startswith("keep_within") else dict(type="int", default=0)
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not 1 <= params["max_concurrency"] <= set_deletion.MAX_WORKERS:
        module.fail_json(msg="max_concurrency must be between 1 and %d, not %d" % (set_deletion.MAX_WORKERS, params["max_concurrency"]))
    if params["delete_rate"] <= 0 or params["delete_burst"] < 1:
        module.fail_json(msg="delete_rate must be above 0 and delete_burst at least 1 (got %s and %s)"
                         % (params["delete_rate"], params["delete_burst"]))
    for key in ("archive_after_days", "archive_keep_standard"):
        if params[key] is not None and params[key] < 0:
            module.fail_json(msg="%s must not be negative, not %d" % (key, params[key]))
    if params["min_age_hours"] < 0:
        module.fail_json(msg="min_age_hours must not be negative, not %d" % params["min_age_hours"])
    try:
        module.exit_json(**run_retention(module))
    except retention.RetentionPolicyError as error:
        module.fail_json(msg="retention policy refused: %s" % error)
    except AnsibleAWSError as error:
        module.fail_json_aws_error(error)


if __name__ == "__main__":
    main()
