# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DR copies of whole sets to another Region and/or account: plan, share, copy under the per-Region cap, resume.

A copy is the same set in its destination: every member's CopySnapshot carries the source's schema tags and
``shadowsnap:copy:*`` (snapshot_tags.build_copy_tags), so the destination finds a set's copies by their set id and
member volume alone. That is what makes a run idempotent (a member already copied, or still being copied, is never
copied again) and an interrupted run resumable (the next one copies only what is missing). EC2 runs at most 20 copies
per destination Region at a time (``ResourceLimitExceeded``): :func:`run_copies` keeps that many in flight, polls
them, and starts the next as one completes. Across accounts the source snapshots are shared with the destination
account (createVolumePermission) and copied from there; EC2 cannot share a snapshot encrypted with the AWS managed
key aws/ebs, so such a set is refused before anything is shared.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

try:
    import botocore
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.amazon.aws.plugins.module_utils.errors import AWSErrorHandler
from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY

# EC2: at most 20 concurrent snapshot copies per destination Region (CopySnapshot answers ResourceLimitExceeded).
MAX_CONCURRENT_COPIES = 20
CAPACITY_CODE = "ResourceLimitExceeded"
LOST_ANSWER_CODES = ("InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable")
# Waits after ResourceLimitExceeded while none of this run's copies is in flight (another tool's copies hold the cap).
CAPACITY_WAIT_FIRST = 5.0
CAPACITY_WAIT_MAX = 60.0
AWS_MANAGED = "AWS"


class SetCopyError(Exception):
    """A copy that cannot be carried out as asked; the message says what to change."""


class KeyErrorHandler(AWSErrorHandler):
    _CUSTOM_EXCEPTION = AnsibleAWSError

    @classmethod
    def _is_missing(cls):
        return is_boto3_error_code("NotFoundException")


@KeyErrorHandler.common_error_handler("describe the snapshot's KMS key")
@READ_RETRY
def key_manager(kms_client, key_id):
    """``AWS`` for a key AWS manages (aws/ebs), ``CUSTOMER`` for a customer managed key."""
    return kms_client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyManager"]


def _tags(snapshot):
    return boto3_tag_list_to_ansible_dict(snapshot.get("Tags", []))


def source_sets(client, set_ids):
    """``{set id: (set summary, {snapshot id: raw snapshot})}`` of the sets to copy; SetCopyError for a set that is
    missing, or not complete (CopySnapshot copies only completed snapshots)."""
    snapshots = snapshot_sets.find_snapshots(client, set_ids=sorted(set(set_ids)))
    raw = dict((snapshot["SnapshotId"], snapshot) for snapshot in snapshots)
    found = dict((summary["set_id"], summary) for summary in snapshot_sets.group_sets(snapshots))
    missing = sorted(set(set_ids) - set(found))
    if missing:
        raise SetCopyError("no snapshot of this account and Region carries the set id %s" % ", ".join(missing))
    for summary in found.values():
        if summary["status"] != "completed":
            raise SetCopyError(
                "set %s is %s (%s); only a complete set is copied: wait for it (ec2_snapshot_set wait: true) or "
                "choose another" % (summary["set_id"], summary["status"], ", ".join(
                    summary["missing_volume_ids"] or summary["pending_snapshot_ids"] or summary["error_snapshot_ids"])))
    return dict((set_id, (summary, dict((m["snapshot_id"], raw[m["snapshot_id"]]) for m in summary["snapshots"])))
                for set_id, summary in found.items())


def check_shareable(kms_client, sources):
    """SetCopyError when a member is encrypted with the AWS managed key: EC2 cannot share it with another account."""
    for set_id, (dummy, raw) in sorted(sources.items()):
        for snapshot_id, snapshot in sorted(raw.items()):
            if not snapshot.get("Encrypted"):
                continue
            key_id = snapshot.get("KmsKeyId")
            if not key_id or key_manager(kms_client, key_id) == AWS_MANAGED:
                raise SetCopyError(
                    "snapshot %s of set %s is encrypted with the AWS managed key aws/ebs (%s), which EC2 cannot share "
                    "with another account; nothing was shared or copied. Encrypt the volumes with a customer managed "
                    "KMS key whose key policy lets the destination account use it (or copy the set within this "
                    "account with kms_key_id set to such a key, then copy that copy)"
                    % (snapshot_id, set_id, key_id or "no key id reported"))


def destination_copies(client, set_ids):
    """``{(set id, member volume id): copy}`` of the copies already in the destination (any state), where ``copy``
    is the summary member; SetCopyError when the destination holds a set with one of these ids that is no copy."""
    existing = {}
    for summary in snapshot_sets.group_sets(snapshot_sets.find_snapshots(client, set_ids=sorted(set(set_ids)))):
        for member in summary["snapshots"]:
            if snapshot_tags.decode_copy(member["tags"]) is None:
                raise SetCopyError(
                    "the destination already holds set %s, and it is no copy (snapshot %s); the destination must be "
                    "another Region or account than the set's own" % (summary["set_id"], member["snapshot_id"]))
            existing[(summary["set_id"], member["volume_id"])] = member
    return existing


def plan_copies(sources, existing, source_region, source_account, policy=None):
    """One entry per member: ``action`` is ``copy`` (missing in the destination), ``pending`` (a copy is on its way,
    from this or an earlier run), ``present`` (copied) or ``error`` (the copy failed: delete it, then run again).
    Each entry holds the copy's tags (TagSchemaError when they do not fit)."""
    plan = []
    for set_id, (summary, raw) in sorted(sources.items()):
        for member in summary["snapshots"]:
            copy = existing.get((set_id, member["volume_id"]))
            entry = {
                "set_id": set_id, "source_snapshot_id": member["snapshot_id"], "volume_id": member["volume_id"],
                "device": member["device"], "volume_size": member["volume_size"],
                "encrypted": bool(raw[member["snapshot_id"]].get("Encrypted")),
                "tags": snapshot_tags.build_copy_tags(member["tags"], member["volume_id"], member["snapshot_id"],
                                                      source_region, source_account, policy),
                "snapshot_id": copy["snapshot_id"] if copy else None,
                "state": copy["state"] if copy else None,
            }
            if copy is None:
                entry["action"] = "copy"
            elif copy["state"] == "completed":
                entry["action"] = "present"
            elif copy["state"] == "error":
                entry["action"] = "error"
            else:
                entry["action"] = "pending"
            plan.append(entry)
    return plan


def description(entry, source_region):
    return "shadowsnap DR copy of %s (%s) from %s" % (entry["source_snapshot_id"], entry["set_id"], source_region)


class CopyQueue:
    """Copies into one destination Region, at most ``limit`` in flight: start, poll, start the next as one ends.

    ``create_client`` has no automatic retries (a lost CopySnapshot answer is looked for by the copy's tags before it
    is sent again), ``read_client`` polls. Timings are seconds since the queue started, on ``clock``.
    """

    def __init__(self, create_client, read_client, source_region, limit=MAX_CONCURRENT_COPIES, poll_interval=15.0,
                 encrypted=False, kms_key_id=None, sleep=time.sleep, clock=time.monotonic):
        self.create_client = create_client
        self.read_client = read_client
        self.source_region = source_region
        self.limit = limit
        self.poll_interval = poll_interval
        self.encrypted = encrypted
        self.kms_key_id = kms_key_id
        self.sleep = sleep
        self.clock = clock
        self.started = clock()
        self.in_flight = {}
        self.busy_seconds = 0.0
        self.max_in_flight = 0
        self.capacity_refusals = 0
        self._last_tick = self.started

    def now(self):
        return round(self.clock() - self.started, 3)

    def _tick(self):
        """Counts slot-seconds in use, for the occupancy the result reports."""
        moment = self.clock()
        self.busy_seconds += len(self.in_flight) * (moment - self._last_tick)
        self._last_tick = moment

    def _lost_copy(self, entry):
        """The copy a lost CopySnapshot answer made, found by its set id and member volume, or None. Looked for
        several times, each after a longer wait: a new copy may not be listed at once."""
        for lookup in range(snapshot_sets.RECONCILE_LOOKUPS):
            self.sleep(snapshot_sets.RECONCILE_FIRST_WAIT * (2 ** lookup))
            copy = destination_copies(self.read_client, [entry["set_id"]]).get((entry["set_id"], entry["volume_id"]))
            if copy:
                return copy["snapshot_id"]
        return None

    def _start(self, entry):
        """Send one CopySnapshot; True when the copy exists, False when EC2's cap refused it (try again later)."""
        try:
            entry["snapshot_id"] = ec2_api.copy_snapshot(
                self.create_client, self.source_region, entry["source_snapshot_id"],
                description(entry, self.source_region), entry["tags"], self.encrypted or entry["encrypted"],
                self.kms_key_id)
        except AnsibleEC2Error as error:
            code = ec2_api.error_code(error)
            if code == CAPACITY_CODE:
                self.capacity_refusals += 1
                return False
            lost = code in LOST_ANSWER_CODES or isinstance(
                error.exception, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError))
            entry["snapshot_id"] = self._lost_copy(entry) if lost else None
            if not entry["snapshot_id"]:
                raise
            entry["reconciled"] = True
        entry["action"] = "copied"
        entry["state"] = "pending"
        entry["started_at"] = self.now()
        self._track(entry)
        return True

    def _track(self, entry):
        self._tick()
        self.in_flight[entry["snapshot_id"]] = entry
        self.max_in_flight = max(self.max_in_flight, len(self.in_flight))

    def _poll(self):
        """Move the copies that have ended out of flight; a copy not listed yet (EC2 is eventually consistent) stays."""
        filters = [{"Name": "snapshot-id", "Values": sorted(self.in_flight)}]
        states = dict((s["SnapshotId"], s) for s in ec2_api.describe_snapshots(self.read_client, filters))
        self._tick()
        ended = []
        for snapshot_id, entry in list(self.in_flight.items()):
            snapshot = states.get(snapshot_id)
            if snapshot is None or snapshot["State"] not in ("completed", "error"):
                continue
            entry["state"] = snapshot["State"]
            if entry["action"] == "pending":
                entry["action"] = "present"
            entry["completed_at"] = self.now()
            if entry.get("started_at") is not None:
                entry["copy_seconds"] = round(entry["completed_at"] - entry["started_at"], 3)
            del self.in_flight[snapshot_id]
            ended.append(entry)
        return ended

    def run(self, entries, wait=True, timeout=3600.0):
        """Copy every ``copy`` entry and wait for every ``pending`` one (they hold slots). Without ``wait``, start what
        fits and return: the rest stays ``queued`` for the next run. Returns the entries still in flight or queued
        when ``timeout`` ran out (they go on in EC2; a re-run waits for them)."""
        for entry in entries:
            if entry["action"] == "pending":
                self._track(entry)
        queue = [entry for entry in entries if entry["action"] == "copy"]
        for entry in queue:
            entry["queued_at"] = self.now()
        capacity_wait = CAPACITY_WAIT_FIRST
        deadline = self.started + timeout
        while queue or (wait and self.in_flight):
            refused = False
            while queue and len(self.in_flight) < self.limit:
                if not self._start(queue[0]):
                    refused = True
                    break
                queue.pop(0)
            if not wait:
                break
            if self.clock() >= deadline:
                break
            if refused and not self.in_flight:
                self.sleep(capacity_wait)
                capacity_wait = min(CAPACITY_WAIT_MAX, capacity_wait * 2)
                continue
            capacity_wait = CAPACITY_WAIT_FIRST
            self.sleep(self.poll_interval)
            self._poll()
        self._tick()
        for entry in queue:
            entry["action"] = "queued"
        return list(self.in_flight.values()) + queue

    def occupancy(self):
        """The share of the cap's slot-seconds this run kept busy (1.0: ``limit`` copies in flight all along)."""
        elapsed = self._last_tick - self.started
        return round(self.busy_seconds / (self.limit * elapsed), 3) if elapsed > 0 else 0.0


def share_sources(client, plan, account_id):
    """Share the planned members' source snapshots with the destination account; their ids."""
    snapshot_ids = sorted(set(entry["source_snapshot_id"] for entry in plan))
    for snapshot_id in snapshot_ids:
        ec2_api.share_snapshot(client, snapshot_id, [account_id])
    return snapshot_ids


def unshare_sources(client, plan, account_id):
    """Stop sharing with the destination account the source snapshots still shared with it (an earlier run may have
    shared them and stopped before its copies completed); their ids."""
    snapshot_ids = [snapshot_id for snapshot_id in sorted(set(entry["source_snapshot_id"] for entry in plan))
                    if account_id in ec2_api.snapshot_shared_with(client, snapshot_id)]
    for snapshot_id in snapshot_ids:
        ec2_api.share_snapshot(client, snapshot_id, [account_id], share=False)
    return snapshot_ids
