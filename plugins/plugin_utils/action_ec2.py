# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 for the action plugins, which run on the controller where the AWS credentials are: an instance's EBS
attachments, whether a snapshot set id is taken, and the shadow engine's snapshot set taken inside its session.

Nothing here decides how EC2 is called. The connection settings (credentials, profile, region, endpoint, CA bundle,
botocore config) are resolved by amazon.aws's plugin-side code (``AWSPluginBase``) from the options amazon.aws modules
take, with the same environment fallbacks (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...; botocore itself
honours ``AWS_ENDPOINT_URL``). Clients and retries are ``module_utils.aws_client``'s, the calls ``module_utils.ec2_api``'s
and what a set is ``module_utils.snapshot_sets``', exactly as for the modules.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone

try:
    import botocore
except ImportError:  # pragma: no cover - reported by ec2_client() when a look-up is needed
    botocore = None

from ansible_collections.amazon.aws.plugins.module_utils.exceptions import AnsibleAWSError
from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase
from ansible_collections.shadowsnap.ec2.plugins.module_utils import aws_client, ec2_api, snapshot_sets, snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION

# The options (and environment fallbacks) of amazon.aws modules: access_key, secret_key, session_token, profile,
# endpoint_url, validate_certs, aws_ca_bundle, aws_config, debug_botocore_endpoint_logs, region.
AWS_ARGUMENT_SPEC = aws_argument_spec()
# As long as a real VSS id, so that the tag budget checked before the shadow set exists is the one it will need.
PLACEHOLDER_GUID = "{00000000-0000-0000-0000-000000000000}"


class Ec2LookupError(Exception):
    """EC2 could not be asked, did not know the instance, or refused the set; the message says what to set or check."""


class _PluginConnection(AWSPluginBase):
    """amazon.aws's plugin-side connection settings, fed with an action plugin's validated options."""

    def __init__(self, options: dict, plugin_name: str):
        self._options = dict(options)
        self.ansible_name = plugin_name

    def get_options(self):
        return self._options

    def _do_fail(self, message):
        raise Ec2LookupError(message)


@contextmanager
def _reported(what: str):
    """The collection's set errors, and amazon.aws's AWS errors prefixed with ``what``, as Ec2LookupError."""
    try:
        yield
    except (snapshot_sets.SnapshotSetError, snapshot_tags.TagSchemaError) as exc:
        raise Ec2LookupError(str(exc)) from exc
    except AnsibleAWSError as exc:
        raise Ec2LookupError(f"{what}: {exc}") from exc


def ec2_client(options: dict, plugin_name: str, region: str | None = None, idempotent: bool = True):
    """An EC2 client from amazon.aws-style options, as module_utils.aws_client makes them for modules
    (``idempotent=False`` for creates: without botocore's automatic retries)."""
    if botocore is None:
        raise Ec2LookupError(f"{plugin_name} needs boto3 and botocore on the controller to read the instance from EC2")
    settings = {name: options.get(name) for name in AWS_ARGUMENT_SPEC}
    if region:
        settings["region"] = region
    return aws_client.ec2_client(_PluginConnection(settings, plugin_name), idempotent=idempotent)


def instance_attachments(client, instance_id: str) -> tuple[list[dict], dict]:
    """(EBS attachments ``[{device, volume_id, status, boot}]``, a summary of the instance) from DescribeInstances."""
    with _reported(f"DescribeInstances for {instance_id} failed"):
        instance = snapshot_sets.describe_instance(client, instance_id)
    summary = {
        "instance_id": instance.get("InstanceId"),
        "state": (instance.get("State") or {}).get("Name"),
        "root_device_name": instance.get("RootDeviceName"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_type": instance.get("InstanceType"),
    }
    return snapshot_sets.attached_volumes(instance), summary


def record_restored_consistency(client, volume_ids: list[str], consistency: str) -> None:
    """Tag restored volumes with the consistency their data has now (``application`` once reverted to its shadow)."""
    with _reported(f"CreateTags on {', '.join(volume_ids)} failed"):
        ec2_api.tag_volumes(client, volume_ids, {snapshot_tags.KEY_RESTORE_CONSISTENCY: consistency})


def reverted_volumes(client, volume_ids: list[str]) -> set[str]:
    """Those of the restored volumes whose tags say an earlier run reverted them (their shadow copy went with it)."""
    with _reported(f"DescribeVolumes of {', '.join(volume_ids)} failed"):
        volumes = ec2_api.describe_volumes(client, volume_ids)
    return {volume["VolumeId"] for volume in volumes
            if (snapshot_tags.decode_restored_volume(boto3_tag_list_to_ansible_dict(volume.get("Tags", []))) or {}).get("consistency") == "application"}


def existing_snapshot_set(client, set_id: str, instance_id: str | None = None) -> dict | None:
    """The snapshot set with this id, as ``ebs_set`` reports it (``changed=False``), or None when the id is free.

    One DescribeSnapshots call, nothing on the host: an action asks it before any VSS work, so that a set id that is
    already taken never gets a second shadow set (or a BackupComplete). A set of another instance raises.
    """
    with _reported(f"looking for the snapshot set {set_id} in EC2 failed"):
        found = snapshot_sets.find_existing_set(client, set_id, instance_id)
    return dict(found, changed=False, retries=[], tags=found["snapshots"][0]["tags"]) if found else None


def prepare_shadow_snapshot_set(options: dict, plugin_name: str, region: str | None, instance_id: str,
                                set_id: str | None = None) -> dict:
    """Everything the shadow engine's EBS snapshot set needs that can be asked before the shadow set exists (the
    instance and its attachments, an existing set with that id), so that only CreateSnapshots is left for after it.

    Without ``set_id`` the set gets the default id (``snapshot_tags.default_set_id``: the instance and the UTC time
    now). ``existing`` is the set that already has the id, if any: then nothing may be made.
    """
    set_id = set_id or snapshot_tags.default_set_id(instance_id, datetime.now(timezone.utc))
    client = ec2_client(options, plugin_name, region)
    existing = existing_snapshot_set(client, set_id, instance_id)
    with _reported(f"reading instance {instance_id} from EC2 failed"):
        instance = snapshot_sets.describe_instance(client, instance_id)
    return {"client": client, "create_client": ec2_client(options, plugin_name, region, idempotent=False),
            "instance": instance, "existing": existing, "set_id": set_id}


def _plan(prepared: dict, request: dict) -> tuple[dict, dict]:
    """(InstanceSpecification, tags) of the shadow engine's set, tagged ``unverified``; exactly ``volume_ids``, never
    a default selection."""
    if not request.get("volume_ids"):
        raise snapshot_sets.SnapshotSetError(
            f"no EBS volume id is known for the shadow set's volumes on {prepared['instance']['InstanceId']}: refusing a "
            f"snapshot set that would not be exactly the shadow set")
    specification, dummy, tags = snapshot_sets.plan_snapshot_set(
        prepared["instance"], {"volume_ids": request["volume_ids"], "include_boot": request.get("include_boot", False)},
        request.get("volume_metadata"), set_id=prepared["set_id"], engine="shadow", consistency="unverified",
        created_at=datetime.now(timezone.utc), version=COLLECTION_VERSION, policy=request.get("policy") or "default",
        backup_type=request.get("backup_type"), shadow_set_id=request.get("shadow_set_id"),
        user_tags=request.get("tags") or {}, job_id=request.get("awx_job_id"),
    )
    return specification, tags


def check_shadow_snapshot_set(prepared: dict, request: dict) -> None:
    """Plans the set as :func:`create_shadow_snapshot_set` will, with placeholder shadow ids where they are not known
    yet: the selection and the exact tag budget are checked before the shadow set exists (Ec2LookupError)."""
    metadata = {key: dict(value, shadow_id=value.get("shadow_id") or PLACEHOLDER_GUID)
                for key, value in (request.get("volume_metadata") or {}).items()}
    with _reported("planning the snapshot set failed"):
        _plan(prepared, dict(request, volume_metadata=metadata,
                             shadow_set_id=request.get("shadow_set_id") or PLACEHOLDER_GUID))


def create_shadow_snapshot_set(prepared: dict, request: dict) -> dict:
    """The EBS snapshot set of a shadow set's volumes, taken right after the shadow set exists (tagged ``unverified``).

    ``prepared`` comes from :func:`prepare_shadow_snapshot_set`; ``request``: ``volume_ids``, ``include_boot``,
    ``volume_metadata``, ``shadow_set_id``, ``backup_type``, ``policy``, ``tags`` and optionally ``timeout`` (seconds
    the creation may keep retrying after its first attempt; 0: no retry). Same tags, retries and reconciliation as the
    ec2_snapshot_set module, but bounded by ``timeout`` alone, not by a number of attempts: the shadow set is held
    anyway, so a throttled creation keeps trying while the hold allows. An existing set with that id is returned as it
    is.
    """
    if prepared["existing"]:
        return prepared["existing"]
    instance_id = prepared["instance"]["InstanceId"]
    set_id = prepared["set_id"]
    with _reported(f"creating the snapshot set {set_id} of {instance_id} failed"):
        specification, tags = _plan(prepared, request)
        description = f"shadowsnap.ec2 set {set_id} of {instance_id} (unverified)"
        created, retries = snapshot_sets.create_snapshot_set(
            prepared["create_client"], prepared["client"], specification, description, tags, set_id,
            max_attempts=None,
            timeout=snapshot_sets.CREATE_TIMEOUT if request.get("timeout") is None else request["timeout"])
    return dict(snapshot_sets.group_sets(created)[0], changed=True, retries=retries, tags=tags)


def settle_shadow_snapshot_set(prepared: dict, ebs_set: dict, consistency: str) -> dict:
    """``ebs_set`` (as :func:`create_shadow_snapshot_set` returned it) settled from ``unverified`` to ``consistency``
    with one CreateTags call, as ec2_snapshot_set settles a set; returns the set as it is now."""
    settled = dict(ebs_set, snapshots=[dict(member, tags=dict(member["tags"])) for member in ebs_set["snapshots"]])
    with _reported(f"recording the snapshot set {ebs_set['set_id']} as {consistency} failed"):
        snapshot_sets.settle_consistency(prepared["client"], settled, consistency, False)
    return dict(settled, tags=dict(settled.get("tags") or {}, **{snapshot_tags.KEY_CONSISTENCY: consistency}))
