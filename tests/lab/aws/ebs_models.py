"""The EBS state the lab adds to moto: snapshot timers, per-volume limits, tag limits, and the data plane's captures.

moto 5 answers the EC2 API faithfully for most of what the collection uses, but for snapshots it (a) ignores
``ExcludeDataVolumeIds`` and ``CopyTagsFromSource`` in CreateSnapshots, (b) marks every snapshot ``completed`` at once,
(c) has no per-volume snapshot rate or concurrency limits, and (d) does not enforce the 50-tags-per-resource limit at
creation. :class:`EbsBehaviour` holds what the lab adds, as documented in the EC2 API reference (see docs/lab.md), and
ties snapshots and volumes to the lab's data plane so a snapshot captures volume content at its point in time. Its
``create_*`` methods are what moto's backend runs instead of its own (lab.aws.ebs_responses installs them).

Each snapshot's point in time is recorded with microseconds (:meth:`EbsBehaviour.points_in_time`), on EC2's clock and
on the lab's (lab.clock), beside moto's StartTime, which is cut to the second. All snapshots of one CreateSnapshots
call capture their volumes at the same instant (crash-consistent across them, as EC2 documents). EC2's Describe calls
are eventually consistent: with ``describe_delay_seconds`` or ``describe_delay_calls`` a new snapshot stays out of
the DescribeSnapshots answers the collection receives (through the fault proxy) for that long or that many calls.
"""

import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError

from lab.clock import SkewedClock, iso, lab_now

MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_VALUE_LENGTH = 256
MAX_EXCLUDED_DATA_VOLUMES = 40


@dataclass
class EbsSettings:
    """Switchable at run time through the lab's control API."""

    pending_seconds: float = 0.0
    per_volume_interval: float = 15.0
    max_pending_per_volume: int = 5
    clock_offset_seconds: float = 0.0
    describe_delay_seconds: float = 0.0
    describe_delay_calls: int = 0


def start_time_text(moment):
    """StartTime as moto writes it: cut to the second."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def own_snapshot(backend, snapshot_id):
    """The caller's snapshot: InvalidSnapshot.NotFound when EC2 does not know it, UnauthorizedOperation for another
    account's (the caller may see it, not change it; the code is the lab's choice)."""
    snapshot = backend.snapshots.get(snapshot_id)
    if snapshot is None:
        raise InvalidSnapshotIdError()
    if snapshot.owner_id != backend.account_id:
        raise EC2ClientError("UnauthorizedOperation", "You are not authorized to perform this operation.")
    return snapshot


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
        self._points = {}

    def reset(self):
        with self.lock:
            self.settings = EbsSettings()
            self._last_snapshot_at.clear()
            self._created_at.clear()
            self._points.clear()

    @property
    def clock(self):
        """EC2's clock: the lab's, ``clock_offset_seconds`` ahead."""
        return SkewedClock(self.settings.clock_offset_seconds)

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

    def _record(self, snapshots, action):
        """The snapshots' point in time: their volumes' content captured at one instant, the instant recorded."""
        with self.blockstore.locked():
            moment = lab_now()
            now = time.monotonic()
            ec2_moment = self.clock.at(moment)
            for snapshot in snapshots:
                self.blockstore.capture_snapshot(snapshot.id, snapshot.volume.id)
                snapshot.start_time = start_time_text(ec2_moment)
                self._created_at[snapshot.id] = now
                self._last_snapshot_at[snapshot.volume.id] = now
                self._points[snapshot.id] = {
                    "snapshot_id": snapshot.id, "volume_id": snapshot.volume.id, "action": action,
                    "point_in_time": iso(ec2_moment), "lab_time": iso(moment), "start_time": snapshot.start_time,
                    "hidden_until": now + self.settings.describe_delay_seconds,
                    "hidden_calls": self.settings.describe_delay_calls, "describe_calls": 0,
                }

    def points_in_time(self, snapshot_ids=None):
        """``{snapshot id: record}``: ``point_in_time`` (EC2's clock) and ``lab_time`` (the lab's) with microseconds,
        moto's ``start_time``, the ``action`` that created it, and how many client Describe calls it was hidden from."""
        with self.lock:
            wanted = self._points if not snapshot_ids else {i: self._points[i] for i in snapshot_ids if i in self._points}
            return {snapshot_id: {key: value for key, value in record.items() if key not in ("hidden_until", "hidden_calls")}
                    for snapshot_id, record in wanted.items()}

    def visible_to_client(self, snapshots, requested_ids):
        """A client's DescribeSnapshots answer, eventually consistent: a snapshot still within its delay (seconds, or
        the client's Describe calls since its creation) is left out; asking for it by id is InvalidSnapshot.NotFound,
        as for a snapshot EC2 does not know yet. Each call counts for every snapshot still hidden."""
        now = time.monotonic()
        with self.lock:
            hidden = set()
            for snapshot_id, record in self._points.items():
                if now < record["hidden_until"] or record["describe_calls"] < record["hidden_calls"]:
                    hidden.add(snapshot_id)
                    record["describe_calls"] += 1
        if any(snapshot_id in hidden for snapshot_id in requested_ids or ()):
            raise InvalidSnapshotIdError()
        return [snapshot for snapshot in snapshots if snapshot.id not in hidden]

    # ------------------------------------------------------------------------------ moto's backend, the lab's way
    def create_snapshot(self, original, backend, volume_id, description, owner_id=None, from_ami=None):
        """CreateSnapshot (and moto's own snapshots of AMIs) with the per-volume limits and the data plane."""
        with self.lock:
            if not from_ami:
                backend.get_volume(volume_id)
                self._check_volume_limits(backend, volume_id)
            snapshot = original(backend, volume_id, description, owner_id=owner_id, from_ami=from_ami)
            self._record([snapshot], "CreateImage" if from_ami else "CreateSnapshot")
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
                snapshots.append(snapshot)
            self._record(snapshots, "CreateSnapshots")
            return snapshots

    def create_volume(self, original, backend, *args, **kwargs):
        """CreateVolume: a volume created from a snapshot starts with the snapshot's content."""
        volume = original(backend, *args, **kwargs)
        snapshot_id = kwargs.get("snapshot_id")
        if snapshot_id:
            self.blockstore.restore_volume(volume.id, snapshot_id)
        return volume
