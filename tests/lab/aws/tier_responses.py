"""Where the lab's archive tier (lab.aws.tier_models) and Recycle Bin (lab.aws.rbin_models) plug into moto's EC2
endpoint: ModifySnapshotTier, RestoreSnapshotTier, DescribeSnapshotTierStatus, ListSnapshotsInRecycleBin and
RestoreSnapshotFromRecycleBin (moto answers them HTTP 500), the ``storageTier`` of DescribeSnapshots, and the
``recovering`` state of a snapshot just restored from the bin. Answered inside moto, they pass the fault proxy like any
EC2 call: counted, rate-limited and subject to the fault rules."""

from dataclasses import dataclass

from moto.core.responses import ActionResult
from moto.ec2.models.elastic_block_store import Snapshot
from moto.ec2.responses import elastic_block_store as ebs_responses
from moto.ec2.responses.elastic_block_store import ElasticBlockStore

from . import snapshot_listing
from .ebs_models import member_list


@dataclass
class _Listed:
    """An answer item as snapshot_listing pages it (by ``id``)."""

    id: str
    item: dict


def _paged(items, max_results, next_token, key):
    """One page of ``items`` (dicts with ``SnapshotId``), cut the way snapshot_listing cuts DescribeSnapshots."""
    listed = snapshot_listing.page([_Listed(item["SnapshotId"], item) for item in items], max_results, next_token)
    answer = {key: [entry.item for entry in listed.snapshots]}
    if listed.next_token:
        answer["NextToken"] = listed.next_token
    return ActionResult(answer)


def install(tiers, recycle_bin):
    """Add the tier and Recycle Bin actions to moto's EC2 endpoint (process-wide, once)."""
    if getattr(ElasticBlockStore, "_shadowsnap_lab_tiers", False):
        raise RuntimeError("the lab's archive tier is already installed in this process")
    original_status = Snapshot.status

    def modify_snapshot_tier(self):
        self.error_on_dryrun()
        return ActionResult(tiers.modify_snapshot_tier(self.ec2_backend, self._get_param("SnapshotId"),
                                                       self._get_param("StorageTier")))

    def restore_snapshot_tier(self):
        self.error_on_dryrun()
        days = self._get_param("TemporaryRestoreDays")
        return ActionResult(tiers.restore_snapshot_tier(
            self.ec2_backend, self._get_param("SnapshotId"), temporary_days=None if days in (None, "") else int(days),
            permanent=self._get_bool_param("PermanentRestore", False)))

    def describe_snapshot_tier_status(self):
        self.error_on_dryrun()
        filters = self._filters_from_querystring()
        items = tiers.tier_statuses(self.ec2_backend, member_list(filters.get("snapshot-id")),
                                    member_list(filters.get("volume-id")), member_list(filters.get("last-tiering-operation")))
        return _paged(items, self._get_param("MaxResults"), self._get_param("NextToken"), "SnapshotTierStatuses")

    def list_snapshots_in_recycle_bin(self):
        self.error_on_dryrun()
        snapshot_ids = self._get_param("SnapshotIds", [])
        items = recycle_bin.in_bin(self.ec2_backend, snapshot_ids)
        if snapshot_ids:
            return ActionResult({"Snapshots": items})
        return _paged(items, self._get_param("MaxResults"), self._get_param("NextToken"), "Snapshots")

    def restore_snapshot_from_recycle_bin(self):
        self.error_on_dryrun()
        return ActionResult(recycle_bin.restore(self.ec2_backend, self._get_param("SnapshotId")))

    ebs_responses.DESCRIBE_SNAPSHOTS_RESPONSE = ebs_responses.DESCRIBE_SNAPSHOTS_RESPONSE.replace(
        "<tagSet>", "<storageTier>{{ snapshot.storage_tier }}</storageTier>\n             <tagSet>", 1)
    Snapshot.storage_tier = property(lambda snapshot: tiers.storage_tier(snapshot.id))
    Snapshot.status = property(lambda snapshot: recycle_bin.recovering(snapshot) or original_status.fget(snapshot),
                               original_status.fset)
    ElasticBlockStore.modify_snapshot_tier = modify_snapshot_tier
    ElasticBlockStore.restore_snapshot_tier = restore_snapshot_tier
    ElasticBlockStore.describe_snapshot_tier_status = describe_snapshot_tier_status
    ElasticBlockStore.list_snapshots_in_recycle_bin = list_snapshots_in_recycle_bin
    ElasticBlockStore.restore_snapshot_from_recycle_bin = restore_snapshot_from_recycle_bin
    ElasticBlockStore._shadowsnap_lab_tiers = True  # pylint: disable=protected-access
