"""The retention part of the lab's control API as LabClient calls it (lab.control.LabClient inherits it).

Tests set up retention scenarios with these and with EC2's own calls: LockSnapshot / UnlockSnapshot and
RegisterImage with BlockDeviceMappings (an AMI that uses a set's snapshot) go to the lab's EC2 endpoint like any call.
"""


class RetentionLabClient:
    """Needs ``self._call(method, path, payload)`` of lab.control.LabClient."""

    def clone_set(self, set_id, copies):
        """Copies of an existing set at other times: ``copies`` are ``{"set_id", "created_at"}`` (ISO 8601) with
        optional ``tags`` (changed tags; None removes one), ``owner_id`` (another account's copy) and ``leave_out``
        (volume ids left without a snapshot). Returns ``{new set id: [snapshot ids]}``."""
        return self._call("POST", "/retention/clone", {"set_id": set_id, "copies": list(copies)})["sets"]

    def seed_snapshots(self, volume_id, count=1, tags=None, owner_id=None, description=""):
        """Loose snapshots of a volume (untagged unless ``tags``; another account's with ``owner_id``)."""
        request = {"volume_id": volume_id, "count": count, "tags": tags, "owner_id": owner_id, "description": description}
        return self._call("POST", "/retention/snapshots", request)["snapshot_ids"]

    def backdate_set(self, set_id, created_at):
        """An existing set as if made at ``created_at`` (ISO 8601): its created-at tag and StartTime."""
        return self._call("PUT", "/retention/created_at", {"set_id": set_id, "created_at": created_at})["snapshot_ids"]

    def deletions(self):
        """Every DeleteSnapshot the lab answered, in order: ``snapshot_id``, ``set_id`` (its tag), ``outcome``
        (``deleted`` or the error code), ``lab_time``."""
        return self._call("GET", "/retention/deletions")["deletions"]

    def set_snapshot_tier(self, snapshot_id, storage_tier="archive", archived_on=None):
        """A snapshot archived (archival complete, since ``archived_on``, ISO 8601, or now: CreateVolume refuses it),
        or back in the ``standard`` tier. ModifySnapshotTier and RestoreSnapshotTier go to EC2 like any call."""
        return self._call("PUT", "/retention/tier", {"snapshot_id": snapshot_id, "storage_tier": storage_tier,
                                                     "archived_on": archived_on})

    def tier_settings(self, archive_seconds=None, restore_seconds=None):
        """How long an archival and a restore from the archive take in the lab (EC2: hours, and up to 72 hours)."""
        settings = {"archive_seconds": archive_seconds, "restore_seconds": restore_seconds}
        return self._call("PUT", "/retention/tier_settings", {k: v for k, v in settings.items() if v is not None})

    def recycle_bin_settings(self, recover_seconds):
        """How long a snapshot restored from the Recycle Bin stays ``recovering``."""
        return self._call("PUT", "/retention/recycle_bin_settings", {"recover_seconds": recover_seconds})
