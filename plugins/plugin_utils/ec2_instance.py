# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 calls made by controller-side (action) plugins: an instance's EBS attachments, and the snapshot set that the
shadow engine takes from inside its session so that the shadow set is held for one API call, not one Ansible task.

Action plugins run on the controller, so they may call EC2 themselves. Nothing here decides how: the connection
settings (credentials, profile, region, endpoint, CA bundle, botocore config) are resolved by amazon.aws's own
plugin-side code (``AWSPluginBase.client``) from the same options amazon.aws modules take, with the same environment
fallbacks (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...; botocore itself honours ``AWS_ENDPOINT_URL``);
the retry policy is the collection's ``module_utils.aws_client.READ_RETRY``; the DescribeInstances call and the
reading of the block-device mapping are ``module_utils.snapshot_sets``'s, which the snapshot modules use too.
"""

from __future__ import annotations

from datetime import datetime, timezone

try:
    import botocore
except ImportError:  # pragma: no cover - reported by check_sdk() when a look-up is needed
    botocore = None

from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_sets, snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import NO_AUTOMATIC_RETRIES, READ_RETRY
from ansible_collections.shadowsnap.ec2.plugins.module_utils.collection_version import COLLECTION_VERSION
from ansible_collections.shadowsnap.ec2.plugins.module_utils.snapshot_sets import (
    SnapshotSetError,
    attached_volumes,
    describe_instance,
)

# The options (and environment fallbacks) of amazon.aws modules: access_key, secret_key, session_token, profile,
# endpoint_url, validate_certs, aws_ca_bundle, aws_config, debug_botocore_endpoint_logs, region.
AWS_ARGUMENT_SPEC = aws_argument_spec()


class Ec2LookupError(Exception):
    """EC2 could not be asked, or did not know the instance; the message says what to set or check."""


class _AwsOptions(AWSPluginBase):
    """amazon.aws's plugin-side client factory, fed with an action plugin's validated options."""

    def __init__(self, options: dict, plugin_name: str):
        self._options = dict(options)
        self.ansible_name = plugin_name

    def get_options(self):
        return self._options

    def _do_fail(self, message):
        raise Ec2LookupError(message)


def ec2_client(options: dict, plugin_name: str, region: str | None = None, idempotent: bool = True):
    """An EC2 client from amazon.aws-style options: READ_RETRY (call with ``aws_retry=True``), or, for creates
    (``idempotent=False``), without botocore's automatic retries, as module_utils.aws_client does for modules."""
    if botocore is None:
        raise Ec2LookupError(f"{plugin_name} needs boto3 and botocore on the controller to read the instance from EC2")
    settings = {name: options.get(name) for name in AWS_ARGUMENT_SPEC}
    if region:
        settings["region"] = region
    if idempotent:
        return _AwsOptions(settings, plugin_name).client("ec2", retry_decorator=READ_RETRY)
    return _AwsOptions(settings, plugin_name).client("ec2", config=NO_AUTOMATIC_RETRIES)


def instance_attachments(client, instance_id: str) -> tuple[list[dict], dict]:
    """(EBS attachments ``[{device, volume_id, status, boot}]``, a summary of the instance) from DescribeInstances."""
    try:
        instance = describe_instance(client, instance_id)
    except SnapshotSetError as exc:
        raise Ec2LookupError(str(exc)) from exc
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Ec2LookupError(f"DescribeInstances for {instance_id} failed: {exc}") from exc
    summary = {
        "instance_id": instance.get("InstanceId"),
        "state": (instance.get("State") or {}).get("Name"),
        "root_device_name": instance.get("RootDeviceName"),
        "availability_zone": (instance.get("Placement") or {}).get("AvailabilityZone"),
        "instance_type": instance.get("InstanceType"),
    }
    return attached_volumes(instance), summary


def prepare_shadow_snapshot_set(options: dict, plugin_name: str, region: str | None, instance_id: str, set_id: str) -> dict:
    """Everything the shadow engine's EBS snapshot set needs that can be asked before the shadow set exists (the
    instance and its attachments, an existing set with that id), so that only CreateSnapshots is left for after it."""
    client = ec2_client(options, plugin_name, region)
    try:
        existing = snapshot_sets.find_snapshots(client, set_ids=[set_id])
        found = snapshot_sets.group_sets(existing)[0] if existing else None
        if found and found["instance_id"] != instance_id:
            raise Ec2LookupError(f"set id {set_id} already belongs to instance {found['instance_id']}, not {instance_id}")
        instance = describe_instance(client, instance_id)
    except SnapshotSetError as exc:
        raise Ec2LookupError(str(exc)) from exc
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Ec2LookupError(f"reading instance {instance_id} and set {set_id} from EC2 failed: {exc}") from exc
    return {"client": client, "create_client": ec2_client(options, plugin_name, region, idempotent=False),
            "instance": instance, "existing": found, "set_id": set_id}


def create_shadow_snapshot_set(prepared: dict, request: dict) -> dict:
    """The EBS snapshot set of a shadow set's volumes, taken right after the shadow set exists (tagged ``unverified``).

    ``prepared`` comes from :func:`prepare_shadow_snapshot_set`; ``request``: ``volume_ids``, ``include_boot``,
    ``volume_metadata``, ``shadow_set_id``, ``backup_type``, ``policy``, ``tags``. Same tags, retries and
    reconciliation as the ec2_snapshot_set module; an existing set with that id is returned as it is.
    """
    if prepared["existing"]:
        return dict(prepared["existing"], changed=False, retries=[])
    instance = prepared["instance"]
    instance_id = instance["InstanceId"]
    set_id = prepared["set_id"]
    try:
        specification, dummy, tags = snapshot_sets.plan_snapshot_set(
            instance, {"volume_ids": request["volume_ids"], "include_boot": request.get("include_boot", False)},
            request.get("volume_metadata"), set_id=set_id, engine="shadow", consistency="unverified",
            created_at=datetime.now(timezone.utc), version=COLLECTION_VERSION, policy=request.get("policy") or "default",
            backup_type=request.get("backup_type"), shadow_set_id=request.get("shadow_set_id"), user_tags=request.get("tags") or {},
        )
        description = f"shadowsnap.ec2 set {set_id} of {instance_id} (unverified)"
        created, retries = snapshot_sets.create_snapshot_set(
            prepared["create_client"], prepared["client"], specification, description, tags, set_id)
    except (SnapshotSetError, snapshot_tags.TagSchemaError) as exc:
        raise Ec2LookupError(str(exc)) from exc
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise Ec2LookupError(f"creating the snapshot set {set_id} of {instance_id} failed: {exc}") from exc
    return dict(snapshot_sets.group_sets(created)[0], changed=True, retries=retries, tags=tags)
