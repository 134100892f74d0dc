"""The EBS wire of the lab and where it plugs into moto: response templates, request parsing, and the routing of
moto's backend entry points to the lab's models (lab.aws.ebs_models)."""

from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
from moto.ec2.responses import elastic_block_store as ebs_responses

from . import snapshot_listing
from .fault_proxy import CLIENT_HEADER


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
        if name == "DESCRIBE_SNAPSHOTS_RESPONSE":
            template = template.replace(
                "</snapshotSet>", "</snapshotSet>{% if next_token %}<nextToken>{{ next_token }}</nextToken>{% endif %}")
        setattr(ebs_responses, name, template)


def _patch_create_snapshots_request():
    """Hand the whole InstanceSpecification (with ExcludeDataVolumeIds and CopyTagsFromSource) to the backend."""

    def create_snapshots(self):
        instance_spec = dict(self._get_param("InstanceSpecification", {}))
        instance_spec["CopyTagsFromSource"] = self._get_param("CopyTagsFromSource", "")
        description = self._get_param("Description", "")
        snapshot_tags = self._parse_tag_specification().get("snapshot", {})
        self.error_on_dryrun()
        snapshots = self.ec2_backend.create_snapshots(instance_spec, description, snapshot_tags)
        template = self.response_template(ebs_responses.CREATE_SNAPSHOTS_RESPONSE)
        return template.render(snapshots=snapshots)

    ebs_responses.ElasticBlockStore.create_snapshots = create_snapshots


def _patch_describe_snapshots(behaviour):
    """DescribeSnapshots as EC2 answers it: only the owners asked for, one page at a time (lab.aws.snapshot_listing);
    and as the collection sees it through the fault proxy, eventually consistent (the models decide what is visible
    yet), while a test reading moto directly sees every snapshot at once."""

    def describe_snapshots(self):
        filters = self._filters_from_querystring()
        snapshot_ids = self._get_param("SnapshotIds", [])
        snapshots = self.ec2_backend.describe_snapshots(snapshot_ids=snapshot_ids, filters=filters)
        snapshots = snapshot_listing.owned_by(snapshots, self._get_param("OwnerIds", []), self.current_account)
        if self.headers.get(CLIENT_HEADER):
            snapshots = behaviour.visible_to_client(snapshots, snapshot_ids)
        listed = snapshot_listing.page(snapshots, self._get_param("MaxResults"), self._get_param("NextToken"), snapshot_ids)
        template = self.response_template(ebs_responses.DESCRIBE_SNAPSHOTS_RESPONSE)
        return template.render(snapshots=listed.snapshots, next_token=listed.next_token)

    ebs_responses.ElasticBlockStore.describe_snapshots = describe_snapshots


def install(behaviour):
    """Route moto's EBS backend and snapshot templates to ``behaviour`` (process-wide, once)."""
    if getattr(EBSBackend, "_shadowsnap_lab", False):
        raise RuntimeError("the lab's EBS behaviour is already installed in this process")
    original_create_snapshot = EBSBackend.create_snapshot
    original_create_volume = EBSBackend.create_volume

    def create_snapshot(backend, volume_id, description, owner_id=None, from_ami=None):
        return behaviour.create_snapshot(original_create_snapshot, backend, volume_id, description, owner_id, from_ami)

    def create_snapshots(backend, instance_spec, description, tags):
        return behaviour.create_snapshots(original_create_snapshot, backend, instance_spec, description, tags)

    def create_volume(backend, *args, **kwargs):
        return behaviour.create_volume(original_create_volume, backend, *args, **kwargs)

    EBSBackend.create_snapshot = create_snapshot
    EBSBackend.create_snapshots = create_snapshots
    EBSBackend.create_volume = create_volume
    EBSBackend._shadowsnap_lab = True  # pylint: disable=protected-access
    Snapshot.status = property(behaviour.status_of, lambda snapshot, value: None)
    Snapshot.progress = property(behaviour.progress_of)
    _patch_snapshot_templates()
    _patch_create_snapshots_request()
    _patch_describe_snapshots(behaviour)
