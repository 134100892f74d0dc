"""Where the lab's EBS volume behaviour (lab.aws.volume_models) plugs into moto: the CreateVolume, AttachVolume and
DetachVolume API calls, the volume and snapshot states moto prints, and the attachment state in DescribeVolumes.

Only the API entry points are routed to the models: moto's own uses of its backend (RunInstances' block devices,
TerminateInstances) stay unchecked and immediate, as they are when EC2 launches or terminates an instance.
"""

from moto.ec2.models import ec2_backends
from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot, Volume
from moto.ec2.responses import elastic_block_store as ebs_responses

ORIGINAL_ATTACH = EBSBackend.attach_volume
ORIGINAL_DETACH = EBSBackend.detach_volume


def loaded_backends():
    """Every moto EC2 backend of this process that exists (one per account and Region used)."""
    return [backend for account in dict.values(ec2_backends) for backend in dict.values(account)]


def _optional_int(value):
    return None if value in (None, "") else int(value)


def _patch_templates():
    """DescribeVolumes prints each attachment's own state (moto prints ``attached``)."""
    ebs_responses.DESCRIBE_VOLUMES_RESPONSE = ebs_responses.DESCRIBE_VOLUMES_RESPONSE.replace(
        "<status>attached</status>", "<status>{{ volume.attachment.status }}</status>")


def _patch_states(behaviour):
    """A volume is ``creating`` for a while; a snapshot of an encrypted volume carries the volume's key, as in EC2."""

    def set_kms_key_id(snapshot, value):
        volume = snapshot.__dict__.get("volume")
        inherited = volume.kms_key_id if volume is not None and snapshot.encrypted else None
        snapshot.__dict__["_lab_kms_key_id"] = value or inherited

    Volume.status = property(behaviour.volume_status)
    Snapshot.kms_key_id = property(lambda snapshot: snapshot.__dict__.get("_lab_kms_key_id"), set_kms_key_id)


def _patch_requests(behaviour):
    def create_volume(self):
        tags = self._parse_tag_specification().get("volume", {})
        self.error_on_dryrun()
        volume = behaviour.create_volume(
            lambda backend, **options: backend.create_volume(**options), self.ec2_backend,
            size=_optional_int(self._get_param("Size")), zone_name=self._get_param("AvailabilityZone"),
            snapshot_id=self._get_param("SnapshotId"), encrypted=self._get_bool_param("Encrypted", False),
            kms_key_id=self._get_param("KmsKeyId"), volume_type=self._get_param("VolumeType"),
            iops=_optional_int(self._get_param("Iops")), throughput=_optional_int(self._get_param("Throughput")),
            multi_attach_enabled=self._get_param("MultiAttachEnabled"), client_token=self._get_param("ClientToken"),
            tags=tags,
        )
        return self.response_template(ebs_responses.CREATE_VOLUME_RESPONSE).render(volume=volume)

    def attach_volume(self):
        self.error_on_dryrun()
        attachment = behaviour.attach_volume(ORIGINAL_ATTACH, self.ec2_backend, self._get_param("VolumeId"),
                                             self._get_param("InstanceId"), self._get_param("Device"))
        return self.response_template(ebs_responses.ATTACHED_VOLUME_RESPONSE).render(attachment=attachment)

    def detach_volume(self):
        self.error_on_dryrun()
        attachment = behaviour.detach_volume(ORIGINAL_DETACH, self.ec2_backend, self._get_param("VolumeId"),
                                             self._get_param("InstanceId"), self._get_param("Device"))
        return self.response_template(ebs_responses.DETATCH_VOLUME_RESPONSE).render(attachment=attachment)

    ebs_responses.ElasticBlockStore.create_volume = create_volume
    ebs_responses.ElasticBlockStore.attach_volume = attach_volume
    ebs_responses.ElasticBlockStore.detach_volume = detach_volume


def install(behaviour):
    """Route moto's volume API calls and states to ``behaviour`` (process-wide, once)."""
    if getattr(Volume, "_shadowsnap_lab", False):
        raise RuntimeError("the lab's EBS volume behaviour is already installed in this process")
    _patch_templates()
    _patch_states(behaviour)
    _patch_requests(behaviour)
    Volume._shadowsnap_lab = True  # pylint: disable=protected-access


def control(behaviour, method, route, query, request):
    """The ``/_lab/volumes`` control routes (docs/lab.md); raises KeyError for an unknown route."""
    if (method, route) == ("PUT", "/_lab/volumes/settings"):
        return behaviour.configure(**request)
    if (method, route) == ("GET", "/_lab/volumes/attachments"):
        return behaviour.attachments(loaded_backends(), _first(query, "instance_id"))
    if (method, route) == ("GET", "/_lab/volumes/events"):
        return behaviour.events(_first(query, "instance_id"))
    if (method, route) == ("GET", "/_lab/volumes/content"):
        return behaviour.content(query["volume_id"][0])
    raise KeyError("no such control endpoint: %s %s" % (method, route))


def _first(query, name):
    values = query.get(name)
    return values[0] if values else None
