# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_disk_info: which EBS volume holds which Windows volume, cross-checked against EC2.

One agent round trip (a batch of ``facts`` and ``storage``); the EC2 block-device mapping comes from the
``block_device_mappings`` option or from one DescribeInstances call made on the controller.
Documentation: plugins/modules/win_ebs_disk_info.py.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import ebs_disks
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentError,
    AgentOperationError,
    AgentTransport,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.action_ec2 import (
    AWS_ARGUMENT_SPEC,
    Ec2LookupError,
    ec2_client,
    instance_attachments,
)

PLUGIN_NAME = "shadowsnap.ec2.win_ebs_disk_info"

ARGUMENT_SPEC = {
    "instance_id": {"type": "str"},
    "block_device_mappings": {"type": "list", "elements": "dict"},
    "fail_on_mismatch": {"type": "bool", "default": True},
}
ARGUMENT_SPEC.update(AWS_ARGUMENT_SPEC)


class IdentityError(Exception):
    """The instance cannot be identified, or the sources of its identity contradict each other."""


def _inventory_identity(task_vars: dict) -> tuple[str | None, str | None]:
    """instance_id and region from host variables as amazon.aws.aws_ec2 sets them (instance_id, placement.region)."""
    placement = task_vars.get("placement")
    region = placement.get("region") if isinstance(placement, dict) else None
    instance_id = task_vars.get("instance_id")
    return (instance_id if isinstance(instance_id, str) else None), region


def resolve_identity(imds: dict | None, option_instance_id: str | None, option_region: str | None,
                     task_vars: dict, env_region: str | None) -> dict:
    """The instance this host is: IMDSv2 (from the host itself) first; options and inventory variables when IMDS
    does not answer. An explicit option that contradicts IMDS is an error: the task would check the wrong instance.
    """
    imds = imds or {}
    inventory_instance_id, inventory_region = _inventory_identity(task_vars)
    imds_instance_id, imds_region = imds.get("instance_id"), imds.get("region")
    if option_instance_id and imds_instance_id and option_instance_id != imds_instance_id:
        raise IdentityError(
            f"the host says (IMDSv2) it is {imds_instance_id}, the task says instance_id={option_instance_id}"
        )
    if option_region and imds_region and option_region != imds_region:
        raise IdentityError(f"the host says (IMDSv2) it runs in {imds_region}, the task says region={option_region}")
    if imds_instance_id:
        source = "imds"
    elif option_instance_id:
        source = "option"
    elif inventory_instance_id:
        source = "inventory"
    else:
        source = None
    return {
        "instance_id": imds_instance_id or option_instance_id or inventory_instance_id,
        "region": option_region or imds_region or inventory_region or env_region,
        "availability_zone": imds.get("availability_zone"),
        "account_id": imds.get("account_id"),
        "instance_type": imds.get("instance_type"),
        "identity_source": source,
    }


class ActionModule(ActionBase):
    """Maps Windows volumes to EBS volumes and cross-checks them with EC2. Read-only: runs in check mode too."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC) | frozenset(
        alias for spec in ARGUMENT_SPEC.values() for alias in spec.get("aliases", ())
    )
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC)
        started = time.monotonic()
        transport = AgentTransport(self, host=task_vars.get("inventory_hostname"))
        result["changed"] = False

        try:
            reply = transport.request_many([("facts", None), ("storage", None)])
        except AgentError as exc:
            return self._finish(result, transport, started, failure=str(exc), exc=exc)
        facts, storage = reply.results

        try:
            instance = resolve_identity(
                facts.get("ec2"),
                args.get("instance_id"),
                self._task.args.get("region") or self._task.args.get("aws_region"),
                task_vars,
                args.get("region"),
            )
        except IdentityError as exc:
            return self._finish(result, transport, started, failure=f"{transport.host}: {exc}")
        result["instance"] = instance

        try:
            attachments, source, ec2_instance = self._attachments(args, instance)
        except (Ec2LookupError, ebs_disks.EbsMappingError) as exc:
            return self._finish(result, transport, started, failure=f"{transport.host}: {exc}")
        result["block_device_mapping_source"] = source
        if ec2_instance:
            instance["state"] = ec2_instance.get("state")
            instance["availability_zone"] = instance["availability_zone"] or ec2_instance.get("availability_zone")

        try:
            mapping = ebs_disks.map_storage(storage, attachments)
        except ebs_disks.EbsMappingError as exc:
            return self._finish(result, transport, started, failure=f"{transport.host}: agent storage result: {exc}")
        check = ebs_disks.cross_check(mapping, attachments, instance["instance_id"])
        result.update(
            platform=mapping["platform"],
            volumes=mapping["volumes"],
            disks=mapping["disks"],
            storage_pools=mapping["storage_pools"],
            shadow_storage=mapping["shadow_storage"],
            problems=mapping["problems"],
            attachments=check.pop("attachments"),
            cross_check=check,
            windows_hostname=facts.get("hostname"),
        )
        for problem in mapping["problems"]:
            self._display.warning(f"{transport.host}: {problem}")
        failure = None
        if not check["ok"] and args["fail_on_mismatch"]:
            failure = (
                f"{transport.host}: Windows disks and the EBS volumes EC2 lists as attached to "
                f"{instance['instance_id'] or 'the instance'} disagree: " + "; ".join(check["errors"])
            )
        return self._finish(result, transport, started, failure=failure)

    def _attachments(self, args: dict, instance: dict) -> tuple[list[dict], str, dict | None]:
        """(attachments, where they come from, the EC2 instance summary or None)."""
        if args.get("block_device_mappings") is not None:
            return ebs_disks.attachments_from_block_device_mappings(args["block_device_mappings"]), "option", None
        if not instance["instance_id"]:
            raise Ec2LookupError(
                "cannot tell which EC2 instance this host is: IMDSv2 did not answer from the host; set instance_id "
                "(and region), or pass block_device_mappings (amazon.aws.ec2_instance_info's block_device_mappings)"
            )
        client = ec2_client(args, PLUGIN_NAME, region=instance["region"])
        attachments, summary = instance_attachments(client, instance["instance_id"])
        return attachments, "ec2", summary

    @staticmethod
    def _finish(result, transport, started, failure=None, exc=None):
        if failure:
            result.update(failed=True, msg=failure)
        if isinstance(exc, AgentOperationError):
            result.update(hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error)
        result.update(transport.metadata())
        result["elapsed"] = round(time.monotonic() - started, 3)
        return result
