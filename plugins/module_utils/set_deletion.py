# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Deleting snapshot sets: whole sets, paced under EC2's DeleteSnapshot token bucket, with EC2's refusals reported.

Shared by ec2_snapshot_set (``state: absent``) and ec2_snapshot_set_retention. A set is deleted member by member; a
member an AMI uses (``InvalidSnapshot.InUse``) or a lock protects is skipped with the reason and never stops the
others, and a member already gone counts as deleted, so a deletion interrupted halfway is finished by the next run
(the membership tags on every member keep the rest recognisable as an incomplete set). Many sets are deleted by a
small pool of threads that share one :class:`DeletePacer`, so that a bulk delete runs at EC2's refill rate instead
of into ``RequestLimitExceeded``; the throttling that still happens is retried (``ec2_api.delete_snapshot``) and never
reaches the user.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import concurrent.futures
import threading
import time

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import THROTTLING_CODES

# EC2's DeleteSnapshot token bucket per account and Region: 100 requests of burst, refilled at 5 per second.
DELETE_BURST = 100
DELETE_RATE = 5.0
# After a throttled answer the pacer halves its rate, at most once per this many seconds, down to MIN_RATE_SHARE of
# the configured rate; each successful delete gives back RATE_STEP_SHARE of it.
CUT_INTERVAL = 1.0
MIN_RATE_SHARE = 0.1
RATE_STEP_SHARE = 0.05
# A wait computed to the exact refill time may come back a rounding error short of a whole token.
TOKEN_EPSILON = 1e-9
MAX_WORKERS = 10
IN_USE = "InvalidSnapshot.InUse"


def error_code(error):
    """The EC2 error code of an AnsibleEC2Error ('' for a connection error)."""
    response = getattr(error.exception, "response", None) or {}
    return response.get("Error", {}).get("Code", "")


def error_text(error):
    """EC2's code and message of an AnsibleEC2Error, as a reason quotes them."""
    response = getattr(error.exception, "response", None) or {}
    message = response.get("Error", {}).get("Message")
    return "%s: %s" % (error_code(error), message) if message else str(error.exception or error)


class DeletePacer:
    """A client-side token bucket shaped like EC2's DeleteSnapshot bucket, shared by every thread of a bulk delete.

    Attached to a boto3 client, it takes a token before every DeleteSnapshot attempt (retries too). It holds one token
    less than EC2's bucket: EC2 counts a request when it arrives, and requests that travel faster than the one before
    them would otherwise arrive at an empty bucket. When EC2 answers ``RequestLimitExceeded`` anyway (another tool
    spends the same bucket), it empties itself and halves its rate, then climbs back with each delete that succeeds,
    so that the threads slow down together instead of retrying into an empty bucket.
    """

    def __init__(self, rate=DELETE_RATE, burst=DELETE_BURST, clock=time.monotonic, sleep=time.sleep):
        if rate <= 0 or burst < 1:
            raise ValueError("the delete rate must be positive and the burst at least 1 (got %r, %r)" % (rate, burst))
        self.max_rate = float(rate)
        self.rate = float(rate)
        self.burst = max(1.0, burst - 1.0)
        self.tokens = self.burst
        self._clock = clock
        self._sleep = sleep
        self._stamp = clock()
        self._last_cut = None
        self._lock = threading.Lock()
        self.attempts = 0
        self.throttled = 0
        self.waited = 0.0

    def attach(self, client):
        """Pace every DeleteSnapshot attempt of ``client`` (botocore's retries and amazon.aws's alike)."""
        client.meta.events.register("before-send.ec2.DeleteSnapshot", self._before_attempt)
        client.meta.events.register("needs-retry.ec2.DeleteSnapshot", self._after_attempt)
        return client

    def _refill(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self):
        """Wait until a request may go out without emptying EC2's bucket."""
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self.tokens >= 1 - TOKEN_EPSILON:
                    self.tokens -= 1
                    self.attempts += 1
                    return
                wait = (1 - self.tokens) / self.rate
                self.waited += wait
            self._sleep(wait)

    def answered(self, code):
        """An attempt's answer: ``code`` is the EC2 error code, '' for success."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            if code in THROTTLING_CODES:
                self.throttled += 1
                self.tokens = 0.0
                if self._last_cut is None or now - self._last_cut >= CUT_INTERVAL:
                    self.rate = max(self.max_rate * MIN_RATE_SHARE, self.rate / 2)
                    self._last_cut = now
            elif not code:
                self.rate = min(self.max_rate, self.rate + self.max_rate * RATE_STEP_SHARE)

    def _before_attempt(self, **kwargs):
        self.take()

    def _after_attempt(self, response=None, **kwargs):
        """An answer with an error code, or a success; a lost connection (no answer) says nothing about the bucket."""
        if response is None:
            return
        http_response, parsed = response
        code = (parsed or {}).get("Error", {}).get("Code", "")
        if code or http_response.status_code < 300:
            self.answered(code)

    def stats(self):
        """What the result reports as ``pacing``."""
        return {"attempts": self.attempts, "throttled": self.throttled, "paced_seconds": round(self.waited, 2),
                "rate": round(self.rate, 2)}


def images_by_snapshot(images):
    """``{snapshot id: [AMI ids]}`` from DescribeImages' block-device mappings."""
    used = {}
    for image in images:
        for mapping in image.get("BlockDeviceMappings", []):
            snapshot_id = mapping.get("Ebs", {}).get("SnapshotId")
            if snapshot_id:
                used.setdefault(snapshot_id, []).append(image["ImageId"])
    return dict((snapshot_id, sorted(set(ids))) for snapshot_id, ids in used.items())


def describe_lock(lock):
    """A lock as a reason says it: ``governance lock until 2027-01-01T00:00:00Z``."""
    expires = lock.get("LockExpiresOn")
    until = snapshot_tags.format_created_at(expires) if hasattr(expires, "astimezone") else expires
    return "%s lock%s" % (lock.get("LockState", "a"), " until %s" % until if until else "")


def locks_by_snapshot(locks):
    """``{snapshot id: description}`` of the locks DescribeLockedSnapshots lists."""
    return dict((lock["SnapshotId"], describe_lock(lock)) for lock in locks)


def protected_members(found, images, locks):
    """The members EC2 would refuse to delete (``images`` and ``locks`` as the two functions above give them), with
    the reason, as :func:`delete_set` reports a refusal: check mode asks instead of trying."""
    refused = []
    for member in found["snapshots"]:
        entry = {"snapshot_id": member["snapshot_id"], "volume_id": member["volume_id"]}
        if member["snapshot_id"] in images:
            refused.append(dict(entry, reason="in use: backs AMI %s" % ", ".join(images[member["snapshot_id"]])))
        elif member["snapshot_id"] in locks:
            refused.append(dict(entry, reason="locked: %s" % locks[member["snapshot_id"]]))
    return refused


def refusal(found, account_id, instance_id=None):
    """Why a set must not be deleted at all (members of another account or instance, or without the schema), or None."""
    members = found["snapshots"]
    foreign = sorted(m["snapshot_id"] for m in members if m.get("owner_id") != account_id)
    if foreign:
        return "snapshots %s are not owned by account %s" % (", ".join(foreign), account_id)
    untagged = sorted(m["snapshot_id"] for m in members if not snapshot_tags.is_schema_tagged(m["tags"]))
    if untagged:
        return "snapshots %s do not carry the collection's tag schema" % ", ".join(untagged)
    instances = sorted(set(m["tags"].get(snapshot_tags.KEY_INSTANCE_ID) or "(none)" for m in members))
    if instance_id and instances != [instance_id]:
        return "its snapshots belong to instances %s, not only to %s" % (", ".join(instances), instance_id)
    return None


def _refused_by_lock(client, snapshot_id):
    """The lock that made EC2 refuse a delete, or None (EC2 does not document the error code of a locked snapshot)."""
    try:
        locks = ec2_api.describe_locked_snapshots(client, [snapshot_id])
    except AnsibleEC2Error:
        return None
    return describe_lock(locks[0]) if locks else None


def _delete_member(client, member):
    """(kind, entry) of deleting one member: ``deleted``, ``already_deleted``, ``refused`` (with the reason) or
    ``errors`` (with the error)."""
    snapshot_id = member["snapshot_id"]
    entry = {"snapshot_id": snapshot_id, "volume_id": member["volume_id"]}
    try:
        return ("deleted" if ec2_api.delete_snapshot(client, snapshot_id) else "already_deleted"), entry
    except AnsibleEC2Error as error:
        failure = error
    if error_code(failure) == IN_USE:
        return "refused", dict(entry, reason="in use: %s" % error_text(failure))
    lock = _refused_by_lock(client, snapshot_id)
    if lock:
        return "refused", dict(entry, reason="locked: %s (%s)" % (lock, error_text(failure)))
    return "errors", dict(entry, error="could not delete %s: %s" % (snapshot_id, error_text(failure)))


def delete_set(client, found):
    """Delete every member of a set still present; returns the snapshots deleted (``deleted_snapshot_ids``, and
    ``already_deleted`` by an earlier attempt), ``refused`` with EC2's reason, and ``errors``."""
    began = time.monotonic()
    outcome = {"set_id": found["set_id"], "instance_id": found.get("instance_id"), "deleted_snapshot_ids": [],
               "already_deleted": [], "refused": [], "errors": []}
    for member in found["snapshots"]:
        kind, entry = _delete_member(client, member)
        if kind == "deleted":
            outcome["deleted_snapshot_ids"].append(entry["snapshot_id"])
        elif kind == "already_deleted":
            outcome["already_deleted"].append(entry["snapshot_id"])
        else:
            outcome[kind].append(entry)
    outcome["seconds"] = round(time.monotonic() - began, 3)
    return outcome


def delete_sets(client, sets, workers=4):
    """Delete whole sets, ``workers`` at a time (each thread one set at a time, so that an interruption leaves at most
    ``workers`` sets partly deleted). Returns the outcomes in the order of ``sets``."""
    workers = max(1, min(MAX_WORKERS, int(workers)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda found: delete_set(client, found), sets))
