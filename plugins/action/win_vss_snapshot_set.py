# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_vss_snapshot_set: the shadow engine - a persistent VSS shadow copy set held while the EBS snapshots are taken.

Orchestration only: the pre-flight rules live in ``plugin_utils/shadow_plan.py``, the writer rules in
``plugin_utils/vss_writers.py``, the session and the release verdict in ``plugin_utils/shadow_session.py``, the files in
``plugin_utils/diskshadow.py`` (all pure, tested); the Windows side is the agent's session ops (docs/vss-session.md).
Round trips: ``present`` 1 pre-flight batch (with the session directory's facts) + 1 ``session_start`` (+1 ``shadows``
listing after the EBS snapshot set, for its proof in ``plugin_utils/shadow_proof.py``; +1 ``file_read`` with
``fetch_metadata``); ``completed``, ``aborted`` and ``absent`` 1 each. Documentation: plugins/modules/win_vss_snapshot_set.py.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from datetime import datetime, timedelta, timezone

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import (
    action_ec2,
    diskshadow,
    ebs_disks,
    session_host,
    shadow_plan,
    shadow_proof,
    shadow_session,
    vss,
    vss_writers,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_action import AgentAction, TaskFailure
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentError, AgentOperationError
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.diskshadow_log import failure_from_log
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.host_identity import IdentityError, resolve_identity

PLUGIN_NAME = "shadowsnap.ec2.win_vss_snapshot_set"
# The most a session op waits on the host in one round trip (the agent's own bound is 900 s).
MAX_AGENT_WAIT = 900
SERVICE_RESTART_TIMEOUT = 120
# Seconds of a hold kept for the proof and the release after the EBS snapshot set (its retries stop before).
HOLD_MARGIN = 60


def _shadows_of_set(shadows_result: dict, set_id: str) -> list[str]:
    wanted = normalise_guid(set_id)
    return [
        normalise_guid(shadow.get("ID"))
        for shadow in shadows_result.get("shadows") or []
        if normalise_guid(shadow.get("SetID")) == wanted
    ]


def _session_failure(exc: shadow_session.SessionError) -> TaskFailure:
    """The task failure of a session error: its HRESULT, run id, diskshadow's log and failure block."""
    extra: dict = {}
    if exc.hresult is not None:
        extra.update(hresult=exc.hresult, hresult_name=vss.hresult_name(exc.hresult))
    if exc.run_id:
        extra["run_id"] = exc.run_id
    status = exc.details.get("status") or {}
    if status.get("log"):
        extra["diskshadow_log"] = status["log"]
    if exc.details.get("failure"):
        extra["failure"] = exc.details["failure"]
    return TaskFailure(str(exc), **extra)


class ActionModule(AgentAction):
    """Creates, releases and deletes VSS shadow copy sets (the shadow engine). Check mode runs the pre-flight only."""

    ARGUMENT_SPEC = {
        "state": {"type": "str", "default": "present", "choices": ["present", "completed", "aborted", "absent"]},
        "volumes": {"type": "list", "elements": "str", "default": []},
        "writers": {"type": "list", "elements": "str", "default": []},
        "all_data_volumes": {"type": "bool", "default": False},
        "backup_type": {"type": "str", "default": "copy", "choices": list(diskshadow.BACKUP_TYPES)},
        "required_writers": {"type": "list", "elements": "str"},
        "exclude_writers": {"type": "list", "elements": "str", "default": []},
        "restart_failed_writers": {"type": "bool", "default": False},
        "add_storage_volumes": {"type": "bool", "default": False},
        "add_companion_volumes": {"type": "bool", "default": True},
        "min_diff_area_free": {"type": "str", "default": shadow_plan.DEFAULT_MIN_DIFF_AREA_FREE},
        "run_id": {"type": "str"},
        "shadow_set_id": {"type": "str"},
        "keep_shadows": {"type": "bool", "default": False},
        "release_when_proven": {"type": "bool", "default": False},
        "session_timeout": {"type": "int", "default": shadow_session.DEFAULT_SESSION_TIMEOUT},
        "hold_timeout": {"type": "int", "default": diskshadow.DEFAULT_HOLD_TIMEOUT},
        "in_progress_retries": {"type": "int", "default": vss.SNAPSHOT_SET_MAX_RETRIES},
        "in_progress_delay": {"type": "int", "default": vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS},
        "writer_error_retries": {"type": "int", "default": 0},
        "writer_error_delay": {"type": "int", "default": vss.WRITER_RETRY_AFTER_SECONDS},
        "cleanup_leftovers": {"type": "bool", "default": True},
        "leftover_age": {"type": "int"},
        "fetch_metadata": {"type": "path"},
        "block_device_mappings": {"type": "list", "elements": "dict"},
        "ebs_snapshot_set": {"type": "dict", "options": {
            "set_id": {"type": "str"},
            "instance_id": {"type": "str"},
            "include_boot": {"type": "bool", "default": False},
            "policy": {"type": "str", "default": "default"},
            "awx_job_id": {"type": "str"},
            "tags": {"type": "dict", "default": {}},
        }},
        **action_ec2.AWS_ARGUMENT_SPEC,
    }
    ARGUMENT_RULES = {"required_if": [
        ("state", "completed", ["run_id"]),
        ("state", "aborted", ["run_id"]),
        ("state", "absent", ["run_id", "shadow_set_id"], True),
    ]}
    _shadows = None
    _sessions = None

    def run_on_host(self, args, transport, result, task_vars):
        result["state"] = args["state"]
        self.require_at_least(args, 1, "session_timeout", "hold_timeout")
        self.require_at_least(args, 0, "in_progress_retries", "in_progress_delay", "writer_error_retries", "writer_error_delay")
        try:
            if args["state"] == "present":
                self._present(args, transport, result, task_vars)
            elif args["state"] in ("completed", "aborted"):
                decision = "ok" if args["state"] == "completed" else "abort"
                self._release(args, transport, result, args["run_id"], decision)
            else:
                self._absent(args, transport, result)
        except shadow_session.SessionError as exc:
            raise _session_failure(exc) from exc

    # ------------------------------------------------------------------------------------------------------ present

    @staticmethod
    def _options(args: dict) -> shadow_plan.SelectionOptions:
        ebs_request = args.get("ebs_snapshot_set") or {}
        return shadow_plan.SelectionOptions(
            volumes=args["volumes"],
            writers=args["writers"],
            all_data_volumes=args["all_data_volumes"],
            required_writers=args["required_writers"],
            exclude_writers=args["exclude_writers"],
            add_storage_volumes=args["add_storage_volumes"],
            add_companion_volumes=args["add_companion_volumes"],
            min_diff_area_free=args["min_diff_area_free"],
            include_boot=bool(ebs_request.get("include_boot")),
        )

    @staticmethod
    def _read_writers(answer: dict, source: str) -> list[dict]:
        try:
            return vss_writers.read_writers(answer, source)
        except vss_writers.WritersError as exc:
            raise TaskFailure(str(exc)) from exc

    def _read_host(self, transport, source, result):
        """One batch of read ops; returns (facts, storage, writers, shadows) of a host that can run the engine."""
        try:
            reply = transport.request_many([("facts", None), ("storage", None), ("writers", {"sources": [source]}), ("shadows", None),
                                            ("sessions", None)])
        except AgentOperationError as exc:
            if exc.op == "writers":
                raise TaskFailure(
                    f"the VSS writers could not be listed ({source}): {exc.reason}; the shadow engine needs Windows Server "
                    f"with diskshadow and a working VSS", hresult=exc.hresult, hresult_name=exc.hresult_name, agent_error=exc.error,
                ) from exc
            raise
        facts, storage, writers_result, shadows, self._sessions = reply.results
        problems = shadow_plan.check_host(facts)
        if problems:
            raise TaskFailure("; ".join(problems))
        result.update(instance_id=((facts.get("ec2") or {}).get("instance_id")), windows_hostname=facts.get("hostname"),
                      writers_source=source)
        return facts, storage, self._read_writers(writers_result, source), shadows.get("shadows")

    @staticmethod
    def _plan(args, options, storage, writers, prepared, shadows, source):
        """The storage mapping (Xen devices named by ``block_device_mappings``, else by the instance's mapping EC2
        answered) and the plan; returns (mapping, plan)."""
        mappings = args.get("block_device_mappings")
        if mappings is None and prepared is not None:
            mappings = prepared["instance"].get("BlockDeviceMappings")
        try:
            mapping = ebs_disks.map_storage(storage, ebs_disks.attachments_from_block_device_mappings(mappings))
        except ebs_disks.EbsMappingError as exc:
            raise TaskFailure(f"agent storage result: {exc}") from exc
        try:
            plan = shadow_plan.build_plan(mapping, writers, options, shadows)
        except shadow_plan.PreflightError as exc:
            raise TaskFailure("the shadow set cannot be made safely: " + "; ".join(exc.problems),
                              preflight_problems=exc.problems, writers_source=source) from exc
        return mapping, plan

    def _health(self, writers, plan) -> vss_writers.WriterHealth:
        return vss_writers.writer_health(writers, plan, shadow_plan.RESTART_OPTION)

    def _writers_ready(self, args, transport, result, mapping, writers, plan, source, options):
        """Until every required writer is STABLE: restart the services of failed ones (restart_failed_writers, once),
        list the writers again after ``in_progress_delay`` while they only wait for another backup (at most
        ``in_progress_retries`` times), else fail naming each writer."""
        health = self._health(writers, plan)
        restarted: list[str] = []
        waits = 0
        while health.blocking:
            reasons = "; ".join(writer["problem"] for writer in health.blocking)
            if health.services and args["restart_failed_writers"] and not restarted:
                if self._task.check_mode:
                    result["would_restart_services"] = health.services
                    return writers, plan, health
                restarted, step = list(health.services), "restart"
                with self.phase(step):
                    reply = transport.request("service_restart", {"names": restarted, "timeout_seconds": SERVICE_RESTART_TIMEOUT})
                result["restarted_services"] = reply.result.get("services") or []
            elif health.waiting and waits < args["in_progress_retries"]:
                waits, step = waits + 1, "wait"
                with self.phase(step):
                    time.sleep(args["in_progress_delay"])
            elif restarted:
                raise TaskFailure(f"VSS writers still not ready after restarting {', '.join(restarted)}: {reasons}",
                                  failed_writers=[writer["name"] for writer in health.blocking])
            else:
                waited = f" after waiting {waits} x {args['in_progress_delay']} s" if waits else ""
                raise TaskFailure(f"VSS writers not ready{waited}: {reasons}",
                                  failed_writers=[writer["name"] for writer in health.blocking])
            with self.phase(step):
                writers = self._read_writers(transport.request("writers", {"sources": [source]}).result, source)
                try:
                    plan = shadow_plan.build_plan(mapping, writers, options, self._shadows)
                except shadow_plan.PreflightError as exc:
                    after = f"after restarting {', '.join(restarted)}" if step == "restart" else "after waiting for the writers"
                    raise TaskFailure(f"{after}: " + "; ".join(exc.problems), preflight_problems=exc.problems) from exc
            health = self._health(writers, plan)
        return writers, plan, health

    def _ebs_identity(self, args, facts, task_vars) -> dict:
        """The instance and Region of the EBS snapshot set (host_identity.py: an explicit region wins, IMDS agrees)."""
        try:
            identity = resolve_identity(facts.get("ec2"), args["ebs_snapshot_set"].get("instance_id"),
                                        self.explicit_option("region"), task_vars, args.get("region"))
        except IdentityError as exc:
            raise TaskFailure(f"the EBS snapshot set cannot be taken, so no shadow set was made: {exc}") from exc
        if not identity["instance_id"]:
            raise TaskFailure("ebs_snapshot_set needs the instance id: the host's IMDS did not answer, so set "
                              "ebs_snapshot_set.instance_id")
        return identity

    def _prepare_ebs(self, args, facts, task_vars, result) -> dict | None:
        """What the EBS set needs from EC2 before any shadow set (the instance, whether its set id is taken), or None
        without ``ebs_snapshot_set``."""
        if not args.get("ebs_snapshot_set"):
            return None
        identity = self._ebs_identity(args, facts, task_vars)
        try:
            prepared = action_ec2.prepare_shadow_snapshot_set(args, PLUGIN_NAME, identity["region"], identity["instance_id"],
                                                              args["ebs_snapshot_set"].get("set_id"))
        except action_ec2.Ec2LookupError as exc:
            raise TaskFailure(f"the EBS snapshot set cannot be taken, so no shadow set was made: {exc}") from exc
        result.update(instance_id=identity["instance_id"], ebs_set_id=prepared["set_id"])
        return prepared

    @staticmethod
    def _ebs_request(args, result, shadow_set_id, timeout=None) -> dict:
        """The request of action_ec2 for exactly the shadow set's EBS volumes (the boot volume is one when shadowed)."""
        return dict(args["ebs_snapshot_set"], include_boot=False, volume_ids=result["ebs_volume_ids"],
                    volume_metadata=result["ec2_volume_metadata"], shadow_set_id=shadow_set_id,
                    backup_type=args["backup_type"], timeout=timeout)

    def _check_ebs(self, args, result, prepared, plan) -> None:
        """Before any freeze: every member's EBS volume id is known and the set's tags fit (TaskFailure)."""
        unnamed = shadow_plan.unnamed_ebs_volumes(plan.volumes)
        if unnamed:
            raise TaskFailure("the EBS snapshot set could not be exactly the shadow set, so no shadow set was made: "
                              + "; ".join(unnamed))
        try:
            action_ec2.check_shadow_snapshot_set(prepared, self._ebs_request(args, result, None))
        except action_ec2.Ec2LookupError as exc:
            raise TaskFailure(f"the EBS snapshot set cannot be taken, so no shadow set was made: {exc}") from exc

    def _present(self, args, transport, result, task_vars):
        result.update(verified=False, verification=shadow_proof.not_verified(
            "the task ended before an EBS snapshot set was proven to hold a shadow set"))
        options = self._options(args)
        source = "diskshadow_detailed" if options.needs_components() else "vssadmin"
        with self.phase("preflight"):
            facts, storage, writers, self._shadows = self._read_host(transport, source, result)
            prepared = self._prepare_ebs(args, facts, task_vars, result)
            if prepared is not None and prepared["existing"]:
                existing = prepared["existing"]
                result.update(existing_set=True, ebs_set=existing, verification=shadow_proof.not_verified(
                    f"the snapshot set {prepared['set_id']} already exists ({existing['status']}, consistency "
                    f"{existing['consistency']}): no shadow set was made, nothing was verified"))
                return
            mapping, plan = self._plan(args, options, storage, writers, prepared, self._shadows, source)
        writers, plan, health = self._writers_ready(args, transport, result, mapping, writers, plan, source, options)
        warnings = plan.warnings + health.warnings
        result["storage_problems"] = list(mapping.get("problems") or [])
        for warning in warnings:
            self._display.warning(f"{transport.host}: {warning}")
        result.update(plan.as_result())
        result.update(required_writers=[entry["name"] for entry in plan.required_writers], preflight_warnings=warnings,
                      backup_type=args["backup_type"], existing_set=False)
        metadata, volume_ids, devices = shadow_plan.ec2_volume_metadata(plan.volumes, {})
        result.update(ec2_volume_metadata=metadata, ebs_volume_ids=volume_ids, device_names=devices)
        if prepared is not None:
            self._check_ebs(args, result, prepared, plan)
        if self._task.check_mode:
            shadow_session.check_session_directory(self._sessions)
            session_plan = plan.session_plan("check-mode", args["backup_type"], args["hold_timeout"])
            result.update(changed=True, session_state="planned", script=diskshadow.diskshadow_script(session_plan),
                          writers=shadow_session.writer_results(plan, writers, None),
                          verification=shadow_proof.not_verified("check mode: nothing was made"))
            return

        runner = shadow_session.SessionRunner(
            lambda op, op_args: transport.request(op, op_args).result,
            sleep=time.sleep,
            clock=time.monotonic,
            policy=shadow_session.RetryPolicy(args["in_progress_retries"], args["in_progress_delay"],
                                              args["writer_error_retries"], args["writer_error_delay"]),
            session_timeout=args["session_timeout"],
        )
        try:
            with self.phase("create"):
                outcome = runner.create(plan, args["backup_type"], args["hold_timeout"], cleanup=args["cleanup_leftovers"],
                                        leftover_age=args["leftover_age"], sessions=self._sessions)
        except (shadow_session.SessionError, AgentError):
            result.update(attempts=runner.attempts, cleanup_errors=runner.cleanup_errors)
            raise
        # The controller's clock when it learned that the set exists: informational, no proof rests on it.
        created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        result.update(changed=True, run_id=outcome.run_id, session_state=outcome.status.get("state"), shadows_created_at=created_at,
                      shadow_set_id=outcome.shadow_set_id, shadows=outcome.shadows, attempts=outcome.attempts,
                      cleaned=outcome.cleaned, script=diskshadow.diskshadow_script(outcome.session_plan),
                      writers=shadow_session.writer_results(plan, writers, outcome.status.get("log")))
        aliases = diskshadow.volume_aliases(plan.paths())
        for entry in result["volumes"]:
            entry.update(alias=aliases.get(entry["path"]), shadow_id=outcome.shadows.get(entry["path"]))
        metadata, volume_ids, devices = shadow_plan.ec2_volume_metadata(result["volumes"], outcome.shadows)
        result.update(ec2_volume_metadata=metadata, ebs_volume_ids=volume_ids, device_names=devices)
        try:
            self._hold(args, transport, result, prepared, outcome)
        except (TaskFailure, AgentError) as exc:
            aborted = runner.abort(outcome.run_id) is not None
            result.update(session_state="aborted" if aborted else result["session_state"], cleanup_errors=runner.cleanup_errors)
            then = ("the session was aborted (no BackupComplete) and its shadow copies deleted" if aborted else
                    f"aborting the session failed too: run state=aborted with run_id {outcome.run_id}")
            raise TaskFailure(f"{exc}; {then}", **getattr(exc, "extra", {})) from exc
        if prepared is not None and args["release_when_proven"]:
            self._release(args, transport, result, outcome.run_id, "ok")
            self._settle(prepared, result)

    def _settle(self, prepared, result):
        """After an ``ok`` release of a proven set: the set recorded ``application`` (one CreateTags call)."""
        try:
            with self.phase("settle"):
                result["ebs_set"] = action_ec2.settle_shadow_snapshot_set(prepared, result["ebs_set"], "application")
        except action_ec2.Ec2LookupError as exc:
            raise TaskFailure(f"the VSS backup was completed, but {exc}: the set stays unverified until a later run "
                              f"settles it as crash-consistent") from exc

    def _hold(self, args, transport, result, prepared, outcome):
        """While the shadow set exists: the EBS set and its proof (before any BackupComplete), the metadata document."""
        if prepared is not None:
            # The creation retries within what is left of the hold, less the time the proof and the release need.
            budget = max(0.0, args["hold_timeout"] - (time.monotonic() - outcome.started) - HOLD_MARGIN)
            requested = time.monotonic()
            try:
                with self.phase("ebs"):
                    result["ebs_set"] = action_ec2.create_shadow_snapshot_set(
                        prepared, self._ebs_request(args, result, outcome.shadow_set_id, budget))
            except action_ec2.Ec2LookupError as exc:
                raise TaskFailure(f"the EBS snapshot set {prepared['set_id']} could not be taken: {exc}") from exc
            returned = listed = time.monotonic()
            with self.phase("verify"):
                listing = transport.request("shadows").result.get("shadows") or []
            proof = shadow_proof.prove(outcome.shadow_set_id, outcome.shadows, result["ec2_volume_metadata"], result["ebs_set"],
                                       listing, shadow_proof.Timeline(outcome.started, outcome.reported, requested, returned,
                                                                      listed))
            result.update(verified=proof.verified, verification=proof.as_result())
            if not proof.verified:
                raise TaskFailure(f"the EBS snapshot set {prepared['set_id']} is not proven to hold shadow set "
                                  f"{outcome.shadow_set_id}: " + "; ".join(proof.failures))
        else:
            result["verification"] = shadow_proof.not_verified(
                "no EBS snapshot set was taken by this task (ebs_snapshot_set): state=completed proves that the shadow "
                "copies lasted until the release (shadows_verified)")
        if args["backup_type"] == "full":
            deadline = datetime.now(timezone.utc) + timedelta(seconds=args["hold_timeout"])
            result["release_deadline"] = deadline.isoformat(timespec="seconds")
        remote_cab = outcome.session_plan.run_dir() + "\\" + diskshadow.METADATA_FILE
        result["metadata"] = {"remote_path": remote_cab, "path": None, "size": None, "sha256": None}
        if args.get("fetch_metadata"):
            try:
                with self.phase("fetch"):
                    result["metadata"].update(self._fetch(transport, remote_cab, args["fetch_metadata"], outcome.run_id))
            except (TaskFailure, AgentError) as exc:
                raise TaskFailure(f"fetching the backup components document {remote_cab} failed: {exc}") from exc

    @staticmethod
    def _fetch(transport, remote_path, destination, run_id):
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

    def _release(self, args, transport, result, run_id, decision):
        """Releases session ``run_id`` with ``decision`` (``ok``: BackupComplete for a full backup, or ``abort``)."""
        delete = True if decision == "abort" else not args["keep_shadows"]
        result["run_id"] = run_id
        if self._task.check_mode:
            status = session_host.run_status(transport.request("session_status", {"run_id": run_id, "wait_seconds": 0}).result)
            state = status["state"]
            result.update(session_state=state, shadow_set_id=status.get("shadow_set_id"), shadows=status.get("shadows") or {},
                          changed=state != "missing" and not status.get("release"))
            if state == "missing" and decision == "ok":
                raise TaskFailure(f"session {run_id} does not exist on the host: nothing to complete")
            return
        with self.phase("release"):
            status = session_host.run_status(transport.request("session_release", {
                "run_id": run_id, "decision": decision, "delete_shadows": delete,
                "wait_seconds": min(MAX_AGENT_WAIT, args["session_timeout"]),
            }).result)
        outcome = shadow_session.judge_release(status, decision, run_id)
        result.update(
            changed=bool(result["changed"]) or outcome.changed,
            session_state=outcome.state,
            decision=status.get("decision"),
            backup_type=outcome.backup_type,
            backup_complete_sent=outcome.backup_complete_sent,
            shadow_set_id=normalise_guid(status.get("shadow_set_id")),
            shadows_verified=outcome.verified,
            missing_shadow_ids=list(outcome.missing_shadow_ids),
            present_shadow_ids=status.get("present_shadow_ids") or [],
            deleted_shadow_ids=status.get("deleted_shadow_ids") or [],
            kept_shadows=not delete,
        )
        if not outcome.ok:
            failure = failure_from_log(status.get("log"))
            extra = {"diskshadow_log": status.get("log")}
            if failure:
                extra.update(failure=failure, hresult=failure["hresult"], hresult_name=failure["name"])
            raise TaskFailure(outcome.message, **extra)

    # ------------------------------------------------------------------------------------------------------- absent

    def _absent(self, args, transport, result):
        deleted = []
        with self.phase("delete"):
            if args.get("shadow_set_id"):
                set_id = normalise_guid(args["shadow_set_id"])
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
                    status = session_host.run_status(transport.request("session_status", {"run_id": args["run_id"], "wait_seconds": 0}).result)
                    if status.get("shadow_set_id") and status.get("state") != "missing":
                        deleted += [normalise_guid(value) for value in (status.get("shadows") or {}).values()]
                else:
                    status = session_host.run_status(transport.request("session_release", {
                        "run_id": args["run_id"], "decision": "abort", "delete_shadows": True,
                        "wait_seconds": min(MAX_AGENT_WAIT, args["session_timeout"]),
                    }).result)
                    deleted += status.get("deleted_shadow_ids") or []
                    result["session_state"] = status.get("state")
                    result.setdefault("shadow_set_id", normalise_guid(status.get("shadow_set_id")))
        unique = []
        for shadow_id in deleted:
            if shadow_id and shadow_id not in unique:
                unique.append(shadow_id)
        result.update(changed=bool(unique), deleted_shadow_ids=unique)
