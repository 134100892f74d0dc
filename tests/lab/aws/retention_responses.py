"""Where the lab's retention models (lab.aws.retention_models) plug into moto: LockSnapshot, UnlockSnapshot and
DescribeLockedSnapshots answered on moto's EC2 endpoint (moto lacks them), RegisterImage's block-device mappings,
and DeleteSnapshot's refusals. Being answered inside moto, they pass the fault proxy like any EC2 call: counted,
rate-limited by the "other mutating" and Describe buckets, and subject to the fault rules."""

from moto.core.responses import ActionResult
from moto.ec2.models.amis import Ami
from moto.ec2.models.elastic_block_store import EBSBackend
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

from . import snapshot_listing, tier_responses


def _optional_int(value):
    return None if value in (None, "") else int(value)


def install(behaviour):
    """Route moto's DeleteSnapshot, RegisterImage and AMI mappings to ``behaviour``, and add the lock, tier and
    Recycle Bin actions (process-wide, once)."""
    if getattr(ElasticBlockStore, "_shadowsnap_lab_retention", False):
        raise RuntimeError("the lab's retention behaviour is already installed in this process")
    original_delete_snapshot = EBSBackend.delete_snapshot
    original_register_image = AmisResponse.register_image
    original_mappings = Ami.block_device_mappings

    def delete_snapshot(backend, snapshot_id):
        return behaviour.delete_snapshot(original_delete_snapshot, backend, snapshot_id)

    def lock_snapshot(self):
        self.error_on_dryrun()
        return ActionResult(behaviour.lock_snapshot(
            self.ec2_backend, self._get_param("SnapshotId"), self._get_param("LockMode"),
            cool_off_hours=_optional_int(self._get_param("CoolOffPeriod")),
            duration_days=_optional_int(self._get_param("LockDuration")),
            expiration_date=self._get_param("ExpirationDate")))

    def unlock_snapshot(self):
        self.error_on_dryrun()
        return ActionResult(behaviour.unlock_snapshot(self.ec2_backend, self._get_param("SnapshotId")))

    def describe_locked_snapshots(self):
        self.error_on_dryrun()
        states = self._filters_from_querystring().get("lock-state")
        locks, now = behaviour.locked_snapshots(self.ec2_backend, self._get_param("SnapshotIds", []), states)
        listed = snapshot_listing.page(locks, self._get_param("MaxResults"), self._get_param("NextToken"))
        result = {"Snapshots": [lock.info(now) for lock in listed.snapshots]}
        if listed.next_token:
            result["NextToken"] = listed.next_token
        return ActionResult(result)

    def register_image(self):
        mappings = behaviour.checked_mappings(self.ec2_backend, self._get_param("BlockDeviceMappings", []))
        answer = original_register_image(self)
        if mappings:
            image = self.ec2_backend.amis[answer.result["ImageId"]]
            image.root_device_name = self._get_param("RootDeviceName") or image.root_device_name
            image.root_device_type = "ebs"
            behaviour.record_mappings(image.id, mappings)
            # EC2 makes no snapshot of its own for an AMI registered from snapshots; moto's placeholder goes.
            self.ec2_backend.snapshots.pop(image.ebs_snapshot.id, None)
        return answer

    def block_device_mappings(image):
        return behaviour.mappings_of(image.id) or original_mappings.fget(image)

    EBSBackend.delete_snapshot = delete_snapshot
    ElasticBlockStore.lock_snapshot = lock_snapshot
    ElasticBlockStore.unlock_snapshot = unlock_snapshot
    ElasticBlockStore.describe_locked_snapshots = describe_locked_snapshots
    AmisResponse.register_image = register_image
    Ami.block_device_mappings = property(block_device_mappings)
    ElasticBlockStore._shadowsnap_lab_retention = True  # pylint: disable=protected-access
    tier_responses.install(behaviour.tiers, behaviour.recycle_bin)
