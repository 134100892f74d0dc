"""What the lab adds to moto for retention: snapshot locks, AMIs that use snapshots, DeleteSnapshot's refusals and a
log of deletions, and the seeding retention tests need (back-dated sets, other accounts' and untagged snapshots).

moto 5.1 has no snapshot locks (LockSnapshot, UnlockSnapshot and DescribeLockedSnapshots answer HTTP 500), its
RegisterImage ignores BlockDeviceMappings, and its DeleteSnapshot refuses only the one synthetic snapshot of a
CreateImage AMI. :class:`RetentionBehaviour` keeps a lock table (governance and compliance modes, a cooling-off period,
a duration in days or an expiry date, the lock states EC2 documents), records the block-device mappings an AMI is
registered with, and makes DeleteSnapshot refuse a snapshot that another account owns, that a lock protects, or that a
registered AMI's mappings use (``InvalidSnapshot.InUse``, AWS's code and text). It owns the archive tier
(lab.aws.tier_models) and the Recycle Bin (lab.aws.rbin_models): a DeleteSnapshot that a Recycle Bin rule retains moves
the snapshot into the bin instead. lab.aws.retention_responses plugs it into moto. Error codes AWS does not document
are the lab's choice, marked below; the collection does not rely on them.
"""

import datetime
import json
import threading
import urllib.parse
from dataclasses import dataclass

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError, InvalidSnapshotInUse
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id

from lab.clock import iso, lab_now

from .ebs_models import own_snapshot, start_time_text
from .rbin_models import RecycleBin
from .rbin_responses import RbinEndpoint
from .tier_models import SnapshotTiers

LOCK_MODES = ("governance", "compliance")
LOCK_STATES = ("compliance-cooloff", "governance", "compliance", "expired")
MAX_COOL_OFF_HOURS = 72
MAX_LOCK_DAYS = 36500
SET_ID_TAG = "shadowsnap:set-id"
CREATED_AT_TAG = "shadowsnap:created-at"
CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _moment(value):
    """An aware datetime from an ISO 8601 text (``Z`` or an offset) or a datetime."""
    if isinstance(value, datetime.datetime):
        moment = value
    else:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


@dataclass
class SnapshotLock:
    """One snapshot's lock as EC2 describes it; its state follows from the clock."""

    snapshot_id: str
    owner_id: str
    mode: str
    created_on: datetime.datetime
    expires_on: datetime.datetime
    duration_days: int = None
    cool_off_hours: int = None
    cool_off_expires_on: datetime.datetime = None

    @property
    def id(self):
        return self.snapshot_id

    def state(self, now):
        if now >= self.expires_on:
            return "expired"
        if self.mode == "compliance" and self.cool_off_expires_on and now < self.cool_off_expires_on:
            return "compliance-cooloff"
        return self.mode

    def info(self, now):
        """A LockedSnapshotsInfo item (also LockSnapshot's answer)."""
        info = {"OwnerId": self.owner_id, "SnapshotId": self.snapshot_id, "LockState": self.state(now),
                "LockCreatedOn": self.created_on, "LockDurationStartTime": self.created_on, "LockExpiresOn": self.expires_on}
        if self.duration_days is not None:
            info["LockDuration"] = self.duration_days
        if self.cool_off_hours:
            info["CoolOffPeriod"] = self.cool_off_hours
            info["CoolOffPeriodExpiresOn"] = self.cool_off_expires_on
        return info


def _refuse(code, message):
    raise EC2ClientError(code, message)


class RetentionBehaviour:
    """Locks, AMI mappings, DeleteSnapshot's refusals and the retention seeding of the lab's moto backend."""

    def __init__(self, blockstore, ebs, region):
        self.blockstore = blockstore
        self.ebs = ebs
        self.region = region
        self.lock = threading.RLock()
        self._locks = {}
        self._image_mappings = {}
        self._images_of_snapshot = {}
        self._deletions = []
        self.tiers = SnapshotTiers(self.now, self.images_using)
        self.recycle_bin = RecycleBin(self.now, region, DEFAULT_ACCOUNT_ID)
        self.services = {"rbin": RbinEndpoint(self.recycle_bin)}

    def reset(self):
        self.tiers.reset()
        self.recycle_bin.reset()
        with self.lock:
            self._locks.clear()
            self._image_mappings.clear()
            self._images_of_snapshot.clear()
            self._deletions.clear()

    def now(self):
        """EC2's clock (the lab's, skewed as the EBS settings say), which lock times are read on."""
        return self.ebs.clock()

    def backend(self, account_id=DEFAULT_ACCOUNT_ID):
        return ec2_backends[account_id][self.region]

    # ----------------------------------------------------------------------------------------------- locks
    # pylint: disable-next=too-many-arguments
    def lock_snapshot(self, backend, snapshot_id, mode, cool_off_hours=None, duration_days=None, expiration_date=None):
        """LockSnapshot: a new lock, or a change of one that EC2 allows (any in governance mode or in the cooling-off
        period; a compliance lock past its cooling-off period can only be extended)."""
        snapshot = own_snapshot(backend, snapshot_id)
        if mode not in LOCK_MODES:
            _refuse("InvalidParameterValue", "LockMode must be governance or compliance, not %s" % mode)
        if (duration_days is None) == (expiration_date is None):
            _refuse("InvalidParameterCombination", "Specify either LockDuration or ExpirationDate.")
        if cool_off_hours and mode != "compliance":
            _refuse("InvalidParameterCombination", "CoolOffPeriod can only be specified with compliance mode.")
        if cool_off_hours is not None and not 1 <= int(cool_off_hours) <= MAX_COOL_OFF_HOURS:
            _refuse("InvalidParameterValue", "CoolOffPeriod must be between 1 and %d hours." % MAX_COOL_OFF_HOURS)
        now = self.now()
        if duration_days is not None:
            if not 1 <= int(duration_days) <= MAX_LOCK_DAYS:
                _refuse("InvalidParameterValue", "LockDuration must be between 1 and %d days." % MAX_LOCK_DAYS)
            expires_on = now + datetime.timedelta(days=int(duration_days))
        else:
            expires_on = _moment(expiration_date)
            if expires_on <= now:
                _refuse("InvalidParameterValue", "ExpirationDate must be in the future.")
        with self.lock:
            current = self._locks.get(snapshot_id)
            if current is not None and current.state(now) == "compliance":
                if mode != "compliance" or expires_on < current.expires_on:
                    # The code is the lab's choice: EC2 documents the rule, not its error code.
                    _refuse("InvalidParameterValue", "The snapshot %s is locked in compliance mode; its lock can only "
                            "be extended." % snapshot_id)
            lock = SnapshotLock(
                snapshot_id=snapshot_id, owner_id=snapshot.owner_id, mode=mode, created_on=now, expires_on=expires_on,
                duration_days=int(duration_days) if duration_days is not None else None,
                cool_off_hours=int(cool_off_hours) if cool_off_hours else None,
                cool_off_expires_on=now + datetime.timedelta(hours=int(cool_off_hours)) if cool_off_hours else None)
            self._locks[snapshot_id] = lock
            return lock.info(now)

    def unlock_snapshot(self, backend, snapshot_id):
        """UnlockSnapshot: a governance lock, or a compliance lock still in its cooling-off period."""
        own_snapshot(backend, snapshot_id)
        with self.lock:
            lock = self._locks.get(snapshot_id)
            state = lock.state(self.now()) if lock else None
            if state in (None, "expired"):
                _refuse("InvalidParameterValue", "The snapshot %s is not locked." % snapshot_id)
            if state == "compliance":
                _refuse("InvalidParameterValue", "The snapshot %s is locked in compliance mode and cannot be unlocked "
                        "after its cooling-off period." % snapshot_id)
            del self._locks[snapshot_id]
        return {"SnapshotId": snapshot_id}

    def locked_snapshots(self, backend, snapshot_ids=None, states=None):
        """DescribeLockedSnapshots' items for the caller's snapshots (by ids, by lock state), in snapshot id order."""
        now = self.now()
        with self.lock:
            locks = [lock for lock in self._locks.values() if lock.owner_id == backend.account_id
                     and lock.snapshot_id in backend.snapshots]
        if snapshot_ids:
            locks = [lock for lock in locks if lock.snapshot_id in snapshot_ids]
        if states:
            locks = [lock for lock in locks if lock.state(now) in states]
        return sorted(locks, key=lambda lock: lock.snapshot_id), now

    def active_lock(self, snapshot_id):
        with self.lock:
            lock = self._locks.get(snapshot_id)
        return lock if lock is not None and lock.state(self.now()) != "expired" else None

    # ------------------------------------------------------------------------------------------------ AMIs
    @staticmethod
    def checked_mappings(backend, mappings):
        """RegisterImage's BlockDeviceMappings as DescribeImages shows them; every snapshot named must exist."""
        recorded = []
        for mapping in mappings:
            ebs = dict(mapping.get("Ebs") or {})
            snapshot_id = ebs.get("SnapshotId")
            if snapshot_id:
                snapshot = backend.snapshots.get(snapshot_id)
                if snapshot is None:
                    raise InvalidSnapshotIdError()
                ebs.setdefault("VolumeSize", snapshot.volume.size)
            ebs.setdefault("DeleteOnTermination", True)
            ebs.setdefault("VolumeType", "gp3")
            recorded.append({"DeviceName": mapping.get("DeviceName"), "Ebs": ebs})
        return recorded

    def record_mappings(self, image_id, mappings):
        """The AMI uses the snapshots of its mappings from now on (until it is deregistered)."""
        with self.lock:
            self._image_mappings[image_id] = mappings
            for entry in mappings:
                if entry["Ebs"].get("SnapshotId"):
                    self._images_of_snapshot.setdefault(entry["Ebs"]["SnapshotId"], set()).add(image_id)

    def mappings_of(self, image_id):
        with self.lock:
            return self._image_mappings.get(image_id)

    def images_using(self, backend, snapshot_id):
        """The registered AMIs (still there) whose mappings use the snapshot."""
        with self.lock:
            candidates = sorted(self._images_of_snapshot.get(snapshot_id, ()))
        return [image_id for image_id in candidates if image_id in backend.amis]

    # ------------------------------------------------------------------------------------------ DeleteSnapshot
    def delete_snapshot(self, original, backend, snapshot_id):
        """DeleteSnapshot with EC2's refusals (another account's snapshot, a locked one, one an AMI uses); a snapshot a
        Recycle Bin rule retains goes into the bin, any other is deleted (and leaves the archive tier)."""
        snapshot = backend.snapshots.get(snapshot_id)
        try:
            if snapshot is not None:
                if snapshot.owner_id != backend.account_id:
                    # The code is the lab's choice: the caller may see the snapshot, it may not delete it.
                    _refuse("UnauthorizedOperation", "You are not authorized to perform this operation.")
                lock = self.active_lock(snapshot_id)
                if lock is not None:
                    # The code is the lab's choice: AWS documents that a locked snapshot cannot be deleted, not how.
                    _refuse("InvalidSnapshot.Locked", "The snapshot %s is locked in %s mode until %s and cannot be "
                            "deleted." % (snapshot_id, lock.state(self.now()), lock.expires_on.strftime(CREATED_AT_FORMAT)))
                images = self.images_using(backend, snapshot_id)
                if images:
                    raise InvalidSnapshotInUse(snapshot_id, images[0])
                rule = self.recycle_bin.retaining_rule({tag["key"]: tag["value"] for tag in snapshot.get_tags()})
                if rule is not None:
                    self.recycle_bin.take(backend, snapshot, rule)
                    self._record(snapshot_id, snapshot, "recycled")
                    return snapshot
            deleted = original(backend, snapshot_id)
        except EC2ClientError as error:
            self._record(snapshot_id, snapshot, error.code)
            raise
        self.tiers.forget(snapshot_id)
        self._record(snapshot_id, snapshot, "deleted")
        return deleted

    def _record(self, snapshot_id, snapshot, outcome):
        tags = {tag["key"]: tag["value"] for tag in snapshot.get_tags()} if snapshot is not None else {}
        with self.lock:
            self._deletions.append({"snapshot_id": snapshot_id, "set_id": tags.get(SET_ID_TAG), "outcome": outcome,
                                    "lab_time": iso(lab_now())})

    def deletions(self):
        """Every DeleteSnapshot the lab answered, in order: snapshot id, its set id tag, outcome, lab time."""
        with self.lock:
            return [dict(entry) for entry in self._deletions]

    # ------------------------------------------------------------------------------------------------ seeding
    def _members(self, backend, set_id):
        members = [s for s in backend.snapshots.values()
                   if any(t["key"] == SET_ID_TAG and t["value"] == set_id for t in s.get_tags())]
        if not members:
            raise ValueError("no snapshot carries the set id %s" % set_id)
        return sorted(members, key=lambda snapshot: snapshot.volume.id)

    def _add_snapshot(self, backend, volume, description, tags, created_at, owner_id=None):
        snapshot = Snapshot(backend, random_snapshot_id(), volume, description, encrypted=volume.encrypted,
                            owner_id=owner_id or backend.account_id)
        snapshot.start_time = start_time_text(created_at)
        backend.snapshots[snapshot.id] = snapshot
        if tags:
            snapshot.add_tags(tags)
        self.blockstore.capture_snapshot(snapshot.id, volume.id)
        return snapshot

    def clone_set(self, set_id, copies):
        """Copies of an existing set, as if its backup had also run at other times: each copy has its own set id and
        created-at tag (and StartTime), ``tags`` changed (a None value removes a tag), an ``owner_id`` (another
        account's set) and ``leave_out`` (volume ids without a snapshot: an incomplete set). Returns the new sets'
        snapshot ids by set id."""
        backend = self.backend()
        with self.lock:
            members = self._members(backend, set_id)
            made = {}
            for copy in copies:
                created_at = _moment(copy["created_at"]).astimezone(datetime.timezone.utc)
                made[copy["set_id"]] = []
                for source in members:
                    if source.volume.id in (copy.get("leave_out") or ()):
                        continue
                    tags = {tag["key"]: tag["value"] for tag in source.get_tags()}
                    tags.update({SET_ID_TAG: copy["set_id"], CREATED_AT_TAG: created_at.strftime(CREATED_AT_FORMAT)})
                    for key, value in (copy.get("tags") or {}).items():
                        if value is None:
                            tags.pop(key, None)
                        else:
                            tags[key] = value
                    snapshot = self._add_snapshot(backend, source.volume, source.description, tags, created_at,
                                                  copy.get("owner_id"))
                    made[copy["set_id"]].append(snapshot.id)
            return made

    # pylint: disable-next=too-many-arguments
    def seed_snapshots(self, volume_id, count=1, tags=None, owner_id=None, description=""):
        """Loose snapshots of a volume: untagged (or with the tags given), this account's or another's."""
        backend = self.backend()
        volume = backend.get_volume(volume_id)
        with self.lock:
            return [self._add_snapshot(backend, volume, description, tags, lab_now(), owner_id).id for dummy in range(count)]

    def backdate(self, set_id, created_at):
        """An existing set as if it had been made at ``created_at``: its created-at tag and StartTime on every member."""
        backend = self.backend()
        moment = _moment(created_at).astimezone(datetime.timezone.utc)
        with self.lock:
            members = self._members(backend, set_id)
            backend.create_tags([s.id for s in members], {CREATED_AT_TAG: moment.strftime(CREATED_AT_FORMAT)})
            for snapshot in members:
                snapshot.start_time = start_time_text(moment)
            return [snapshot.id for snapshot in members]

    # ------------------------------------------------------------------------------------------ control API
    def handle_control(self, method, path, body):
        """``/_lab/retention/...``: (status, result) for the lab's control API."""
        request = json.loads(body) if body else {}
        route = (method, urllib.parse.urlsplit(path).path.rstrip("/"))
        try:
            if route == ("POST", "/_lab/retention/clone"):
                return 200, {"sets": self.clone_set(request["set_id"], request["copies"])}
            if route == ("POST", "/_lab/retention/snapshots"):
                return 200, {"snapshot_ids": self.seed_snapshots(
                    request["volume_id"], int(request.get("count", 1)), request.get("tags"), request.get("owner_id"),
                    request.get("description", ""))}
            if route == ("PUT", "/_lab/retention/created_at"):
                return 200, {"snapshot_ids": self.backdate(request["set_id"], request["created_at"])}
            if route == ("GET", "/_lab/retention/deletions"):
                return 200, {"deletions": self.deletions()}
            if route == ("PUT", "/_lab/retention/tier"):
                archived_on = _moment(request["archived_on"]) if request.get("archived_on") else None
                return 200, self.tiers.set_archived(request["snapshot_id"], archived_on, request.get("storage_tier", "archive"))
            if route == ("PUT", "/_lab/retention/tier_settings"):
                return 200, self.tiers.configure(**request)
            if route == ("PUT", "/_lab/retention/recycle_bin_settings"):
                return 200, self.recycle_bin.configure(request["recover_seconds"])
        except (TypeError, ValueError, KeyError, EC2ClientError) as error:
            return 400, {"error": str(error)}
        return 404, {"error": "no such control endpoint: %s %s" % route}
