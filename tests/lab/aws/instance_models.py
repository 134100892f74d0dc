"""The EC2 instance behaviour the lab adds to moto: RunInstances' block devices and client token, StopInstances and
StartInstances with their states, as EC2 answers them.

moto 5 reads a block device's ``Encrypted`` from its ``VolumeSize`` (any size means encrypted), drops ``Iops`` and
``Throughput`` and the snapshot's KMS key, runs a second RunInstances with the same ``ClientToken`` again, and stops and
starts at once, in any state. :class:`InstanceStates` holds what the lab adds, from the EC2 API reference (docs/lab.md):

- RunInstances: a block device is encrypted when the request or its snapshot says so, with the request's key, else the
  snapshot's, else the account's default; ``Iops`` and ``Throughput`` are the volume's; a repeat with the same
  ``ClientToken`` answers the first request's instances (``IdempotentParameterMismatch`` when the image, type, subnet
  or count differ); an instance launched without a security group is in its VPC's default group; the instances are
  ``pending`` for ``pending_seconds``, then ``running``;
- StopInstances: a ``running`` instance is ``stopping`` for ``stopping_seconds``, then ``stopped``; a stopped one stays
  stopped; ``pending``, ``shutting-down`` and ``terminated`` instances answer ``IncorrectInstanceState``;
- StartInstances: a ``stopped`` instance is ``pending`` for ``pending_seconds``, then ``running``; a running or pending
  one is left as it is; ``stopping``, ``shutting-down`` and ``terminated`` answer ``IncorrectInstanceState``.

Attaching at and detaching from the root device while the instance is not stopped is refused by lab.aws.volume_models.

Every instance that reaches ``running``, ``stopped`` or ``terminated`` is an event (:meth:`InstanceStates.subscribe`):
the Windows half boots a simulated Windows Server for an instance that starts from a restored Windows root volume.
"""

import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError

STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
STOP_REFUSED = ("pending", "shutting-down", "terminated")
START_REFUSED = ("stopping", "shutting-down", "terminated")


@dataclass
class InstanceSettings:
    """Switchable at run time through the lab's control API (``PUT /_lab/instances/settings``)."""

    pending_seconds: float = 0.0
    stopping_seconds: float = 0.0


class InstanceStates:
    """The documented instance behaviour, for every moto EC2 backend of this process (thread-safe)."""

    def __init__(self):
        self.settings = InstanceSettings()
        self.lock = threading.RLock()
        self._changes = {}
        self._client_tokens = {}
        self._launching = threading.local()
        self._listeners = []

    def subscribe(self, listener):
        """``listener(event)`` after an instance reached ``running``, ``stopped`` or ``terminated``: ``event``,
        ``instance_id``, ``instance_type``, ``availability_zone``, ``private_ip``, ``root_device_name`` and
        ``volumes`` (``{device: volume id}`` attached now)."""
        with self.lock:
            self._listeners.append(listener)

    def notify(self, instance):
        """Tell the listeners the state ``instance`` is in now (a transition finished)."""
        if instance.state not in ("running", "stopped", "terminated"):
            return
        event = {"event": instance.state, "instance_id": instance.id, "instance_type": instance.instance_type,
                 "availability_zone": instance.placement.zone, "private_ip": instance.private_ip,
                 "root_device_name": instance.root_device_name,
                 "volumes": {device: mapping.volume_id for device, mapping in instance.block_device_mapping.items()}}
        for listener in list(self._listeners):
            listener(event)

    def reset(self):
        with self.lock:
            self.settings = InstanceSettings()
            self._changes.clear()
            self._client_tokens.clear()

    def configure(self, **values):
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown instance setting %r" % name)
                setattr(self.settings, name, float(value))
            return vars(self.settings).copy()

    # ------------------------------------------------------------------------------------------ states
    def _enter(self, instance, state, finish, seconds):
        """``instance`` shows ``state`` for ``seconds``, then ``finish(instance)`` (moto's own transition) runs."""
        if seconds <= 0:
            finish(instance)
            self.notify(instance)
            return
        instance._state.name = state  # pylint: disable=protected-access
        instance._state.code = STATE_CODES[state]  # pylint: disable=protected-access
        self._changes[instance.id] = {"instance": instance, "finish": finish, "until": time.monotonic() + seconds}
        timer = threading.Timer(seconds + 0.01, self.settle)
        timer.daemon = True
        timer.start()

    def settle(self):
        """Finish every transition whose time has come (also run by timers)."""
        with self.lock:
            now = time.monotonic()
            for instance_id, change in list(self._changes.items()):
                if now >= change["until"]:
                    del self._changes[instance_id]
                    change["finish"](change["instance"])
                    self.notify(change["instance"])

    @staticmethod
    def _state_of(instance):
        return {"Code": STATE_CODES.get(instance.state, 0), "Name": instance.state}

    def _change(self, instances, refused, refusal, settled, transition, finish, seconds):
        """The answer entries of a stop or a start: IncorrectInstanceState (nothing changed) when an instance is in a
        ``refused`` state; an instance in state ``settled`` goes through ``transition`` to ``finish``; the others
        are left as they are."""
        with self.lock:
            self.settle()
            for instance in instances:
                if instance.state in refused:
                    raise EC2ClientError("IncorrectInstanceState", refusal % instance.id)
            answered = []
            for instance in instances:
                previous = self._state_of(instance)
                if instance.state == settled:
                    self._enter(instance, transition, finish, seconds)
                answered.append({"InstanceId": instance.id, "PreviousState": previous,
                                 "CurrentState": self._state_of(instance)})
            return answered

    def stop(self, instances):
        """StoppingInstances entries."""
        return self._change(instances, STOP_REFUSED, "This instance '%s' is not in a state from which it can be stopped.",
                            "running", "stopping", lambda stopping: stopping.stop(), self.settings.stopping_seconds)

    def start(self, instances):
        """StartingInstances entries."""
        return self._change(instances, START_REFUSED, "The instance '%s' is not in a state from which it can be started.",
                            "stopped", "pending", lambda starting: starting.start(), self.settings.pending_seconds)

    # ------------------------------------------------------------------------------------------ RunInstances
    def run(self, run, backend, client_token, parameters, block_devices):
        """RunInstances: the reservation an earlier request with ``client_token`` made, or ``run()``'s new one, whose
        block devices :meth:`block_device` creates from ``block_devices`` (the request's mappings), its instances
        ``pending`` for a while. ``parameters``: what a repeated token must carry unchanged (image, type, subnet,
        count)."""
        with self.lock:
            if client_token and client_token in self._client_tokens:
                reservation_id, first = self._client_tokens[client_token]
                if first != parameters:
                    raise EC2ClientError("IdempotentParameterMismatch", "The client token %s was used with other "
                                         "parameters in an earlier request" % client_token)
                if reservation_id in backend.reservations:
                    return backend.reservations[reservation_id]
            self._launching.mappings = dict((mapping.get("DeviceName"), mapping.get("Ebs") or {})
                                            for mapping in block_devices)
            try:
                reservation = run()
            finally:
                self._launching.mappings = {}
            for instance in reservation.instances:
                if self.settings.pending_seconds > 0:
                    self._enter(instance, "pending", lambda launched: launched.start(), self.settings.pending_seconds)
                else:
                    self.notify(instance)
            if client_token:
                self._client_tokens[client_token] = (reservation.id, parameters)
            return reservation

    def block_device(self, instance, size, device_path, snapshot_id, delete_on_termination, volume_type):
        """One block device of a launch: encrypted when the mapping or its snapshot is, with the mapping's key, else
        the snapshot's, else the account's default; the mapping's Iops and Throughput."""
        ebs = getattr(self._launching, "mappings", {}).get(device_path, {})
        backend = instance.ec2_backend
        snapshot = backend.snapshots.get(snapshot_id) if snapshot_id else None
        encrypted = str(ebs.get("Encrypted", "false")).lower() == "true" or bool(snapshot and snapshot.encrypted)
        kms_key_id = (ebs.get("KmsKeyId") or (snapshot.kms_key_id if snapshot else None)) if encrypted else None
        volume = backend.create_volume(
            size=size, zone_name=instance.placement.zone, snapshot_id=snapshot_id, encrypted=encrypted,
            kms_key_id=kms_key_id, volume_type=volume_type, iops=int(ebs["Iops"]) if ebs.get("Iops") else None,
            throughput=int(ebs["Throughput"]) if ebs.get("Throughput") else None)
        backend.attach_volume(volume.id, instance.id, device_path, delete_on_termination)
