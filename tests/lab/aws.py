"""The AWS half of the lab: a real moto server, with EBS behaviour moto leaves out modelled from the EC2 documentation.

moto 5 answers the EC2 API faithfully for most of what the collection uses, but for snapshots it (a) ignores
``ExcludeDataVolumeIds`` and ``CopyTagsFromSource`` in CreateSnapshots, (b) marks every snapshot ``completed`` at once,
(c) has no per-volume snapshot rate or concurrency limits, and (d) does not enforce the 50-tags-per-resource limit at
creation. :class:`EbsBehaviour` adds those, as documented in the EC2 API reference (see docs/lab.md), and ties
snapshots and volumes to the lab's data plane so a snapshot captures volume content at its point in time.
"""

import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.responses import elastic_block_store as ebs_responses
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_VALUE_LENGTH = 256
MAX_EXCLUDED_DATA_VOLUMES = 40


@dataclass
class EbsSettings:
    """Switchable at run time through the lab's control API."""

    pending_seconds: float = 0.0
    per_volume_interval: float = 15.0
    max_pending_per_volume: int = 5


class EbsBehaviour:
    """Installs the documented EBS snapshot behaviour into the moto backend of this process."""

    def __init__(self, blockstore):
        self.blockstore = blockstore
        self.settings = EbsSettings()
        self._lock = threading.RLock()
        self._last_snapshot_at = {}
        self._created_at = {}

    def reset(self):
        with self._lock:
            self.settings = EbsSettings()
            self._last_snapshot_at.clear()
            self._created_at.clear()

    def configure(self, **values):
        with self._lock:
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

    def install(self):
        """Patch moto's EBS backend and snapshot templates (process-wide, idempotent)."""
        behaviour = self
        original_create_snapshot = EBSBackend.create_snapshot
        original_create_volume = EBSBackend.create_volume

        def create_snapshot(backend, volume_id, description, owner_id=None, from_ami=None):
            with behaviour._lock:
                if not from_ami:
                    backend.get_volume(volume_id)
                    behaviour._check_volume_limits(backend, volume_id)
                snapshot = original_create_snapshot(backend, volume_id, description, owner_id=owner_id, from_ami=from_ami)
                behaviour._record(snapshot)
                return snapshot

        def create_snapshots(backend, instance_spec, description, tags):
            with behaviour._lock:
                instance = backend.get_instance(instance_spec["InstanceId"])
                exclude_boot = str(instance_spec.get("ExcludeBootVolume", False)).lower() == "true"
                excluded = _member_list(instance_spec.get("ExcludeDataVolumeIds"))
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
                    behaviour._check_tags(merged)
                    behaviour._check_volume_limits(backend, volume_id)
                    per_volume_tags[volume_id] = merged
                snapshots = []
                for volume_id in volume_ids:
                    snapshot = original_create_snapshot(backend, volume_id, description)
                    snapshot.add_tags(per_volume_tags[volume_id])
                    behaviour._record(snapshot)
                    snapshots.append(snapshot)
                return snapshots

        def create_volume(backend, *args, **kwargs):
            volume = original_create_volume(backend, *args, **kwargs)
            snapshot_id = kwargs.get("snapshot_id")
            if snapshot_id:
                behaviour.blockstore.restore_volume(volume.id, snapshot_id)
            return volume

        if getattr(EBSBackend, "_shadowsnap_lab", False):
            raise RuntimeError("EbsBehaviour is already installed in this process")
        EBSBackend.create_snapshot = create_snapshot
        EBSBackend.create_snapshots = create_snapshots
        EBSBackend.create_volume = create_volume
        EBSBackend._shadowsnap_lab = True
        Snapshot.status = property(behaviour.status_of, lambda snapshot, value: None)
        Snapshot.progress = property(behaviour.progress_of)
        _patch_snapshot_templates()
        _patch_create_snapshots_request()


def _member_list(value):
    """Query-protocol lists arrive as a list, a dict of ``member.N`` or a single string, depending on moto's parser."""
    if not value:
        return []
    if isinstance(value, dict):
        return [item for key, item in sorted(value.items())]
    if isinstance(value, str):
        return [value]
    return list(value)


def _patch_snapshot_templates():
    """moto prints a fixed status and progress; real EC2 reports them as they are."""
    for name in ("DESCRIBE_SNAPSHOTS_RESPONSE", "CREATE_SNAPSHOT_RESPONSE", "CREATE_SNAPSHOTS_RESPONSE"):
        template = getattr(ebs_responses, name)
        for fixed in ("<progress>100%</progress>", "<progress>60%</progress>"):
            template = template.replace(fixed, "<progress>{{ snapshot.progress }}</progress>")
        template = template.replace("<status>pending</status>", "<status>{{ snapshot.status }}</status>")
        if name == "CREATE_SNAPSHOTS_RESPONSE":
            # CreateSnapshots answers SnapshotInfo items, whose status element is <state>, unlike DescribeSnapshots.
            template = template.replace("<status>{{ snapshot.status }}</status>", "<state>{{ snapshot.status }}</state>")
        setattr(ebs_responses, name, template)


def _patch_create_snapshots_request():
    """Hand the whole InstanceSpecification (with ExcludeDataVolumeIds and CopyTagsFromSource) to the backend."""
    responses_class = ebs_responses.ElasticBlockStore

    def create_snapshots(self):
        instance_spec = dict(self._get_param("InstanceSpecification", {}))
        instance_spec["CopyTagsFromSource"] = self._get_param("CopyTagsFromSource", "")
        description = self._get_param("Description", "")
        snapshot_tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snapshots = self.ec2_backend.create_snapshots(instance_spec, description, snapshot_tags)
        template = self.response_template(ebs_responses.CREATE_SNAPSHOTS_RESPONSE)
        return template.render(snapshots=snapshots)

    responses_class.create_snapshots = create_snapshots


class MotoServer:
    """A moto server on a free loopback port, in a thread of this process (so the EBS model shares its memory)."""

    def __init__(self, port):
        self.port = port
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self):
        self._server.start()

    def stop(self):
        self._server.stop()
