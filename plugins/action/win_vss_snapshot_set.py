# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_snapshot_set: the shadow engine - a persistent VSS shadow copy set held while the EBS snapshots are taken.

The rules live in ``plugin_utils/vss_session.py`` (pure, tested); the files in ``plugin_utils/diskshadow.py``; the
Windows side is the agent's session ops (docs/vss-session.md). Round trips: ``present`` 1 pre-flight batch + 1
``session_start`` (+1 ``file_read`` with ``fetch_metadata``); ``completed``, ``aborted`` and ``absent`` 1 each.
Documentation: plugins/modules/win_vss_snapshot_set.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import datetime, timedelta, timezone

from ansible.plugins.action import ActionBase

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import action_ec2, diskshadow, ebs_disks, vss, vss_session
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import (
    AgentError,
    AgentOperationError,
    AgentTransport,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import (
    VssParseError,
    parse_diskshadow_writers,
    parse_vssadmin_writers,
)

ARGUMENT_SPEC = {
    "state": {"type": "str", "default": "present", "choices": ["present", "completed", "aborted", "absent"]},
    "volumes": {"type": "list", "elements": "str", "default": []},
    "writers": {"type": "list", "elements": "str", "default": []},
    "all_data_volumes": {"type": "bool", "default": False},
    "backup_type": {"type": "str", "default": "copy", "choices": ["copy", "full"]},
    "required_writers": {"type": "list", "elements": "str"},
    "exclude_writers": {"type": "list", "elements": "str", "default": []},
    "restart_failed_writers": {"type": "bool", "default": False},
    "add_storage_volumes": {"type": "bool", "default": False},
    "add_companion_volumes": {"type": "bool", "default": True},
    "min_diff_area_free": {"type": "str", "default": vss_session.DEFAULT_MIN_DIFF_AREA_FREE},
    "run_id": {"type": "str"},
    "shadow_set_id": {"type": "str"},
    "keep_shadows": {"type": "bool", "default": False},
    "session_timeout": {"type": "int", "default": vss_session.DEFAULT_SESSION_TIMEOUT},
    "hold_timeout": {"type": "int", "default": vss_session.DEFAULT_HOLD_TIMEOUT},
    "in_progress_retries": {"type": "int", "default": vss.SNAPSHOT_SET_MAX_RETRIES},
    "in_progress_delay": {"type": "int", "default": vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS},
    "writer_error_retries": {"type": "int", "default": 0},
    "writer_error_delay": {"type": "int", "default": vss.WRITER_RETRY_AFTER_SECONDS},
    "cleanup_leftovers": {"type": "bool", "default": True},
    "leftover_age": {"type": "int"},
    "fetch_metadata": {"type": "path"},
    "block_device_mappings": {"type": "list", "elements": "dict"},
    "ebs_snapshot_set": {"type": "dict", "options": {
        "set_id": {"type": "str", "required": True},
        "instance_id": {"type": "str"},
        "include_boot": {"type": "bool", "default": False},
        "policy": {"type": "str", "default": "default"},
        "tags": {"type": "dict", "default": {}},
    }},
    **action_ec2.AWS_ARGUMENT_SPEC,
}
REQUIRED_IF = [
    ("state", "completed", ["run_id"]),
    ("state", "aborted", ["run_id"]),
    ("state", "absent", ["run_id", "shadow_set_id"], True),
]
# The most a session op waits on the host in one round trip (the agent's own bound is 900 s).
MAX_AGENT_WAIT = 900
SERVICE_RESTART_TIMEOUT = 120


class TaskFailure(Exception):
    """Ends the task with ``msg``; ``extra`` goes into the result."""

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


def _at_least(args: dict, minimum: int, *names: str) -> None:
    for name in names:
        if args[name] < minimum:
            raise TaskFailure(f"{name} must be {minimum} or more, not {args[name]}")


def parse_writers(writers_result: dict, source: str) -> list[dict]:
    """The writers of a ``writers`` answer, parsed and described (service, flags, volumes)."""
    output = (writers_result.get("outputs") or {}).get(source) or {}
    text = output.get("text")
    if not isinstance(text, str):
        raise TaskFailure(f"the agent returned no {source} text")
    parse = parse_diskshadow_writers if source.startswith("diskshadow") else parse_vssadmin_writers
    try:
        return [vss_session.describe_writer(writer) for writer in parse(text)]
    except VssParseError as exc:
        hint = ""
        if "found none" in str(exc):
            hint = (f" When every writer is gone at once, the COM+ Event System service ({vss.SERVICE_WHEN_ALL_WRITERS_MISSING}) "
                    f"is usually the cause: restart it, then the VSS service.")
        raise TaskFailure(f"{exc}{hint}") from exc


def _shadows_of_set(shadows_result: dict, set_id: str) -> list[str]:
    wanted = vss_session.normalise_guid(set_id)
    return [
        vss_session.normalise_guid(shadow.get("ID"))
        for shadow in shadows_result.get("shadows") or []
        if vss_session.normalise_guid(shadow.get("SetID")) == wanted
    ]


class ActionModule(ActionBase):
    """Creates, releases and deletes VSS shadow copy sets (the shadow engine). Check mode runs the pre-flight only."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC) | frozenset(
        alias for spec in ARGUMENT_SPEC.values() for alias in spec.get("aliases", ())
    )
    _requires_connection = True
    _supports_check_mode = True
    _supports_async = False
    _started = 0.0
    _timings: dict = {}
    _shadows = None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(ARGUMENT_SPEC, required_if=REQUIRED_IF)
        self._started = time.monotonic()
        self._timings = {}
        transport = AgentTransport(self, host=task_vars.get("inventory_hostname"))
        result.update(changed=False, state=args["state"])
        try:
            _at_least(args, 1, "session_timeout", "hold_timeout")
            _at_least(args, 0, "in_progress_retries", "in_progress_delay", "writer_error_retries", "writer_error_delay")
            if args["state"] == "present":
                self._present(args, transport, result)
            elif args["state"] in ("completed", "aborted"):
                self._release(args, transport, result)
            else:
                self._absent(args, transport, result)
        except TaskFailure as exc:
            result.update(exc.extra)
            result.update(failed=True, msg=f"{transport.host}: {exc}")
        except vss_session.SessionError as exc:
            result.update(failed=True, msg=f"{transport.host}: {exc}")
            if exc.hresult is not None:
                result.update(hresult=exc.hresult, hresult_name=vss.hresult_name(exc.hresult))
            if exc.run_id:
                result["run_id"] = exc.run_id
            status = exc.details.get("status") or {}
            if status.get("log"):
                result["diskshadow_log"] = status["log"]
            if exc.details.get("failure"):
                result["failure"] = exc.details["failure"]
        except AgentError as exc:
            result.update(failed=True, msg=str(exc))
            if isinstance(exc, AgentOperationError):
                result.update(hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error)
        result.update(transport.metadata())
        self._timings["total"] = round(time.monotonic() - self._started, 3)
        result["timings"] = self._timings
        result["elapsed"] = self._timings["total"]
        return result

    def _mark(self, name: str, since: float) -> float:
        now = time.monotonic()
        self._timings[name] = round(self._timings.get(name, 0) + now - since, 3)
        return now

    # ------------------------------------------------------------------------------------------------------ present

    def _options(self, args: dict) -> vss_session.SelectionOptions:
        return vss_session.SelectionOptions(
            volumes=args["volumes"],
            writers=args["writers"],
            all_data_volumes=args["all_data_volumes"],
            required_writers=args["required_writers"],
            exclude_writers=args["exclude_writers"],
            add_storage_volumes=args["add_storage_volumes"],
            add_companion_volumes=args["add_companion_volumes"],
            min_diff_area_free=args["min_diff_area_free"],
        )

    def _preflight(self, args, transport, result):
        """One batch of read ops; returns (facts, mapping, writers, plan, source)."""
        options = self._options(args)
        source = "diskshadow_detailed" if options.needs_components() else "vssadmin"
        since = time.monotonic()
        try:
            reply = transport.request_many([("facts", None), ("storage", None), ("writers", {"sources": [source]}), ("shadows", None)])
        except AgentOperationError as exc:
            if exc.op == "writers":
                raise TaskFailure(
                    f"the VSS writers could not be listed ({source}): {exc.reason}; the shadow engine needs Windows Server "
                    f"with diskshadow and a working VSS", hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error,
                ) from exc
            raise
        facts, storage, writers_result, shadows = reply.results
        problems = vss_session.check_host(facts)
        if problems:
            raise TaskFailure("; ".join(problems))
        try:
            attachments = ebs_disks.attachments_from_block_device_mappings(args.get("block_device_mappings"))
            mapping = ebs_disks.map_storage(storage, attachments)
        except ebs_disks.EbsMappingError as exc:
            raise TaskFailure(f"agent storage result: {exc}") from exc
        writers = parse_writers(writers_result, source)
        try:
            plan = vss_session.build_plan(mapping, writers, options, shadows.get("shadows"))
        except vss_session.PreflightError as exc:
            raise TaskFailure("the shadow set cannot be made safely: " + "; ".join(exc.problems),
                              preflight_problems=exc.problems, writers_source=source) from exc
        self._shadows = shadows.get("shadows")
        self._mark("preflight", since)
        result.update(instance_id=((facts.get("ec2") or {}).get("instance_id")), windows_hostname=facts.get("hostname"),
                      writers_source=source)
        return facts, mapping, writers, plan, source, options

    def _writers_ready(self, args, transport, result, mapping, writers, plan, source, options):
        """Fails on blocking writers, or restarts their services (restart_failed_writers) and reads them again."""
        health = vss_session.writer_health(writers, plan)
        if not health["blocking"]:
            return writers, plan, health
        reasons = "; ".join(writer["problem"] for writer in health["blocking"])
        if not args["restart_failed_writers"] or not health["services"]:
            raise TaskFailure(f"VSS writers not ready: {reasons}",
                              failed_writers=[writer["name"] for writer in health["blocking"]])
        if self._task.check_mode:
            result["would_restart_services"] = health["services"]
            return writers, plan, health
        since = time.monotonic()
        services = health["services"]
        restarted = transport.request("service_restart", {"names": services, "timeout_seconds": SERVICE_RESTART_TIMEOUT})
        result["restarted_services"] = restarted.result.get("services") or []
        reply = transport.request("writers", {"sources": [source]})
        writers = parse_writers(reply.result, source)
        try:
            plan = vss_session.build_plan(mapping, writers, options, self._shadows)
        except vss_session.PreflightError as exc:
            raise TaskFailure("after restarting " + ", ".join(services) + ": " + "; ".join(exc.problems),
                              preflight_problems=exc.problems) from exc
        self._mark("restart", since)
        health = vss_session.writer_health(writers, plan)
        if health["blocking"]:
            reasons = "; ".join(writer["problem"] for writer in health["blocking"])
            raise TaskFailure(f"VSS writers still not ready after restarting {', '.join(services)}: {reasons}",
                              failed_writers=[writer["name"] for writer in health["blocking"]])
        return writers, plan, health

    def _present(self, args, transport, result):
        facts, mapping, writers, plan, source, options = self._preflight(args, transport, result)
        ebs_request = args.get("ebs_snapshot_set")
        ebs_instance_id = ebs_request and (ebs_request.get("instance_id") or (facts.get("ec2") or {}).get("instance_id"))
        ebs_prepared = None
        if ebs_request:
            if not ebs_instance_id:
                raise TaskFailure("ebs_snapshot_set needs the instance id: the host's IMDS did not answer, so set "
                                  "ebs_snapshot_set.instance_id")
            try:
                ebs_prepared = action_ec2.prepare_shadow_snapshot_set(
                    args, "shadowsnap.ec2.win_vss_snapshot_set", (facts.get("ec2") or {}).get("region"), ebs_instance_id,
                    ebs_request["set_id"])
            except action_ec2.Ec2LookupError as exc:
                raise TaskFailure(f"the EBS snapshot set cannot be taken, so no shadow set was made: {exc}") from exc
        writers, plan, health = self._writers_ready(args, transport, result, mapping, writers, plan, source, options)
        warnings = plan.warnings + health["warnings"]
        result["storage_problems"] = list(mapping.get("problems") or [])
        for warning in warnings:
            self._display.warning(f"{transport.host}: {warning}")
        result.update(plan.as_result())
        result.update(required_writers=[entry["name"] for entry in plan.required_writers], preflight_warnings=warnings,
                      backup_type=args["backup_type"])
        if self._task.check_mode:
            session_plan = plan.session_plan("check-mode", args["backup_type"], args["hold_timeout"])
            result.update(changed=True, session_state="planned", script=diskshadow.diskshadow_script(session_plan),
                          writers=vss_session.writer_results(plan, writers, None))
            metadata, volume_ids, devices = vss_session.ec2_volume_metadata(plan.volumes, {})
            result.update(ec2_volume_metadata=metadata, ebs_volume_ids=volume_ids, device_names=devices)
            return

        runner = vss_session.SessionRunner(
            lambda op, op_args: transport.request(op, op_args).result,
            sleep=time.sleep,
            clock=time.monotonic,
            policy=vss_session.RetryPolicy(args["in_progress_retries"], args["in_progress_delay"],
                                           args["writer_error_retries"], args["writer_error_delay"]),
            session_timeout=args["session_timeout"],
        )
        since = time.monotonic()
        try:
            outcome = runner.create(plan, args["backup_type"], args["hold_timeout"], cleanup=args["cleanup_leftovers"],
                                    leftover_age=args["leftover_age"])
        except (vss_session.SessionError, AgentError):
            result.update(attempts=runner.attempts, cleanup_errors=runner.cleanup_errors)
            raise
        # Taken when the controller learned that the set exists: every EBS snapshot whose start time is later was taken
        # while the shadow copies existed.
        created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        self._mark("create", since)
        result.update(changed=True, run_id=outcome.run_id, session_state=outcome.status.get("state"), shadows_created_at=created_at,
                      shadow_set_id=outcome.shadow_set_id, shadows=outcome.shadows, attempts=outcome.attempts,
                      cleaned=outcome.cleaned, script=diskshadow.diskshadow_script(outcome.session_plan),
                      writers=vss_session.writer_results(plan, writers, outcome.status.get("log")))
        aliases = diskshadow.volume_aliases(plan.paths())
        for entry in result["volumes"]:
            entry.update(alias=aliases.get(entry["path"]), shadow_id=outcome.shadows.get(entry["path"]))
        metadata, volume_ids, devices = vss_session.ec2_volume_metadata(result["volumes"], outcome.shadows)
        result.update(ec2_volume_metadata=metadata, ebs_volume_ids=volume_ids, device_names=devices)
        if ebs_request:
            since = time.monotonic()
            request = dict(ebs_request, volume_ids=volume_ids, volume_metadata=metadata, shadow_set_id=outcome.shadow_set_id,
                           backup_type=args["backup_type"])
            try:
                result["ebs_set"] = action_ec2.create_shadow_snapshot_set(ebs_prepared, request)
            except action_ec2.Ec2LookupError as exc:
                runner.abort(outcome.run_id)
                result.update(session_state="aborted", cleanup_errors=runner.cleanup_errors)
                raise TaskFailure(f"the EBS snapshot set could not be taken, so the session {outcome.run_id} was aborted and "
                                  f"its shadow copies deleted: {exc}") from exc
            self._mark("ebs", since)
        if args["backup_type"] == "full":
            deadline = datetime.now(timezone.utc) + timedelta(seconds=args["hold_timeout"])
            result["release_deadline"] = deadline.isoformat(timespec="seconds")
        remote_cab = outcome.session_plan.run_dir() + "\\" + diskshadow.METADATA_FILE
        result["metadata"] = {"remote_path": remote_cab, "path": None, "size": None, "sha256": None}
        if args.get("fetch_metadata"):
            since = time.monotonic()
            try:
                result["metadata"].update(self._fetch(transport, remote_cab, args["fetch_metadata"], outcome.run_id))
            except (TaskFailure, AgentError) as exc:
                runner.abort(outcome.run_id)
                result.update(changed=True, session_state="aborted", cleanup_errors=runner.cleanup_errors)
                raise TaskFailure(f"fetching the backup components document {remote_cab} failed, so the session "
                                  f"{outcome.run_id} was aborted and its shadow copies deleted: {exc}") from exc
            self._mark("fetch", since)

    def _fetch(self, transport, remote_path, destination, run_id):
        reply = transport.request("file_read", {"path": remote_path})
        content = base64.b64decode(reply.result.get("content_base64") or "")
        digest = hashlib.sha256(content).hexdigest()
        if len(content) != reply.result.get("size") or digest != (reply.result.get("sha256") or "").lower():
            raise TaskFailure(f"{remote_path} arrived damaged ({len(content)} bytes, sha256 {digest}; the host says "
                              f"{reply.result.get('size')} bytes, {reply.result.get('sha256')})")
        path = destination
        if os.path.isdir(path) or path.endswith(os.sep):
            path = os.path.join(path, run_id + ".cab")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
        return {"path": path, "size": len(content), "sha256": digest}

    # ------------------------------------------------------------------------------------------ completed / aborted

    def _release(self, args, transport, result):
        run_id = args["run_id"]
        decision = "ok" if args["state"] == "completed" else "abort"
        delete = True if decision == "abort" else not args["keep_shadows"]
        result["run_id"] = run_id
        since = time.monotonic()
        if self._task.check_mode:
            status = transport.request("session_status", {"run_id": run_id, "wait_seconds": 0}).result
            state = vss_session.session_state(status)
            result.update(session_state=state, shadow_set_id=status.get("shadow_set_id"), shadows=status.get("shadows") or {},
                          changed=state != "missing" and not status.get("release"))
            if state == "missing" and decision == "ok":
                raise TaskFailure(f"session {run_id} does not exist on the host: nothing to complete")
            return
        status = transport.request("session_release", {
            "run_id": run_id, "decision": decision, "delete_shadows": delete,
            "wait_seconds": min(MAX_AGENT_WAIT, args["session_timeout"]),
        }).result
        self._mark("release", since)
        outcome = vss_session.judge_release(status, decision, run_id)
        result.update(
            changed=outcome["changed"],
            session_state=outcome["state"],
            decision=status.get("decision"),
            backup_type=outcome["backup_type"],
            backup_complete_sent=outcome["backup_complete_sent"],
            shadow_set_id=vss_session.normalise_guid(status.get("shadow_set_id")),
            shadows_verified=outcome["verified"],
            missing_shadow_ids=outcome["missing_shadow_ids"],
            present_shadow_ids=status.get("present_shadow_ids") or [],
            deleted_shadow_ids=status.get("deleted_shadow_ids") or [],
            kept_shadows=not delete,
        )
        if not outcome["ok"]:
            failure = vss_session.failure_from_log(status.get("log"))
            extra = {"diskshadow_log": status.get("log")}
            if failure:
                extra.update(failure=failure, hresult=failure["hresult"], hresult_name=failure["name"])
            raise TaskFailure(outcome["message"], **extra)

    # ------------------------------------------------------------------------------------------------------- absent

    def _absent(self, args, transport, result):
        deleted = []
        since = time.monotonic()
        if args.get("shadow_set_id"):
            set_id = vss_session.normalise_guid(args["shadow_set_id"])
            if set_id is None:
                raise TaskFailure(f"shadow_set_id {args['shadow_set_id']!r} is not a GUID")
            result["shadow_set_id"] = set_id
            if self._task.check_mode:
                deleted += _shadows_of_set(transport.request("shadows").result, set_id)
            else:
                deleted += transport.request("shadow_delete", {"shadow_set_id": set_id}).result.get("deleted_shadow_ids") or []
        if args.get("run_id"):
            result["run_id"] = args["run_id"]
            if self._task.check_mode:
                status = transport.request("session_status", {"run_id": args["run_id"], "wait_seconds": 0}).result
                if status.get("shadow_set_id") and status.get("state") != "missing":
                    deleted += [vss_session.normalise_guid(value) for value in (status.get("shadows") or {}).values()]
            else:
                status = transport.request("session_release", {
                    "run_id": args["run_id"], "decision": "abort", "delete_shadows": True,
                    "wait_seconds": min(MAX_AGENT_WAIT, args["session_timeout"]),
                }).result
                deleted += status.get("deleted_shadow_ids") or []
                result["session_state"] = status.get("state")
                result.setdefault("shadow_set_id", vss_session.normalise_guid(status.get("shadow_set_id")))
        self._mark("delete", since)
        unique = []
        for shadow_id in deleted:
            if shadow_id and shadow_id not in unique:
                unique.append(shadow_id)
        result.update(changed=bool(unique), deleted_shadow_ids=unique)
