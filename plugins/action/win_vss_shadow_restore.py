# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_shadow_restore: bring restored volumes back to the shadow copies stored in them - revert, or expose
read-only.

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
    reverted_volumes,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss import format_hresult

DONE = {"revert": "reverted", "expose": "exposed"}
PLUGIN_NAME = "shadowsnap.ec2.win_vss_shadow_restore"


class ActionModule(AgentAction):
    """Reverts restored volumes to their embedded shadow copies, or exposes those read-only."""

    ARGUMENT_SPEC = {
        "shadows": {"type": "list", "elements": "dict", "required": True, "options": {
            "shadow_id": {"type": "str", "required": True},
            "volume_id": {"type": "str"},
            "expose_path": {"type": "str"},
        }},
        "action": {"type": "str", "required": True, "choices": ["revert", "expose"]},
        "tool": {"type": "str", "default": "auto", "choices": ["auto", "diskshadow", "vssadmin"]},
        "fail_on_unavailable": {"type": "bool", "default": True},
        "tag_volumes": {"type": "bool", "default": False},
        **AWS_ARGUMENT_SPEC,
    }

    def run_on_host(self, args, transport, result, task_vars):
        entries = []
        for item in args["shadows"]:
            shadow_id = normalise_guid(item["shadow_id"])
            if shadow_id is None:
                raise TaskFailure(f"{item['shadow_id']!r} is not a shadow copy id")
            if args["action"] == "expose" and not item.get("expose_path"):
                raise TaskFailure(f"exposing {shadow_id} needs its expose_path (a drive letter X: or a folder)")
            entries.append({"shadow_id": shadow_id, "volume_id": item.get("volume_id"), "expose_path": item.get("expose_path"),
                            "outcome": None, "tool": None, "hresult": None, "hresult_name": None, "message": None})
        reverted_before = self._reverted_before(args, entries)
        pending = [entry for entry in entries if entry["volume_id"] not in reverted_before]
        for entry in entries:
            if entry["volume_id"] in reverted_before:
                entry.update(outcome="reverted", message="reverted by an earlier run (the volume's tags say so)")
        records = {}
        if pending:
            with self.phase("read"):
                records = restore_windows.shadow_records(transport.request("shadows").result)
        for entry in pending:
            record = records.get(entry["shadow_id"])
            if record is None:
                entry.update(outcome="missing", message="the shadow copy is not on this host (gone, or its volume is not "
                                                        "online read-write)")
                continue
            entry["volume"] = record.get("VolumeName")
            if args["action"] == "expose" and str(record.get("ExposedName") or "").rstrip("\\").lower() == entry["expose_path"].rstrip("\\").lower():
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
        done = [entry for entry in entries if entry["outcome"] in ("reverted", "exposed")]
        result["consistency"] = "application" if entries and len(done) == len(entries) else "crash"
        unavailable = [entry for entry in entries if entry["outcome"] in ("missing", "refused")]
        if unavailable and args["fail_on_unavailable"]:
            raise TaskFailure(f"could not {args['action']} " + "; ".join(
                f"{entry['shadow_id']}: {entry['outcome']} ({entry['message']})" for entry in unavailable)
                + ": the volumes hold the crash-consistent image only")

    def _reverted_before(self, args, entries):
        """The volumes of ``entries`` an earlier run reverted, from their tags (only with tag_volumes, which writes them)."""
        volume_ids = [entry["volume_id"] for entry in entries if entry["volume_id"]]
        if args["action"] != "revert" or not args["tag_volumes"] or not volume_ids:
            return set()
        try:
            with self.phase("lookup"):
                return reverted_volumes(ec2_client(args, PLUGIN_NAME), volume_ids)
        except Ec2LookupError as exc:
            raise TaskFailure(f"cannot tell whether an earlier run reverted the volumes: {exc}") from exc

    def _carry_out(self, transport, args, entry, record):
        if args["action"] == "revert":
            entry["tool"] = restore_windows.revert_tool(record) if args["tool"] == "auto" else args["tool"]
            request = ("shadow_revert", {"shadow_id": entry["shadow_id"], "tool": entry["tool"]})
        else:
            request = ("shadow_expose", {"shadow_id": entry["shadow_id"], "path": entry["expose_path"]})
        try:
            with self.phase(args["action"]):
                transport.request(*request)
        except AgentOperationError as exc:
            entry.update(outcome="refused", message=exc.reason,
                         hresult=format_hresult(exc.hresult) if exc.hresult is not None else None,
                         hresult_name=exc.hresult_name)
            return
        entry.update(outcome=DONE[args["action"]], changed=True)
