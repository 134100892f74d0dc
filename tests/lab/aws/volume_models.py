"""The EBS volume behaviour the lab adds to moto: CreateVolume, AttachVolume and DetachVolume as EC2 answers them.

moto 5 creates a volume from a snapshot without its KMS key, accepts sizes below the snapshot's and unknown zones, and
attaches and detaches at once with no checks (it moves attached volumes, overwrites devices, crosses zones, detaches
the root of a running instance). :class:`EbsVolumes` holds what the lab adds, from the EC2 API reference and EC2's
answers as users report them (docs/lab.md):

- CreateVolume: a repeat with the same ``ClientToken`` answers the volume the first request created
  (``IdempotentParameterMismatch`` when the parameters differ); the zone must exist in the Region (``InvalidZone.NotFound``); the size must hold the snapshot
  (``InvalidParameterValue``); the snapshot must be ``completed`` and in the standard tier (``IncorrectState``; the
  tier is lab.aws.tier_models'); an
  encrypted snapshot gives a volume encrypted with its key unless another is given; ``storage_limit_gib`` is the
  Region's storage quota (``VolumeLimitExceeded``); the volume stays ``creating`` for ``creating_seconds``;
- AttachVolume: the volume must be ``available`` (``VolumeInUse`` when attached, ``IncorrectState`` while
  creating), in the instance's zone (``InvalidVolume.ZoneMismatch``), at a device the instance does not use
  (``InvalidParameterValue`` "Attachment point ... is already in use"), to an instance that is ``running`` or
  ``stopped`` and, at its free root device, ``stopped`` (``IncorrectInstanceState``); the attachment is ``attaching`` for
  ``attaching_seconds``, then ``attached``;
- DetachVolume: refused for the root volume of an instance that is not stopped (``IncorrectState``, the answer users
  report for a running instance) and for an attachment that is
  still changing; ``detaching`` for ``detaching_seconds``, then the volume is ``available`` and off the instance.

The content of a volume created from a snapshot is the snapshot's (lab.dataplane, done by lab.aws.ebs_models).
What is attached to each instance is readable at any time (:meth:`EbsVolumes.attachments`) and every completed
attach and detach is an event (:meth:`EbsVolumes.events`, :meth:`EbsVolumes.subscribe`): the Windows hosts follow
their disks through them. Requests moto makes for itself (RunInstances' block devices, TerminateInstances) are not
checked or delayed: only the API calls are (lab.aws.volume_responses routes them here).
"""

import base64
import threading
import time
from dataclasses import dataclass
from typing import Optional

from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError

from lab.clock import iso, lab_now


@dataclass
class VolumeSettings:
    """Switchable at run time through the lab's control API (``PUT /_lab/volumes/settings``)."""

    creating_seconds: float = 0.0
    attaching_seconds: float = 0.0
    detaching_seconds: float = 0.0
    storage_limit_gib: Optional[int] = None


def normalise_device(name):
    """``/dev/xvdf`` and ``xvdf`` are one attachment point of an instance."""
    name = (name or "").strip()
    return name[len("/dev/"):] if name.startswith("/dev/") else name


class EbsVolumes:
    """The documented EBS volume behaviour, for every moto EC2 backend of this process (thread-safe)."""

    def __init__(self, blockstore):
        self.blockstore = blockstore
        self.settings = VolumeSettings()
        self.lock = threading.RLock()
        self._creating_until = {}
        self._client_tokens = {}
        self._changes = {}
        self._events = []
        self._listeners = []

    def reset(self):
        with self.lock:
            self.settings = VolumeSettings()
            self._creating_until.clear()
            self._client_tokens.clear()
            self._changes.clear()
            self._events.clear()

    def configure(self, **values):
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown volume setting %r" % name)
                if name == "storage_limit_gib":
                    self.settings.storage_limit_gib = None if value is None else int(value)
                else:
                    setattr(self.settings, name, float(value))
            return self.describe()

    def describe(self):
        return vars(self.settings).copy()

    # ------------------------------------------------------------------------------------------ observers
    def subscribe(self, listener):
        """``listener(event)`` after every attach or detach completes (an event as :meth:`events` lists it)."""
        with self.lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener):
        with self.lock:
            self._listeners.remove(listener)

    def events(self, instance_id=None):
        """Completed attaches and detaches in order: ``seq``, ``event`` (attached, detached), ``instance_id``,
        ``volume_id``, ``device``, ``lab_time``."""
        self.settle()
        with self.lock:
            return [dict(event) for event in self._events if instance_id in (None, event["instance_id"])]

    def attachments(self, backends, instance_id=None):
        """``{instance id: [{device, volume_id, state, root}]}`` of the instances of ``backends`` (or one of them):
        what each instance has attached now, changes in progress included (``attaching``, ``detaching``)."""
        self.settle()
        found = {}
        with self.lock:
            for backend in backends:
                for instance in backend.all_instances():
                    if instance_id not in (None, instance.id):
                        continue
                    found[instance.id] = [
                        {"device": device, "volume_id": mapping.volume_id, "root": device == instance.root_device_name,
                         "state": self._attachment_state(mapping.volume_id)}
                        for device, mapping in sorted(instance.block_device_mapping.items())
                    ]
        return found

    def content(self, volume_id):
        """A volume's image in the data plane: its files (base64) and the ids of the shadow copies stored in it."""
        with self.blockstore.locked():
            image = self.blockstore.volume(volume_id)
            return {"volume_id": volume_id, "shadows": sorted(image.shadows),
                    "files": {path: base64.b64encode(data).decode("ascii") for path, data in sorted(image.files.items())}}

    def _attachment_state(self, volume_id):
        change = self._changes.get(volume_id)
        return change["state"] if change else "attached"

    def _record(self, event, instance_id, volume_id, device):
        entry = {"seq": len(self._events) + 1, "event": event, "instance_id": instance_id, "volume_id": volume_id,
                 "device": device, "lab_time": iso(lab_now())}
        self._events.append(entry)
        return entry

    def _notify(self, entries):
        for entry in entries:
            for listener in list(self._listeners):
                listener(dict(entry))

    # ------------------------------------------------------------------------------------------ states
    def volume_status(self, volume):
        """``creating`` until the configured time has passed since CreateVolume, then moto's own status."""
        self.settle()
        until = self._creating_until.get(volume.id)
        if until is not None and time.monotonic() < until:
            return "creating"
        return "in-use" if volume.attachment else "available"

    def _schedule(self, seconds):
        if seconds > 0:
            timer = threading.Timer(seconds + 0.01, self.settle)
            timer.daemon = True
            timer.start()

    def settle(self):
        """Finish every attach and detach whose time has come (also run by timers, so listeners hear of it)."""
        completed = []
        with self.lock:
            now = time.monotonic()
            for volume_id, change in list(self._changes.items()):
                if now < change["until"]:
                    continue
                del self._changes[volume_id]
                completed.append(self._complete(volume_id, change))
        self._notify(completed)

    def _complete(self, volume_id, change):
        backend, instance_id, device = change["backend"], change["instance_id"], change["device"]
        if change["state"] == "attaching":
            volume = backend.volumes.get(volume_id)
            if volume is not None and volume.attachment is not None:
                volume.attachment.status = "attached"
            instance = backend.get_instance(instance_id)
            if device in instance.block_device_mapping:
                instance.block_device_mapping[device].status = "in-use"
            return self._record("attached", instance_id, volume_id, device)
        change["detach"](backend, volume_id, instance_id, device)
        return self._record("detached", instance_id, volume_id, device)

    # ------------------------------------------------------------------------------------------ the API calls
    def create_volume(self, create, backend, size, zone_name, snapshot_id, encrypted, kms_key_id, client_token=None,
                      tags=None, **options):
        """CreateVolume's checks, then moto's ``create`` with the snapshot's key and ``tags``; the volume starts
        ``creating``."""
        with self.lock:
            request = (size, zone_name, snapshot_id, encrypted, kms_key_id, sorted((tags or {}).items()),
                       sorted(options.items()))
            if client_token in self._client_tokens:
                volume_id, first_request = self._client_tokens[client_token]
                if first_request != request:
                    raise EC2ClientError("IdempotentParameterMismatch", "The client token %s was used with other "
                                         "parameters in an earlier request" % client_token)
                if volume_id in backend.volumes:
                    return backend.volumes[volume_id]
            if not zone_name:
                raise EC2ClientError("MissingParameter", "The request must contain the parameter AvailabilityZone")
            if backend.get_zone_by_name(zone_name) is None:
                raise EC2ClientError("InvalidZone.NotFound", "The zone '%s' does not exist." % zone_name)
            size = int(size) if size not in (None, "") else None
            if snapshot_id:
                snapshot = self._usable_snapshot(backend, snapshot_id)
                if size is not None and size < snapshot.volume.size:
                    raise EC2ClientError(
                        "InvalidParameterValue",
                        "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB"
                        % (size, snapshot_id, snapshot.volume.size))
                if snapshot.encrypted:
                    encrypted = True
                    kms_key_id = kms_key_id or snapshot.kms_key_id
                self._check_storage_limit(backend, size if size is not None else snapshot.volume.size, options)
            elif size is not None:
                self._check_storage_limit(backend, size, options)
            volume = create(backend, size=size, zone_name=zone_name, snapshot_id=snapshot_id, encrypted=encrypted,
                            kms_key_id=kms_key_id, **options)
            volume.add_tags(tags or {})
            if self.settings.creating_seconds > 0:
                self._creating_until[volume.id] = time.monotonic() + self.settings.creating_seconds
            if client_token:
                self._client_tokens[client_token] = (volume.id, request)
            return volume

    def _usable_snapshot(self, backend, snapshot_id):
        snapshot = backend.snapshots.get(snapshot_id)
        if snapshot is None:
            raise InvalidSnapshotIdError()
        if snapshot.status != "completed":
            raise EC2ClientError("IncorrectState", "Snapshot is in invalid state - %s" % snapshot.status)
        if snapshot.storage_tier == "archive":
            raise EC2ClientError(
                "IncorrectState",
                "Snapshot %s is archived; restore it to the standard tier (RestoreSnapshotTier) before you use it"
                % snapshot_id)
        return snapshot

    def _check_storage_limit(self, backend, size, options):
        limit = self.settings.storage_limit_gib
        if limit is None:
            return
        used = sum(volume.size for volume in backend.volumes.values())
        if used + size > limit:
            raise EC2ClientError(
                "VolumeLimitExceeded",
                "You have exceeded your maximum %s storage limit of %d GiB in this region."
                % (options.get("volume_type") or "gp2", limit))

    def attach_volume(self, attach, backend, volume_id, instance_id, device):
        """AttachVolume's checks, then moto's ``attach``; the attachment is ``attaching`` for a while."""
        with self.lock:
            volume = backend.get_volume(volume_id)
            instance = backend.get_instance(instance_id)
            if volume.attachment is not None:
                raise EC2ClientError("VolumeInUse", "%s is already attached to an instance" % volume_id)
            if self.volume_status(volume) != "available":
                raise EC2ClientError("IncorrectState", "%s is not 'available'." % volume_id)
            if instance.state not in ("running", "stopped"):
                raise EC2ClientError("IncorrectInstanceState",
                                     "Instance '%s' is not 'running' or 'stopped'." % instance_id)
            if volume.zone is None or volume.zone.name != instance.placement.zone:
                raise EC2ClientError("InvalidVolume.ZoneMismatch",
                                     "The volume '%s' is not in the same availability zone as instance '%s'"
                                     % (volume_id, instance_id))
            used = {normalise_device(name) for name in instance.block_device_mapping}
            if not device or normalise_device(device) in used:
                raise EC2ClientError("InvalidParameterValue", "Invalid value '%s' for unixDevice. Attachment point %s "
                                     "is already in use" % (device, device))
            if normalise_device(device) == normalise_device(instance.root_device_name) and instance.state != "stopped":
                raise EC2ClientError("IncorrectInstanceState", "Instance '%s' is not 'stopped'." % instance_id)
            attachment = attach(backend, volume_id, instance_id, device)
            if self.settings.attaching_seconds > 0:
                attachment.status = "attaching"
                instance.block_device_mapping[device].status = "attaching"
                self._changes[volume_id] = {"state": "attaching", "backend": backend, "instance_id": instance_id,
                                            "device": device, "until": time.monotonic() + self.settings.attaching_seconds}
                self._schedule(self.settings.attaching_seconds)
                return attachment
            entry = self._record("attached", instance_id, volume_id, device)
        self._notify([entry])
        return attachment

    def detach_volume(self, detach, backend, volume_id, instance_id, device):
        """DetachVolume's checks; the volume stays attached, ``detaching``, for a while, then moto's ``detach``."""
        with self.lock:
            volume = backend.get_volume(volume_id)
            attachment = volume.attachment
            if attachment is None:
                raise EC2ClientError("IncorrectState", "Volume '%s' is in the 'available' state." % volume_id)
            instance = attachment.instance
            if instance_id and instance_id != instance.id:
                raise EC2ClientError("InvalidAttachment.NotFound",
                                     "The volume %s is not attached to instance %s" % (volume_id, instance_id))
            if device and normalise_device(device) != normalise_device(attachment.device):
                raise EC2ClientError("InvalidAttachment.NotFound", "The volume %s is not attached to instance %s as "
                                     "device %s" % (volume_id, instance.id, device))
            if volume_id in self._changes:
                raise EC2ClientError("IncorrectState", "Volume '%s' is in the '%s' state."
                                     % (volume_id, self._changes[volume_id]["state"]))
            if attachment.device == instance.root_device_name and instance.state != "stopped":
                raise EC2ClientError("IncorrectState", "Unable to detach root volume '%s' from instance '%s'"
                                     % (volume_id, instance.id))
            if self.settings.detaching_seconds > 0:
                attachment.status = "detaching"
                instance.block_device_mapping[attachment.device].status = "detaching"
                self._changes[volume_id] = {"state": "detaching", "backend": backend, "instance_id": instance.id,
                                            "device": attachment.device, "detach": detach,
                                            "until": time.monotonic() + self.settings.detaching_seconds}
                self._schedule(self.settings.detaching_seconds)
                return attachment
            detached = detach(backend, volume_id, instance.id, attachment.device)
            entry = self._record("detached", instance.id, volume_id, detached.device)
        self._notify([entry])
        return detached
