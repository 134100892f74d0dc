# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_handover: the Windows half of an in-place restore in as few round trips as the decisions allow.

``state: released`` (before the swap): one round trip reads the writers and the storage, one stops the services that
own the volumes and takes their disks offline (a sequence: a failed stop takes nothing offline). ``state: restored``
(after the swap): one reads the storage (again while a disk has not appeared), one brings the disks online and reads
the shadow copies they carry, one reverts them, starts the services and reads the storage to verify. With ``record``
the stop leaves on the host which services it found running and the start starts those too, so a re-run after a
controller died starts what the first run stopped; with ``tag_volumes`` a volume whose tags say an earlier run reverted
it is left alone (its shadow copy went with the revert). The decisions are
those of win_service_set, win_ebs_disk and win_vss_shadow_restore (plugin_utils/restore_windows.py); only the
grouping into sequences is this plugin's. Documentation: plugins/modules/win_ebs_handover.py.
"""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import restore_windows, vss_writers
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.action_ec2 import (
    AWS_ARGUMENT_SPEC,
    Ec2LookupError,
    ec2_client,
    record_restored_consistency,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentOperationError

PLUGIN_NAME = "shadowsnap.ec2.win_ebs_handover"
WRITERS_SOURCE = "diskshadow_detailed"
VOLUME_OPTIONS = {"volume_id": {"type": "str", "required": True}, "paths": {"type": "list", "elements": "str", "default": []}}


def agent_failure(exc: AgentOperationError, state: str, **extra) -> TaskFailure:
    """The task's failure for an op of a sequence the agent reported failed, saying what state the host was left in."""
    return TaskFailure(f"agent op {exc.op!r} failed: {exc.reason} ({state})", hresult=exc.hresult,
                       hresult_name=exc.hresult_name, agent_error=exc.error, **extra)


class ActionModule(AgentAction):
    """Releases a host's volumes for a swap (services stopped, disks offline), or takes the restored ones back."""

    ARGUMENT_SPEC = {
        "state": {"type": "str", "required": True, "choices": ["released", "restored"]},
        "volumes": {"type": "list", "elements": "dict", "required": True, "options": VOLUME_OPTIONS},
        "services": {"type": "list", "elements": "str", "default": []},
        "shadows": {"type": "list", "elements": "dict", "default": [], "options": {
            "shadow_id": {"type": "str", "required": True},
            "volume_id": {"type": "str"},
        }},
        "allow_resign": {"type": "bool", "default": False},
        "fail_on_unavailable": {"type": "bool", "default": True},
        "tag_volumes": {"type": "bool", "default": False},
        "timeout": {"type": "int", "default": 60},
        "record": {"type": "str", "default": ""},
        "poll_seconds": {"type": "int", "default": 2},
        **AWS_ARGUMENT_SPEC,
    }

    def run_on_host(self, args, transport, result, task_vars):
        self.require_at_least(args, 1, "timeout", "poll_seconds")
        if args["state"] == "released":
            self._release(args, transport, result)
        else:
            self._restore(args, transport, result)

    # ---------------------------------------------------------------------------------------------- released
    def _release(self, args, transport, result):
        paths = [path for volume in args["volumes"] for path in volume["paths"]]
        with self.phase("read"):
            writers_answer, storage = transport.request_many([("writers", {"sources": [WRITERS_SOURCE]}), ("storage", None)]).results
        try:
            writers = vss_writers.read_writers(writers_answer, WRITERS_SOURCE)
        except vss_writers.WritersError as exc:
            raise TaskFailure(f"cannot tell which services own {', '.join(paths)}: {exc}") from exc
        services, unknown = restore_windows.services_for_volumes(writers, storage, paths)
        if unknown:
            raise TaskFailure(f"the writers {', '.join(unknown)} have files on {', '.join(paths)} but their service is not "
                              f"known: name it in services")
        names = list(args["services"]) + [name for name in services if name.lower() not in (n.lower() for n in args["services"])]
        try:
            numbers, entries = restore_windows.plan_offline(storage, [volume["volume_id"] for volume in args["volumes"]])
        except restore_windows.RestorePlanError as exc:
            raise TaskFailure(str(exc)) from exc
        result.update(writer_services=services, names=names, disks=entries, services=[], were_running=[], recorded=[])
        # With a record the stop is sent even with no service to stop: its answer says what an earlier stop recorded.
        stop = bool(names or args["record"])
        steps = ([("service_set", restore_windows.service_set_request(names, "stopped", args["timeout"], args["record"]))] if stop else []) + (
            [("disk_offline", {"numbers": numbers})] if numbers else [])
        result["changed"] = bool(names or numbers)
        if not steps or self._task.check_mode:
            return
        try:
            with self.phase("release"):
                answers = transport.request_sequence(steps).results
        except AgentOperationError as exc:
            if exc.op == "disk_offline" and stop:
                result.update(restore_windows.services_set(exc.completed[0]))
            state = "the services were stopped" if exc.op == "disk_offline" and names else (
                "no volume was taken offline")
            raise agent_failure(exc, state, services=result["services"], were_running=result["were_running"]) from exc
        if stop:
            result.update(restore_windows.services_set(answers[0]))
        if numbers:
            failed = restore_windows.apply_disk_states(entries, answers[-1].get("disks"), "offline")
            if failed:
                raise TaskFailure(f"Windows did not take {', '.join(failed)} offline", services=result["services"],
                                  were_running=result["were_running"])

    # ---------------------------------------------------------------------------------------------- restored
    def _restore(self, args, transport, result):
        wanted = [volume["volume_id"] for volume in args["volumes"]]
        try:
            shadows = restore_windows.shadow_entries(args["shadows"], "revert")
        except restore_windows.RestorePlanError as exc:
            raise TaskFailure(str(exc)) from exc
        pending = restore_windows.skip_reverted_before(shadows, restore_windows.reverted_before(args, shadows, PLUGIN_NAME, self.phase))
        with self.phase("read"):
            storage = restore_windows.storage_with_disks(transport, wanted, args["timeout"], args["poll_seconds"])
        try:
            disks, entries = restore_windows.plan_online(storage, args["volumes"], args["allow_resign"], False)
        except restore_windows.RestorePlanError as exc:
            raise TaskFailure(str(exc)) from exc
        result.update(disks=entries, shadows=shadows, services=[], recorded=[],
                      changed=bool(disks) or bool(pending) or bool(args["services"]))
        if self._task.check_mode:
            return
        steps = ([("disk_online", {"disks": disks})] if disks else []) + ([("shadows", None)] if pending else [])
        answers = []
        if steps:
            with self.phase("online"):
                answers = list(transport.request_sequence(steps).results)
        failed = restore_windows.apply_disk_states(entries, answers[0].get("disks") if disks else [], "online")
        if failed:
            raise TaskFailure(f"Windows did not take {', '.join(failed)} online", disks=entries, shadows=shadows)
        records = restore_windows.shadow_records(answers[-1]) if pending else {}
        found = []
        for entry in pending:
            record = records.get(entry["shadow_id"])
            if record is None:
                restore_windows.mark_missing(entry)
                continue
            entry.update(volume=record.get("VolumeName"), tool=restore_windows.revert_tool(record))
            found.append(entry)
        self._stop_unless_acceptable(args, shadows, entries, pending_reverts=bool(found))
        storage = self._revert_and_start(args, transport, result, found)
        self._tag_reverted(args, shadows)
        result["changed"] = bool(disks) or any(entry.get("changed") for entry in shadows) or any(
            service.get("previous_status") != service.get("status") for service in result["services"])
        if shadows:
            result["consistency"] = restore_windows.shadows_consistency(shadows)
        seen = restore_windows.disks_by_volume(storage)
        absent = [volume_id for volume_id in wanted if volume_id not in seen or seen[volume_id]["offline"]]
        if absent:
            raise TaskFailure(f"Windows does not show {', '.join(absent)} online", disks=entries, shadows=shadows)

    def _stop_unless_acceptable(self, args, shadows, entries, pending_reverts):
        """TaskFailure, before any service starts, when a shadow copy is missing or refused and that is not accepted."""
        unavailable = restore_windows.unavailable(shadows, "revert")
        if unavailable and args["fail_on_unavailable"]:
            self._tag_reverted(args, shadows)
            raise TaskFailure(unavailable + (" (the other reverts were not tried)" if pending_reverts else ""),
                              disks=entries, shadows=shadows)

    def _revert_and_start(self, args, transport, result, pending):
        """Reverts the pending shadow copies, starts the services and reads the storage, in as few sequences as the
        refusals allow (a refused revert ends its sequence; the rest is sent again when crash consistency is
        accepted). Returns the storage read last."""
        start = [("service_set", restore_windows.service_set_request(args["services"], "running", args["timeout"], args["record"]))] if (
            args["services"] or args["record"]) else []
        while True:
            steps = [("shadow_revert", {"shadow_id": entry["shadow_id"], "tool": entry["tool"]}) for entry in pending]
            try:
                with self.phase("revert and start"):
                    answers = transport.request_sequence(steps + start + [("storage", None)]).results
            except AgentOperationError as exc:
                done = len(exc.completed)
                for entry in pending[:done]:
                    entry.update(outcome="reverted", changed=True)
                if done >= len(pending):
                    self._tag_reverted(args, result["shadows"])
                    raise agent_failure(exc, "the shadow copies were reverted", shadows=result["shadows"],
                                        disks=result["disks"]) from exc
                restore_windows.mark_refused(pending[done], exc)
                pending = pending[done + 1:]
                self._stop_unless_acceptable(args, result["shadows"], result["disks"], pending_reverts=bool(pending))
                continue
            for entry in pending:
                entry.update(outcome="reverted", changed=True)
            if start:
                started = restore_windows.services_set(answers[len(pending)])
                result.update(services=started["services"], recorded=started["recorded"])
            return answers[-1]

    def _tag_reverted(self, args, shadows):
        reverted = sorted(entry["volume_id"] for entry in shadows if entry.get("changed") and entry["outcome"] == "reverted" and entry["volume_id"])
        if not reverted or not args["tag_volumes"]:
            return
        try:
            with self.phase("tag"):
                record_restored_consistency(ec2_client(args, PLUGIN_NAME), reverted, "application")
        except Ec2LookupError as exc:
            raise TaskFailure(f"the volumes were reverted, but their tags could not say so: {exc}", shadows=shadows) from exc
