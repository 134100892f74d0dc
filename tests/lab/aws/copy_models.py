"""What the lab adds to moto for DR copies: CopySnapshot as EC2 documents it, across Regions and accounts.

moto 5.1's CopySnapshot completes at once, has no concurrency limit, ignores ``Encrypted``, stores any ``KmsKeyId``
unchecked, gives the copy the source's VolumeId, and cannot copy a snapshot another account shared
(InvalidSnapshot.NotFound); its ModifySnapshotAttribute shares encrypted snapshots AWS refuses to share. moto's
default ``alias/aws/ebs`` key is a customer key, and an encrypted snapshot made without a key reports none.
:class:`CopyBehaviour` models (see docs/lab.md):

- a copy is ``pending`` for ``copy_seconds`` (a lab setting), then ``completed``;
- at most ``max_concurrent_copies`` (EC2: 20) pending copies per destination account and Region; one more is
  refused with ``ResourceLimitExceeded``, and the lab counts the most ever in flight;
- the source must be ``completed``, and owned by the caller or shared with it (createVolumePermission);
- the copy is encrypted when the source is or ``Encrypted`` is asked, with ``KmsKeyId`` (which must be a key of the
  destination account and Region) or the destination's aws/ebs key; the aws/ebs key is AWS managed (DescribeKey says
  ``KeyManager: AWS``) and an encrypted snapshot without a key reports it;
- a copy's VolumeId is ``vol-ffffffff`` (EC2: "an arbitrary volume ID that should not be used for any purpose");
- a snapshot encrypted with an AWS managed key cannot be shared with another account, and no encrypted snapshot
  can be made public.

Error codes and texts AWS does not document are the lab's choice, marked [lab] below; the collection relies only on
``ResourceLimitExceeded``.
"""

import copy
import json
import threading
import time
from dataclasses import dataclass

from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError
from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.utils import random_snapshot_id
from moto.kms.models import kms_backends

from lab.clock import iso, lab_now

COPY_VOLUME_ID = "vol-ffffffff"
EBS_DEFAULT_ALIAS = "alias/aws/ebs"


@dataclass
class CopySettings:
    """Switchable at run time through the lab's control API."""

    copy_seconds: float = 0.0
    max_concurrent_copies: int = 20


@dataclass
class CopyRecord:
    snapshot_id: str
    account_id: str
    region: str
    source_snapshot_id: str
    source_region: str
    source_account: str
    started: float
    duration: float
    lab_started: str

    def ended(self, now):
        return now - self.started >= self.duration


class CopyBehaviour:
    """CopySnapshot, the per-destination cap and the sharing rules for the moto backends of this process."""

    def __init__(self, blockstore):
        self.blockstore = blockstore
        self.settings = CopySettings()
        self.lock = threading.RLock()
        self._copies = {}
        self._peak = {}
        self._refused = []

    def reset(self):
        with self.lock:
            self.settings = CopySettings()
            self._copies.clear()
            self._peak.clear()
            self._refused.clear()

    def configure(self, **values):
        with self.lock:
            for name, value in values.items():
                if not hasattr(self.settings, name):
                    raise ValueError("unknown copy setting %r" % name)
                setattr(self.settings, name, type(getattr(self.settings, name))(value))
        return vars(self.settings)

    # ------------------------------------------------------------------------------ state of a copy
    def status_of(self, snapshot):
        """``pending`` or ``completed`` for a copy, None for any other snapshot."""
        record = self._copies.get(snapshot.id)
        if record is None:
            return None
        return "completed" if record.ended(time.monotonic()) else "pending"

    def progress_of(self, snapshot):
        record = self._copies.get(snapshot.id)
        if record is None:
            return None
        if record.duration <= 0:
            return "100%"
        return "%d%%" % int(min(1.0, (time.monotonic() - record.started) / record.duration) * 100)

    def _in_flight(self, account_id, region, now):
        return [r for r in self._copies.values()
                if (r.account_id, r.region) == (account_id, region) and not r.ended(now)]

    # ------------------------------------------------------------------------------ keys
    @staticmethod
    def default_key_arn(account_id, region):
        """The account's aws/ebs key in the Region (created on first use, as AWS does), marked AWS managed."""
        backend = kms_backends[account_id][region]
        key = backend.keys[backend.get_key_id_from_alias(EBS_DEFAULT_ALIAS)]
        key.key_manager = "AWS"
        return key.arn

    @staticmethod
    def _key_arn(account_id, region, key_id):
        """The ARN of a key (id, ARN, alias or alias ARN) of this account and Region; InvalidParameterValue [lab]."""
        if key_id.startswith("arn:") and key_id.split(":")[3] != region:
            raise EC2ClientError("InvalidParameterValue",
                                 "The KMS key %s is not in the destination Region %s" % (key_id, region))
        backend = kms_backends[account_id][region]
        try:
            found = backend.any_id_to_key_id(key_id)
        except (KeyError, AttributeError, TypeError):
            found = None
        if not found or found not in backend.keys:
            raise EC2ClientError("InvalidParameterValue",
                                 "The KMS key %s does not exist in account %s, Region %s" % (key_id, account_id, region))
        if backend.get_key_id_from_alias(EBS_DEFAULT_ALIAS) == found:
            return CopyBehaviour.default_key_arn(account_id, region)
        return backend.keys[found].arn

    def snapshot_key(self, snapshot, stored):
        """What DescribeSnapshots reports as KmsKeyId: the stored key, or aws/ebs for an encrypted snapshot without
        (moto's default EBS key is the aws/ebs alias's key: it is marked AWS managed whichever way it is reached)."""
        if not snapshot.encrypted:
            return stored
        default = self.default_key_arn(snapshot.ec2_backend.account_id, snapshot.ec2_backend.region_name)
        return stored or default

    def is_aws_managed(self, snapshot):
        key_arn = snapshot.kms_key_id
        if not key_arn:
            return False
        account_id, region = key_arn.split(":")[4], key_arn.split(":")[3]
        backend = kms_backends[account_id][region]
        key = backend.keys.get(backend.get_key_id(key_arn))
        return key is not None and key.key_manager == "AWS"

    # ------------------------------------------------------------------------------ moto's backend, the lab's way
    def _source(self, backend, source_region, source_snapshot_id):
        """The source snapshot, the caller's own or one shared with the caller's account."""
        own = ec2_backends[backend.account_id][source_region].snapshots.get(source_snapshot_id)
        if own is not None:
            return own
        for account_id in list(ec2_backends.keys()):
            other = ec2_backends[account_id][source_region].snapshots.get(source_snapshot_id)
            if other is not None and (backend.account_id in other.create_volume_permission_userids
                                      or "all" in other.create_volume_permission_groups):
                return other
        raise InvalidSnapshotIdError()

    def copy_snapshot(self, backend, source_snapshot_id, source_region, description, kms_key_id, encrypted):
        """CopySnapshot into ``backend`` (the destination account and Region)."""
        with self.lock:
            now = time.monotonic()
            source = self._source(backend, source_region or backend.region_name, source_snapshot_id)
            if source.status != "completed":
                raise EC2ClientError("IncorrectState",  # [lab]
                                     "Snapshot %s is in state %s; only completed snapshots can be copied"
                                     % (source_snapshot_id, source.status))
            in_flight = self._in_flight(backend.account_id, backend.region_name, now)
            if len(in_flight) >= self.settings.max_concurrent_copies:
                self._refused.append({"source_snapshot_id": source_snapshot_id, "lab_time": iso(lab_now()),
                                      "in_flight": len(in_flight)})
                raise EC2ClientError(
                    "ResourceLimitExceeded",  # the code is AWS's; the text [lab]
                    "You have reached the limit of %d concurrent snapshot copies to %s"
                    % (self.settings.max_concurrent_copies, backend.region_name))
            encrypt = source.encrypted or encrypted or bool(kms_key_id)
            key_arn = None
            if kms_key_id:
                key_arn = self._key_arn(backend.account_id, backend.region_name, kms_key_id)
            elif encrypt:
                key_arn = self.default_key_arn(backend.account_id, backend.region_name)
            placeholder = copy.copy(source.volume)
            placeholder.id = COPY_VOLUME_ID
            snapshot = Snapshot(backend, random_snapshot_id(), volume=placeholder, description=description,
                                encrypted=encrypt, kms_key_id=key_arn)
            backend.snapshots[snapshot.id] = snapshot
            self.blockstore.copy_snapshot(snapshot.id, source.id)
            self._copies[snapshot.id] = CopyRecord(
                snapshot.id, backend.account_id, backend.region_name, source.id, source.ec2_backend.region_name,
                source.ec2_backend.account_id, now, self.settings.copy_seconds, iso(lab_now()))
            destination = "%s/%s" % (backend.account_id, backend.region_name)
            self._peak[destination] = max(self._peak.get(destination, 0), len(in_flight) + 1)
            return snapshot

    def check_share(self, snapshot, user_ids, groups):
        """ModifySnapshotAttribute add: EC2's refusals for encrypted snapshots [lab codes]."""
        if snapshot.encrypted and "all" in (groups or ()):
            raise EC2ClientError("InvalidParameterValue", "Encrypted snapshots cannot be made public")
        foreign = [user for user in (user_ids or ()) if user != snapshot.owner_id]
        if foreign and self.is_aws_managed(snapshot):
            raise EC2ClientError(
                "InvalidParameterValue",
                "Snapshot %s is encrypted with the AWS managed key aws/ebs and cannot be shared" % snapshot.id)

    # ------------------------------------------------------------------------------ what tests read
    def describe(self):
        """Every copy with its timings (seconds on the lab's monotonic clock), the most in flight per destination
        (``account/Region``) and the refusals."""
        with self.lock:
            now = time.monotonic()
            copies = [{"snapshot_id": r.snapshot_id, "account_id": r.account_id, "region": r.region,
                       "source_snapshot_id": r.source_snapshot_id, "source_region": r.source_region,
                       "source_account": r.source_account, "started": r.started, "ends": r.started + r.duration,
                       "state": "completed" if r.ended(now) else "pending", "lab_started": r.lab_started}
                      for r in sorted(self._copies.values(), key=lambda record: record.started)]
            return {"copies": copies, "max_in_flight": dict(self._peak), "refused": list(self._refused),
                    "now": now, "settings": vars(self.settings)}

    def encrypt_set(self, set_id, key_id=None, region=None, account_id=None):
        """Seeding: a set's snapshots as if taken of volumes encrypted with ``key_id`` (aws/ebs when None)."""
        with self.lock:
            changed = []
            for backend in self._backends(account_id, region):
                for snapshot in backend.snapshots.values():
                    tags = {tag["key"]: tag["value"] for tag in snapshot.get_tags()}
                    if tags.get("shadowsnap:set-id") == set_id:
                        snapshot.encrypted = True
                        snapshot.kms_key_id = (self._key_arn(backend.account_id, backend.region_name, key_id)
                                               if key_id else self.default_key_arn(backend.account_id,
                                                                                   backend.region_name))
                        changed.append(snapshot.id)
            return sorted(changed)

    @staticmethod
    def _backends(account_id, region):
        for account in list(ec2_backends.keys()):
            if account_id and account != account_id:
                continue
            for name in ([region] if region else list(ec2_backends[account].keys())):
                yield ec2_backends[account][name]

    def handle_control(self, method, path, body):
        """``/_lab/copies``: GET the copies, PUT settings, POST ``/encrypt``."""
        request = json.loads(body) if body else {}
        route = (method, path.split("?")[0].rstrip("/"))
        if route == ("GET", "/_lab/copies"):
            return 200, self.describe()
        if route == ("PUT", "/_lab/copies"):
            return 200, self.configure(**request)
        if route == ("POST", "/_lab/copies/encrypt"):
            return 200, {"snapshot_ids": self.encrypt_set(request["set_id"], request.get("key_id"),
                                                          request.get("region"), request.get("account_id"))}
        return 404, {"error": "no such control endpoint: %s %s" % route}
