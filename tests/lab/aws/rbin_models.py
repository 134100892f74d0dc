"""The Recycle Bin, which moto 5.1 lacks: the ``rbin`` service's retention rules, DeleteSnapshot's move of a snapshot
that a rule retains into the bin, and EC2's ListSnapshotsInRecycleBin and RestoreSnapshotFromRecycleBin.

From the Recycle Bin API reference (docs/lab.md): a tag-level rule retains deleted resources of its type that carry
at least one of its tag key and value pairs (the lab reads a pair without a value as "any value of the key"); a
Region-level rule (no resource tags) retains every one but those with one of its exclusion tags, and only it can be
locked (an unlock delay of 7 to 30 days); retention is 1 to 365 days for snapshots; of several matching rules the
longest retention applies; only ``available`` rules retain. A snapshot in the bin is gone from DescribeSnapshots and
cannot be used; it keeps its id, tags and data, and RestoreSnapshotFromRecycleBin brings it back ``recovering`` for
``recover_seconds`` (a setting, 0 by default, which applies to snapshots already recovering), then ``completed``; after its retention it is deleted for good.
The ``rbin`` service answers on the fault proxy's port (lab.aws.rbin_responses); its error codes are the API's.
"""

import datetime
import secrets
import string
import threading
import time
from dataclasses import dataclass, field

from moto.ec2.exceptions import InvalidSnapshotIdError

RESOURCE_TYPES = ("EBS_SNAPSHOT", "EC2_IMAGE", "EBS_VOLUME")
MAX_SNAPSHOT_RETENTION_DAYS = 365
MAX_VOLUME_RETENTION_DAYS = 7
UNLOCK_DELAY_DAYS = (7, 30)
MAX_RESOURCE_TAGS = 50


class RbinError(Exception):
    """An rbin answer other than success: the exception name is the error code."""

    def __init__(self, code, status, message, reason=None):
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason


def _invalid(message, reason="INVALID_PARAMETER_VALUE"):
    return RbinError("ValidationException", 400, message, reason)


@dataclass
class Rule:
    identifier: str
    arn: str
    resource_type: str
    retention_days: int
    description: str = ""
    resource_tags: list = field(default_factory=list)
    exclude_tags: list = field(default_factory=list)
    tags: list = field(default_factory=list)
    unlock_delay_days: int = None

    def matches(self, tags):
        """Whether this rule retains a resource with ``tags`` (a dict) when it is deleted."""
        def carries(pair):
            key, value = pair["ResourceTagKey"], pair.get("ResourceTagValue")
            return key in tags and (value is None or tags[key] == value)
        if self.resource_tags:
            return any(carries(pair) for pair in self.resource_tags)
        return not any(carries(pair) for pair in self.exclude_tags)

    def summary(self):
        item = {"Identifier": self.identifier, "Description": self.description, "RuleArn": self.arn,
                "RetentionPeriod": {"RetentionPeriodValue": self.retention_days, "RetentionPeriodUnit": "DAYS"}}
        if self.unlock_delay_days:
            item["LockState"] = "locked"
        return item

    def describe(self):
        item = dict(self.summary(), ResourceType=self.resource_type, Status="available")
        if self.resource_tags:
            item["ResourceTags"] = [dict(pair) for pair in self.resource_tags]
        if self.exclude_tags:
            item["ExcludeResourceTags"] = [dict(pair) for pair in self.exclude_tags]
        if self.unlock_delay_days:
            item["LockConfiguration"] = {"UnlockDelay": {"UnlockDelayValue": self.unlock_delay_days,
                                                         "UnlockDelayUnit": "DAYS"}}
        return item


@dataclass
class BinEntry:
    snapshot: object
    entered_on: datetime.datetime
    exits_on: datetime.datetime
    rule_id: str


def _resource_tags(pairs, what):
    pairs = list(pairs or [])
    if len(pairs) > MAX_RESOURCE_TAGS:
        raise _invalid("At most %d %s may be given." % (MAX_RESOURCE_TAGS, what))
    for pair in pairs:
        if not isinstance(pair, dict) or not pair.get("ResourceTagKey"):
            raise _invalid("Every item of %s needs a ResourceTagKey." % what)
    return [dict((key, pair[key]) for key in ("ResourceTagKey", "ResourceTagValue") if key in pair) for pair in pairs]


class RecycleBin:
    """The rules and the bin of the lab's one account and Region (thread-safe)."""

    def __init__(self, clock, region, account_id):
        self.clock = clock
        self.region = region
        self.account_id = account_id
        self.recover_seconds = 0.0
        self.lock = threading.RLock()
        self._rules = {}
        self._bin = {}
        self._recovering = {}

    def reset(self):
        with self.lock:
            self.recover_seconds = 0.0
            self._rules.clear()
            self._bin.clear()
            self._recovering.clear()

    def configure(self, recover_seconds):
        with self.lock:
            self.recover_seconds = float(recover_seconds)
            return {"recover_seconds": self.recover_seconds}

    # ----------------------------------------------------------------------------------------------- rules
    def create_rule(self, request):
        """CreateRule: a tag-level rule (ResourceTags) or a Region-level one (optionally ExcludeResourceTags and a
        LockConfiguration)."""
        resource_type = request.get("ResourceType")
        if resource_type not in RESOURCE_TYPES:
            raise _invalid("ResourceType must be one of %s." % ", ".join(RESOURCE_TYPES))
        period = request.get("RetentionPeriod") or {}
        days = period.get("RetentionPeriodValue")
        longest = MAX_VOLUME_RETENTION_DAYS if resource_type == "EBS_VOLUME" else MAX_SNAPSHOT_RETENTION_DAYS
        if period.get("RetentionPeriodUnit") != "DAYS" or not isinstance(days, int) or not 1 <= days <= longest:
            raise _invalid("RetentionPeriod must be 1 to %d DAYS." % longest)
        resource_tags = _resource_tags(request.get("ResourceTags"), "ResourceTags")
        exclude_tags = _resource_tags(request.get("ExcludeResourceTags"), "ExcludeResourceTags")
        if resource_tags and exclude_tags:
            raise _invalid("ExcludeResourceTags can only be given for a Region-level retention rule.")
        delay = None
        if request.get("LockConfiguration"):
            if resource_tags:
                raise _invalid("Only Region-level retention rules can be locked.")
            unlock = request["LockConfiguration"].get("UnlockDelay") or {}
            delay = unlock.get("UnlockDelayValue")
            if unlock.get("UnlockDelayUnit") != "DAYS" or not isinstance(delay, int) or not (
                    UNLOCK_DELAY_DAYS[0] <= delay <= UNLOCK_DELAY_DAYS[1]):
                raise _invalid("UnlockDelay must be %d to %d DAYS." % UNLOCK_DELAY_DAYS)
        identifier = "".join(secrets.choice(string.ascii_letters + string.digits) for dummy in range(11))
        rule = Rule(identifier=identifier, arn="arn:aws:rbin:%s:%s:rule/%s" % (self.region, self.account_id, identifier),
                    resource_type=resource_type, retention_days=days, description=request.get("Description") or "",
                    resource_tags=resource_tags, exclude_tags=exclude_tags, tags=list(request.get("Tags") or []),
                    unlock_delay_days=delay)
        with self.lock:
            self._rules[identifier] = rule
        return dict(rule.describe(), Tags=rule.tags)

    def _rule(self, identifier):
        with self.lock:
            rule = self._rules.get(identifier)
        if rule is None:
            raise RbinError("ResourceNotFoundException", 404, "Rule %s was not found." % identifier, "RULE_NOT_FOUND")
        return rule

    def get_rule(self, identifier):
        return self._rule(identifier).describe()

    def delete_rule(self, identifier):
        rule = self._rule(identifier)
        if rule.unlock_delay_days:
            raise RbinError("ConflictException", 409, "Rule %s is locked." % identifier, "INVALID_RULE_STATE")
        with self.lock:
            del self._rules[identifier]

    def list_rules(self, request):
        """ListRules' summaries of the rules of a resource type (with these resource tags, in this lock state),
        paginated by rule id."""
        if request.get("ResourceType") not in RESOURCE_TYPES:
            raise _invalid("ResourceType must be one of %s." % ", ".join(RESOURCE_TYPES))
        wanted = _resource_tags(request.get("ResourceTags"), "ResourceTags")
        size = request.get("MaxResults") or 1000
        with self.lock:
            rules = sorted(self._rules.values(), key=lambda rule: rule.identifier)
        rules = [rule for rule in rules if rule.resource_type == request["ResourceType"]
                 and all(pair in rule.resource_tags for pair in wanted)
                 and request.get("LockState") in (None, "locked" if rule.unlock_delay_days else "unlocked")]
        after = request.get("NextToken")
        if after:
            rules = [rule for rule in rules if rule.identifier > after]
        page = rules[:size]
        answer = {"Rules": [rule.summary() for rule in page]}
        if len(rules) > size:
            answer["NextToken"] = page[-1].identifier
        return answer

    # ------------------------------------------------------------------------------------------- the bin
    def retaining_rule(self, tags):
        """The available snapshot rule that retains a snapshot with these tags (the longest retention), or None."""
        with self.lock:
            matching = [rule for rule in self._rules.values() if rule.resource_type == "EBS_SNAPSHOT" and rule.matches(tags)]
        return max(matching, key=lambda rule: rule.retention_days) if matching else None

    def take(self, backend, snapshot, rule):
        """DeleteSnapshot's move into the bin: the snapshot leaves the account's listing, keeping id, tags and data."""
        now = self.clock()
        with self.lock:
            backend.snapshots.pop(snapshot.id, None)
            self._bin[snapshot.id] = BinEntry(snapshot=snapshot, entered_on=now, rule_id=rule.identifier,
                                              exits_on=now + datetime.timedelta(days=rule.retention_days))

    def _expire(self):
        now = self.clock()
        for snapshot_id, entry in list(self._bin.items()):
            if now >= entry.exits_on:
                del self._bin[snapshot_id]

    def in_bin(self, backend, snapshot_ids=None):
        """ListSnapshotsInRecycleBin's items of the caller's snapshots, in snapshot id order."""
        with self.lock:
            self._expire()
            entries = [entry for snapshot_id, entry in sorted(self._bin.items())
                       if entry.snapshot.owner_id == backend.account_id and (not snapshot_ids or snapshot_id in snapshot_ids)]
        return [{"SnapshotId": entry.snapshot.id, "RecycleBinEnterTime": entry.entered_on,
                 "RecycleBinExitTime": entry.exits_on, "Description": entry.snapshot.description,
                 "VolumeId": entry.snapshot.volume.id} for entry in entries]

    def restore(self, backend, snapshot_id):
        """RestoreSnapshotFromRecycleBin: the snapshot is back, ``recovering`` for a while."""
        with self.lock:
            self._expire()
            entry = self._bin.get(snapshot_id)
            if entry is None or entry.snapshot.owner_id != backend.account_id:
                raise InvalidSnapshotIdError()
            del self._bin[snapshot_id]
            backend.snapshots[snapshot_id] = entry.snapshot
            self._recovering[snapshot_id] = time.monotonic()
        snapshot = entry.snapshot
        return {"SnapshotId": snapshot.id, "Description": snapshot.description, "Encrypted": bool(snapshot.encrypted),
                "OwnerId": snapshot.owner_id, "Progress": "100%", "StartTime": snapshot.start_time,
                "State": self.recovering(snapshot) or "completed", "VolumeId": snapshot.volume.id,
                "VolumeSize": snapshot.volume.size}

    def recovering(self, snapshot):
        """``recovering`` while a snapshot restored from the bin is not usable yet, else None."""
        with self.lock:
            since = self._recovering.get(snapshot.id)
            if since is None:
                return None
            if time.monotonic() - since < self.recover_seconds:
                return "recovering"
            del self._recovering[snapshot.id]
            return None
