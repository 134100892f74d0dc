# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""EC2 look-ups made by controller-side (action) plugins: an instance's EBS attachments.

Action plugins run on the controller, so they may call EC2 themselves. Nothing here decides how: the connection
settings (credentials, profile, region, endpoint, CA bundle, botocore config) are resolved by amazon.aws's own
plugin-side code (``AWSPluginBase.client``) from the same options amazon.aws modules take, with the same environment
fallbacks (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``...; botocore itself honours ``AWS_ENDPOINT_URL``);
the retry policy is the collection's ``module_utils.aws_client.READ_RETRY``; the DescribeInstances call and the
reading of the block-device mapping are ``module_utils.snapshot_sets``'s, which the snapshot modules use too.
"""

from __future__ import annotations

try:
    import botocore
except ImportError:  # pragma: no cover - reported by check_sdk() when a look-up is needed
    botocore = None

from ansible_collections.amazon.aws.plugins.module_utils.modules import aws_argument_spec
from ansible_collections.amazon.aws.plugins.plugin_utils.base import AWSPluginBase
from ansible_collections.shadowsnap.ec2.plugins.module_utils.aws_client import READ_RETRY
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


def ec2_client(options: dict, plugin_name: str, region: str | None = None):
    """An EC2 client with READ_RETRY (call it with ``aws_retry=True``) from amazon.aws-style options."""
    if botocore is None:
        raise Ec2LookupError(f"{plugin_name} needs boto3 and botocore on the controller to read the instance from EC2")
    settings = {name: options.get(name) for name in AWS_ARGUMENT_SPEC}
    if region:
        settings["region"] = region
    return _AwsOptions(settings, plugin_name).client("ec2", retry_decorator=READ_RETRY)


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
