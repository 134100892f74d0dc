"""Where the lab's copy models (lab.aws.copy_models) plug into moto: CopySnapshot with ``Encrypted``, the copies'
state and progress, the KmsKeyId an encrypted snapshot reports, and ModifySnapshotAttribute's sharing rules
(RunInstances' ``Encrypted`` is lab.aws.instance_models'). Being answered inside moto, they pass the fault proxy
like any EC2 call: counted, rate-limited and subject to fault rules."""

from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.responses import elastic_block_store as ebs_responses


def install(behaviour):
    """Route moto's CopySnapshot and sharing to ``behaviour`` (process-wide, once; after lab.aws.ebs_responses and
    lab.aws.volume_responses, whose snapshot state and key the copies' wrap)."""
    if getattr(EBSBackend, "_shadowsnap_lab_copies", False):
        raise RuntimeError("the lab's copy behaviour is already installed in this process")
    original_status = Snapshot.status
    original_progress = Snapshot.progress
    original_add_permission = EBSBackend.add_create_volume_permission
    original_key = Snapshot.kms_key_id  # lab.aws.volume_responses': a snapshot inherits its volume's key

    def copy_snapshot(self):
        self.error_on_dryrun()
        snapshot = behaviour.copy_snapshot(
            self.ec2_backend, self._get_param("SourceSnapshotId"), self._get_param("SourceRegion"),
            self._get_param("Description"), self._get_param("KmsKeyId"), self._get_bool_param("Encrypted", False))
        snapshot.add_tags(self._parse_tag_specification().get("snapshot", {}))
        return self.response_template(ebs_responses.COPY_SNAPSHOT_RESPONSE).render(snapshot=snapshot)

    def add_create_volume_permission(backend, snapshot_id, user_ids, groups):
        behaviour.check_share(backend.get_snapshot(snapshot_id), user_ids, groups)
        return original_add_permission(backend, snapshot_id, user_ids, groups)

    def status(snapshot):
        return behaviour.status_of(snapshot) or original_status.fget(snapshot)

    def progress(snapshot):
        return behaviour.progress_of(snapshot) or original_progress.fget(snapshot)

    def kms_key_id(snapshot):
        return behaviour.snapshot_key(snapshot, original_key.fget(snapshot))

    ebs_responses.ElasticBlockStore.copy_snapshot = copy_snapshot
    EBSBackend.add_create_volume_permission = add_create_volume_permission
    Snapshot.status = property(status, lambda snapshot, value: None)
    Snapshot.progress = property(progress)
    Snapshot.kms_key_id = property(kms_key_id, original_key.fset)
    EBSBackend._shadowsnap_lab_copies = True  # pylint: disable=protected-access
