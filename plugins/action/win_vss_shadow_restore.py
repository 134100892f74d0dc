# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_shadow_restore: bring restored volumes back to the shadow copies stored in them - revert, or expose
read-only - and give an exposure back (unexpose) before the volumes are discarded.

One round trip reads the shadow copies (Win32_ShadowCopy), one per shadow copy reverts or exposes it. A refusal is an
answer, not a crash: each shadow copy's ``outcome`` says what happened, and ``consistency`` is ``application`` only
when every one of them was reverted or exposed. A revert deletes the shadow copy, so with ``tag_volumes`` a volume
whose tags say an earlier run reverted it is not looked for again: a re-run after a controller died, or after a
restore that succeeded, reports it reverted and changes nothing. Documentation: plugins/modules/win_vss_shadow_restore.py.
"""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import restore_windows
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.action_ec2 import (
    AWS_ARGUMENT_SPEC,
    Ec2LookupError,
    ec2_client,
    record_restored_consistency,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError

PLUGIN_NAME = "shadowsnap.ec2.win_vss_shadow_restore"


class ActionModule(AgentAction):
    """Reverts restored volumes to their embedded shadow copies, or exposes those read-only."""

    ARGUMENT_SPEC = {
        "shadows": {"type": "list", "elements": "dict", "required": True, "options": {
            "shadow_id": {"type": "str", "required": True},
            "volume_id": {"type": "str"},
            "expose_path": {"type": "str"},
        }},
        "action": {"type": "str", "required": True, "choices": ["revert", "expose", "unexpose"]},
        "tool": {"type": "str", "default": "auto", "choices": ["auto", "diskshadow", "vssadmin"]},
        "fail_on_unavailable": {"type": "bool", "default": True},
        "tag_volumes": {"type": "bool", "default": False},
        **AWS_ARGUMENT_SPEC,
    }

    def run_on_host(self, args, transport, result, task_vars):
        try:
            entries = restore_windows.shadow_entries(args["shadows"], args["action"])
        except restore_windows.RestorePlanError as exc:
            raise TaskFailure(str(exc)) from exc
        pending = entries
        if args["action"] == "revert":
            pending = restore_windows.skip_reverted_before(entries, restore_windows.reverted_before(args, entries, PLUGIN_NAME, self.phase))
        records = {}
        if pending:
            with self.phase("read"):
                records = restore_windows.shadow_records(transport.request("shadows").result)
        for entry in pending:
            record = records.get(entry["shadow_id"])
            exposed_at = str((record or {}).get("ExposedName") or "").rstrip("\\").lower()
            if args["action"] == "unexpose" and exposed_at != entry["expose_path"].rstrip("\\").lower():
                entry["outcome"] = "unexposed"
                continue
            if record is None:
                restore_windows.mark_missing(entry)
                continue
            entry["volume"] = record.get("VolumeName")
            if args["action"] == "expose" and exposed_at == entry["expose_path"].rstrip("\\").lower():
                entry["outcome"] = "exposed"
                continue
            if self._task.check_mode:
                entry["outcome"] = "planned"
                continue
            self._carry_out(transport, args, entry, record)
        result["shadows"] = entries
        result["changed"] = any(entry.get("changed") for entry in entries) or (
            self._task.check_mode and any(entry["outcome"] == "planned" for entry in entries))
        reverted = [entry["volume_id"] for entry in entries if entry.get("changed") and entry["outcome"] == "reverted" and entry["volume_id"]]
        if reverted and args["tag_volumes"]:
            try:
                with self.phase("tag"):
                    record_restored_consistency(ec2_client(args, PLUGIN_NAME), reverted, "application")
            except Ec2LookupError as exc:
                raise TaskFailure(f"the volumes were reverted, but their tags could not say so: {exc}", shadows=entries) from exc
            result["tagged_volume_ids"] = sorted(reverted)
        result["consistency"] = restore_windows.shadows_consistency(entries)
        unavailable = restore_windows.unavailable(entries, args["action"])
        if unavailable and args["fail_on_unavailable"]:
            raise TaskFailure(unavailable)

    def _carry_out(self, transport, args, entry, record):
        if args["action"] == "revert":
            entry["tool"] = restore_windows.revert_tool(record) if args["tool"] == "auto" else args["tool"]
            request = ("shadow_revert", {"shadow_id": entry["shadow_id"], "tool": entry["tool"]})
        elif args["action"] == "expose":
            request = ("shadow_expose", {"shadow_id": entry["shadow_id"], "path": entry["expose_path"]})
        else:
            request = ("shadow_unexpose", {"path": entry["expose_path"]})
        try:
            with self.phase(args["action"]):
                transport.request(*request)
        except AgentOperationError as exc:
            restore_windows.mark_refused(entry, exc)
            return
        entry.update(outcome="unexposed" if args["action"] == "unexpose" else restore_windows.DONE[args["action"]],
                     changed=True)
