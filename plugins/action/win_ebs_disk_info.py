# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_disk_info: which EBS volume holds which Windows volume, cross-checked against EC2.

One agent round trip (a batch of ``facts`` and ``storage``); the EC2 block-device mapping comes from the
``block_device_mappings`` option or from one DescribeInstances call made on the controller, in the Region of
plugin_utils/host_identity.py. Documentation: plugins/modules/win_ebs_disk_info.py.
"""

from __future__ import annotations

import re

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import ebs_disks
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.shadow_plan import find_volume, tag_paths
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.action_ec2 import (
    AWS_ARGUMENT_SPEC,
    Ec2LookupError,
    ec2_client,
    instance_attachments,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.host_identity import IdentityError, resolve_identity

PLUGIN_NAME = "shadowsnap.ec2.win_ebs_disk_info"
_VOLUME_ID_RE = re.compile(r"^vol-[0-9a-f]+$")


def ebs_selection(volumes: list[dict], attachments: list[dict], refs: list[str], include_boot: bool) -> dict:
    """The EBS volumes that hold what ``refs`` name (drive letters, mount points, EBS volume ids, device names) and the
    Windows paths on each, as the tag schema records them. A Windows volume spanning several EBS volumes brings all
    of them, and every Windows volume on a chosen EBS volume is recorded on it: an EBS snapshot never splits a disk."""
    by_device = {ebs_disks.device_key(a.get("device")): a.get("volume_id") for a in attachments if a.get("volume_id")}
    chosen: list[str] = []
    for ref in refs:
        text = str(ref or "").strip()
        if _VOLUME_ID_RE.match(text):
            ids = [text]
        elif ebs_disks.device_key(text) in by_device:
            ids = [by_device[ebs_disks.device_key(text)]]
        else:
            volume = find_volume(text, volumes)
            if volume is None:
                known = sorted(p for v in volumes for p in tag_paths(v))
                raise TaskFailure(f"volume {text!r} is not on this host (its volumes: {', '.join(known) or 'none'})")
            if not volume.get("all_ebs") or not volume.get("ebs_volume_ids"):
                raise TaskFailure(f"volume {text!r} is not (wholly) on EBS volumes with a known id; it cannot be snapshotted")
            ids = list(volume["ebs_volume_ids"])
        chosen.extend(volume_id for volume_id in ids if volume_id not in chosen)
    if include_boot:
        for volume in volumes:
            if volume.get("is_boot") or volume.get("is_system"):
                chosen.extend(v for v in volume.get("ebs_volume_ids") or [] if v not in chosen)
    metadata: dict = {}
    pending = list(chosen)
    while pending:
        volume_id = pending.pop(0)
        entry = metadata.setdefault(volume_id, {"paths": []})
        for volume in volumes:
            if volume_id in (volume.get("ebs_volume_ids") or []):
                entry["paths"].extend(path for path in tag_paths(volume) if path not in entry["paths"])
                for other in volume["ebs_volume_ids"]:
                    if other not in metadata and other not in pending:
                        pending.append(other)
    return {"volume_ids": sorted(metadata), "volume_metadata": metadata}


class ActionModule(AgentAction):
    """Maps Windows volumes to EBS volumes and cross-checks them with EC2. Read-only: runs in check mode too."""

    ARGUMENT_SPEC = {
        "instance_id": {"type": "str"},
        "block_device_mappings": {"type": "list", "elements": "dict"},
        "fail_on_mismatch": {"type": "bool", "default": True},
        "select_volumes": {"type": "list", "elements": "str"},
        "include_boot": {"type": "bool", "default": False},
        **AWS_ARGUMENT_SPEC,
    }

    def run_on_host(self, args, transport, result, task_vars):
        with self.phase("read"):
            reply = transport.request_many([("facts", None), ("storage", None)])
        facts, storage = reply.results
        try:
            instance = resolve_identity(facts.get("ec2"), args.get("instance_id"), self.explicit_option("region"),
                                        task_vars, args.get("region"))
        except IdentityError as exc:
            raise TaskFailure(str(exc)) from exc
        result["instance"] = instance

        try:
            with self.phase("ec2"):
                attachments, source, ec2_instance = self._attachments(args, instance)
        except (Ec2LookupError, ebs_disks.EbsMappingError) as exc:
            raise TaskFailure(str(exc)) from exc
        result["block_device_mapping_source"] = source
        if ec2_instance:
            instance["state"] = ec2_instance.get("state")
            instance["availability_zone"] = instance["availability_zone"] or ec2_instance.get("availability_zone")

        try:
            mapping = ebs_disks.map_storage(storage, attachments)
        except ebs_disks.EbsMappingError as exc:
            raise TaskFailure(f"agent storage result: {exc}") from exc
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
        if args.get("select_volumes") is not None:
            result["ebs_selection"] = ebs_selection(mapping["volumes"], result["attachments"], args["select_volumes"],
                                                    args["include_boot"])
        for problem in mapping["problems"]:
            self._display.warning(f"{transport.host}: {problem}")
        if not check["ok"] and args["fail_on_mismatch"]:
            raise TaskFailure(
                f"Windows disks and the EBS volumes EC2 lists as attached to {instance['instance_id'] or 'the instance'} "
                f"disagree: " + "; ".join(check["errors"])
            )

    @staticmethod
    def _attachments(args: dict, instance: dict) -> tuple[list[dict], str, dict | None]:
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
