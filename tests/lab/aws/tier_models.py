"""The EBS snapshot archive tier, which moto 5.1 lacks: ModifySnapshotTier, RestoreSnapshotTier,
DescribeSnapshotTierStatus and the ``StorageTier`` DescribeSnapshots prints.

From the EC2 API reference and the EBS user guide (docs/lab.md): only a ``completed`` snapshot of the caller's, in the
standard tier and not used by a registered AMI, can be archived; at most 25 snapshots of one volume may be in the
archive; archival goes ``archival-in-progress`` -> ``archival-completed`` (the snapshot is in the ``standard`` tier
until it completes, then ``archive``); an archived snapshot is restored temporarily (1 to 180 days, then archived
again) or permanently, through ``temporary-restore-in-progress`` / ``permanent-restore-in-progress`` to ``...-completed``
(then ``standard``); a temporary restore's period or type can be changed with another RestoreSnapshotTier. EC2 takes
hours for an archival and up to 72 hours for a restore; the lab takes ``archive_seconds`` and ``restore_seconds``
(settings, 0 by default, which apply to operations in progress too: setting 0 finishes them) so that a test can
watch each state. Archived snapshots cannot be used for volumes (the
volume model asks :meth:`SnapshotTiers.storage_tier`). Error codes AWS does not document are the lab's choice.
"""

import datetime
import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError

from .ebs_models import own_snapshot

MAX_ARCHIVED_PER_VOLUME = 25
MAX_TEMPORARY_RESTORE_DAYS = 180


@dataclass
class TierSettings:
    """Switchable at run time (``PUT /_lab/retention/tier_settings``)."""

    archive_seconds: float = 0.0
    restore_seconds: float = 0.0


@dataclass
class TierRecord:
    """One snapshot's tiering history, as DescribeSnapshotTierStatus reports it; the clock settles it on read."""

    operation: str
    started_on: datetime.datetime
    started_at: float
    tier: str = "standard"
    archived_on: datetime.datetime = None
    restore_days: int = None
    restore_expires_on: datetime.datetime = None

    def settle(self, now, monotonic, settings):
        """Finish the operation whose time has come, and re-archive a temporary restore that has expired."""
        takes = settings.archive_seconds if self.operation.startswith("archival") else settings.restore_seconds
        if self.operation.endswith("-in-progress") and monotonic - self.started_at >= takes:
            self.operation = self.operation.replace("-in-progress", "-completed")
            if self.operation == "archival-completed":
                self.tier, self.archived_on = "archive", self.archived_on or now
            else:
                self.tier = "standard"
                if self.operation == "temporary-restore-completed":
                    self.restore_expires_on = now + datetime.timedelta(days=self.restore_days)
        if self.operation == "temporary-restore-completed" and self.restore_expires_on and now >= self.restore_expires_on:
            self.operation, self.tier, self.restore_expires_on = "archival-completed", "archive", None


def _refuse(code, message):
    raise EC2ClientError(code, message)


class SnapshotTiers:
    """The archive tier of every snapshot of the lab's moto backend (thread-safe)."""

    def __init__(self, clock, images_using):
        self.clock = clock
        self.images_using = images_using
        self.settings = TierSettings()
        self.lock = threading.RLock()
        self._records = {}

    def reset(self):
        with self.lock:
            self.settings = TierSettings()
            self._records.clear()

    def configure(self, **values):
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown tier setting %r" % name)
                setattr(self.settings, name, float(value))
            return vars(self.settings).copy()

    def _record(self, snapshot_id):
        record = self._records.get(snapshot_id)
        if record is not None:
            record.settle(self.clock(), time.monotonic(), self.settings)
        return record

    def storage_tier(self, snapshot_id):
        """``standard`` or ``archive``, as DescribeSnapshots prints it."""
        with self.lock:
            record = self._record(snapshot_id)
            return record.tier if record else "standard"

    def archived_on(self, snapshot_id):
        with self.lock:
            record = self._record(snapshot_id)
            return record.archived_on if record and record.tier == "archive" else None

    def forget(self, snapshot_id):
        """A deleted snapshot leaves the archive."""
        with self.lock:
            self._records.pop(snapshot_id, None)

    def modify_snapshot_tier(self, backend, snapshot_id, storage_tier):
        """ModifySnapshotTier: start archiving a snapshot."""
        snapshot = own_snapshot(backend, snapshot_id)
        if storage_tier != "archive":
            _refuse("InvalidParameterValue", "StorageTier must be archive, not %s" % storage_tier)
        now = self.clock()
        images = self.images_using(backend, snapshot_id)
        with self.lock:
            record = self._record(snapshot_id)
            if snapshot.status != "completed":
                _refuse("IncorrectState", "Snapshot %s is in state %s; only completed snapshots can be archived."
                        % (snapshot_id, snapshot.status))
            if record is not None and (record.tier == "archive" or record.operation.endswith("-in-progress")):
                _refuse("IncorrectState", "Snapshot %s is %s." % (snapshot_id, record.operation))
            if images:
                _refuse("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s and cannot be archived."
                        % (snapshot_id, images[0]))
            archived = [other for other in backend.snapshots.values() if other.volume.id == snapshot.volume.id
                        and other.id in self._records and self._records[other.id].tier == "archive"]
            if len(archived) >= MAX_ARCHIVED_PER_VOLUME:
                _refuse("ResourceLimitExceeded", "Volume %s already has %d archived snapshots, the most allowed."
                        % (snapshot.volume.id, MAX_ARCHIVED_PER_VOLUME))
            self._records[snapshot_id] = TierRecord(operation="archival-in-progress", started_on=now,
                                                    started_at=time.monotonic())
            self._record(snapshot_id)
        return {"SnapshotId": snapshot_id, "TieringStartTime": now}

    def restore_snapshot_tier(self, backend, snapshot_id, temporary_days=None, permanent=False):
        """RestoreSnapshotTier: bring an archived snapshot back, or change a temporary restore's period or type."""
        own_snapshot(backend, snapshot_id)
        if permanent == (temporary_days is not None):
            _refuse("InvalidParameterCombination", "Specify either TemporaryRestoreDays or PermanentRestore.")
        if temporary_days is not None and not 1 <= temporary_days <= MAX_TEMPORARY_RESTORE_DAYS:
            _refuse("InvalidParameterValue", "TemporaryRestoreDays must be between 1 and %d."
                    % MAX_TEMPORARY_RESTORE_DAYS)
        now = self.clock()
        with self.lock:
            record = self._record(snapshot_id)
            if record is not None and record.operation == "temporary-restore-completed":
                if permanent:
                    record.operation, record.restore_expires_on, record.archived_on = "permanent-restore-completed", None, None
                else:
                    record.restore_days = temporary_days
                    record.restore_expires_on = now + datetime.timedelta(days=temporary_days)
            elif record is None or record.tier != "archive" or record.operation.endswith("-in-progress"):
                _refuse("IncorrectState", "Snapshot %s is not archived%s." % (
                    snapshot_id, " (%s)" % record.operation if record else ""))
            else:
                record.operation = "permanent-restore-in-progress" if permanent else "temporary-restore-in-progress"
                record.started_on, record.restore_days = now, temporary_days
                record.started_at = time.monotonic()
                self._record(snapshot_id)
        answer = {"SnapshotId": snapshot_id, "RestoreStartTime": now, "IsPermanentRestore": bool(permanent)}
        if temporary_days is not None:
            answer["RestoreDuration"] = temporary_days
        return answer

    def tier_statuses(self, backend, snapshot_ids=None, volume_ids=None, operations=None):
        """DescribeSnapshotTierStatus' items: the caller's snapshots with a tiering history, in snapshot id order."""
        items = []
        with self.lock:
            for snapshot_id in sorted(self._records):
                snapshot = backend.snapshots.get(snapshot_id)
                if snapshot is None or snapshot.owner_id != backend.account_id:
                    continue
                record = self._record(snapshot_id)
                if (snapshot_ids and snapshot_id not in snapshot_ids) or (volume_ids and snapshot.volume.id not in volume_ids):
                    continue
                if operations and record.operation not in operations:
                    continue
                items.append(self._status(snapshot, record))
        return items

    @staticmethod
    def _status(snapshot, record):
        item = {"SnapshotId": snapshot.id, "VolumeId": snapshot.volume.id, "Status": snapshot.status,
                "OwnerId": snapshot.owner_id, "StorageTier": record.tier, "LastTieringStartTime": record.started_on,
                "LastTieringOperationStatus": record.operation,
                "LastTieringProgress": 100 if record.operation.endswith("-completed") else 0,
                "Tags": [{"Key": tag["key"], "Value": tag["value"]} for tag in snapshot.get_tags()]}
        if record.archived_on:
            item["ArchivalCompleteTime"] = record.archived_on
        if record.restore_expires_on:
            item["RestoreExpiryTime"] = record.restore_expires_on
        return item

    def set_archived(self, snapshot_id, archived_on=None, tier="archive"):
        """Seeding: a snapshot archived since ``archived_on`` (now by default), or back in the standard tier."""
        if tier not in ("standard", "archive"):
            raise ValueError("storage tier must be standard or archive, not %r" % tier)
        with self.lock:
            if tier == "standard":
                self._records.pop(snapshot_id, None)
            else:
                moment = archived_on or self.clock()
                self._records[snapshot_id] = TierRecord(operation="archival-completed", started_on=moment, started_at=0,
                                                        tier="archive", archived_on=moment)
        return {"snapshot_id": snapshot_id, "storage_tier": tier}
