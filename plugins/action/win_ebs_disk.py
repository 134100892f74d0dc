# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_disk: the disks of EBS volumes online (with their drive letters and mount folders) or offline.

One round trip reads the storage (again every ``poll_seconds`` until ``timeout`` while a volume's disk has not
appeared yet), one brings the disks online or takes them offline; the decisions (collisions, letters in use) are
plugin_utils/restore_windows.py's. Documentation: plugins/modules/win_ebs_disk.py.
"""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import restore_windows
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure


class ActionModule(AgentAction):
    """Brings restored disks online or takes disks offline, by EBS volume id."""

    ARGUMENT_SPEC = {
        "volumes": {"type": "list", "elements": "dict", "required": True, "options": {
            "volume_id": {"type": "str", "required": True},
            "paths": {"type": "list", "elements": "str", "default": []},
        }},
        "state": {"type": "str", "default": "online", "choices": ["online", "offline"]},
        "allow_resign": {"type": "bool", "default": False},
        "read_only": {"type": "bool", "default": False},
        "timeout": {"type": "int", "default": 60},
        "poll_seconds": {"type": "int", "default": 2},
    }

    def run_on_host(self, args, transport, result, task_vars):
        self.require_at_least(args, 0, "timeout")
        self.require_at_least(args, 1, "poll_seconds")
        wanted = [volume["volume_id"] for volume in args["volumes"]]
        with self.phase("read"):
            storage = restore_windows.storage_with_disks(transport, wanted if args["state"] == "online" else [],
                                                         args["timeout"], args["poll_seconds"])
        try:
            if args["state"] == "offline":
                numbers, entries = restore_windows.plan_offline(storage, wanted)
                request = ("disk_offline", {"numbers": numbers}) if numbers else None
            else:
                disks, entries = restore_windows.plan_online(storage, args["volumes"], args["allow_resign"], args["read_only"])
                request = ("disk_online", {"disks": disks}) if disks else None
        except restore_windows.RestorePlanError as exc:
            raise TaskFailure(str(exc)) from exc
        result["disks"] = entries
        if request is None or self._task.check_mode:
            result["changed"] = request is not None
            return
        with self.phase(request[0]):
            disks = transport.request(*request).result.get("disks")
        result["changed"] = True
        failed = restore_windows.apply_disk_states(entries, disks, args["state"])
        if failed:
            raise TaskFailure(f"Windows did not take {', '.join(failed)} {args['state']}")
