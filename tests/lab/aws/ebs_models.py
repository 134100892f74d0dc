"""The EBS state the lab adds to moto: snapshot timers, per-volume limits, tag limits, and the data plane's captures.

moto 5 answers the EC2 API faithfully for most of what the collection uses, but for snapshots it (a) ignores
``ExcludeDataVolumeIds`` and ``CopyTagsFromSource`` in CreateSnapshots, (b) marks every snapshot ``completed`` at once,
(c) has no per-volume snapshot rate or concurrency limits, and (d) does not enforce the 50-tags-per-resource limit at
creation. :class:`EbsBehaviour` holds what the lab adds, as documented in the EC2 API reference (see docs/lab.md), and
ties snapshots and volumes to the lab's data plane so a snapshot captures volume content at its point in time. Its
``create_*`` methods are what moto's backend runs instead of its own (lab.aws.ebs_responses installs them).
"""

import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError

MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_VALUE_LENGTH = 256
MAX_EXCLUDED_DATA_VOLUMES = 40


@dataclass
class EbsSettings:
    """Switchable at run time through the lab's control API."""

    pending_seconds: float = 0.0
    per_volume_interval: float = 15.0
    max_pending_per_volume: int = 5


def member_list(value):
    """Query-protocol lists arrive as a list, a dict of ``member.N`` or a single string, depending on moto's parser."""
    if not value:
        return []
    if isinstance(value, dict):
        return [item for key, item in sorted(value.items())]
    if isinstance(value, str):
        return [value]
    return list(value)


class EbsBehaviour:
    """The documented EBS snapshot behaviour, for the moto backend of this process."""

    def __init__(self, blockstore):
        self.blockstore = blockstore
        self.settings = EbsSettings()
        self.lock = threading.RLock()
        self._last_snapshot_at = {}
        self._created_at = {}

    def reset(self):
        with self.lock:
            self.settings = EbsSettings()
            self._last_snapshot_at.clear()
            self._created_at.clear()

    def configure(self, **values):
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown EBS setting %r" % name)
                setattr(self.settings, name, type(getattr(self.settings, name))(value))

    def status_of(self, snapshot):
        """``pending`` until the configured time has passed since creation, then ``completed``."""
        created = self._created_at.get(snapshot.id)
        if created is None or time.monotonic() - created >= self.settings.pending_seconds:
            return "completed"
        return "pending"

    def progress_of(self, snapshot):
        created = self._created_at.get(snapshot.id)
        if created is None or self.settings.pending_seconds <= 0:
            return "100%"
        done = min(1.0, (time.monotonic() - created) / self.settings.pending_seconds)
        return "%d%%" % int(done * 100)

    def _check_volume_limits(self, backend, volume_id):
        now = time.monotonic()
        last = self._last_snapshot_at.get(volume_id)
        if last is not None and now - last < self.settings.per_volume_interval:
            raise EC2ClientError(
                "SnapshotCreationPerVolumeRateExceeded",
                "The maximum per volume CreateSnapshot request rate has been exceeded. "
                "Use an increasing or variable sleep interval between requests.",
            )
        pending = [
            s for s in backend.snapshots.values() if s.volume.id == volume_id and self.status_of(s) == "pending"
        ]
        if len(pending) >= self.settings.max_pending_per_volume:
            raise EC2ClientError(
                "ConcurrentSnapshotLimitExceeded",
                "Maximum allowed in-progress snapshots for a single volume exceeded.",
            )

    @staticmethod
    def _check_tags(tags):
        if len(tags) > MAX_TAGS_PER_RESOURCE:
            raise EC2ClientError("TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
        for key, value in tags.items():
            if len(value) > MAX_TAG_VALUE_LENGTH:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    "Tag value exceeds the maximum length of %d characters for key %s" % (MAX_TAG_VALUE_LENGTH, key),
                )

    def _record(self, snapshot):
        now = time.monotonic()
        self._created_at[snapshot.id] = now
        self._last_snapshot_at[snapshot.volume.id] = now
        self.blockstore.capture_snapshot(snapshot.id, snapshot.volume.id)

    # ------------------------------------------------------------------------------ moto's backend, the lab's way
    def create_snapshot(self, original, backend, volume_id, description, owner_id=None, from_ami=None):
        """CreateSnapshot (and moto's own snapshots of AMIs) with the per-volume limits and the data plane."""
        with self.lock:
            if not from_ami:
                backend.get_volume(volume_id)
                self._check_volume_limits(backend, volume_id)
            snapshot = original(backend, volume_id, description, owner_id=owner_id, from_ami=from_ami)
            self._record(snapshot)
            return snapshot

    def create_snapshots(self, original_create_snapshot, backend, instance_spec, description, tags):
        """CreateSnapshots as the EC2 API reference describes it (InstanceSpecification, CopyTagsFromSource)."""
        with self.lock:
            instance = backend.get_instance(instance_spec["InstanceId"])
            exclude_boot = str(instance_spec.get("ExcludeBootVolume", False)).lower() == "true"
            excluded = member_list(instance_spec.get("ExcludeDataVolumeIds"))
            if len(excluded) > MAX_EXCLUDED_DATA_VOLUMES:
                raise EC2ClientError("InvalidParameterValue", "ExcludeDataVolumeIds accepts at most 40 volume ids")
            mappings = instance.block_device_mapping
            attached = {m.volume_id for m in mappings.values()}
            boot = [m.volume_id for name, m in mappings.items() if name == instance.root_device_name]
            for volume_id in excluded:
                if volume_id not in attached:
                    raise EC2ClientError(
                        "InvalidVolume.NotFound", "The volume '%s' is not attached to %s" % (volume_id, instance.id)
                    )
                if volume_id in boot:
                    raise EC2ClientError(
                        "InvalidParameterValue", "The root volume %s cannot be in ExcludeDataVolumeIds" % volume_id
                    )
            volume_ids = [
                m.volume_id
                for name, m in mappings.items()
                if not (exclude_boot and name == instance.root_device_name) and m.volume_id not in excluded
            ]
            copy_from_volume = str(instance_spec.get("CopyTagsFromSource", "")).lower() == "volume"
            per_volume_tags = {}
            for volume_id in volume_ids:
                merged = {t["key"]: t["value"] for t in backend.get_volume(volume_id).get_tags()} if copy_from_volume else {}
                merged.update(tags)
                self._check_tags(merged)
                self._check_volume_limits(backend, volume_id)
                per_volume_tags[volume_id] = merged
            snapshots = []
            for volume_id in volume_ids:
                snapshot = original_create_snapshot(backend, volume_id, description)
                snapshot.add_tags(per_volume_tags[volume_id])
                self._record(snapshot)
                snapshots.append(snapshot)
            return snapshots

    def create_volume(self, original, backend, *args, **kwargs):
        """CreateVolume: a volume created from a snapshot starts with the snapshot's content."""
        volume = original(backend, *args, **kwargs)
        snapshot_id = kwargs.get("snapshot_id")
        if snapshot_id:
            self.blockstore.restore_volume(volume.id, snapshot_id)
        return volume
