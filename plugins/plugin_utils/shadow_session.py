# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shadow engine's session on the controller: start it, wait for its shadow set, retry, abort, judge the release.

Pure Python over the agent's session ops (docs/agent-protocol.md, docs/vss-session.md); the only side effects are the
callables a :class:`SessionRunner` is given (send a request, sleep, read a clock), so every rule is tested without
Windows. The plan it runs comes from shadow_plan.py, the files from diskshadow.py; what the agent's answers mean (the
session state, created.txt, the session directory's safety, the leftover runs) is read by session_host.py, what the
diskshadow log says by diskshadow_log.py. A release status becomes a :class:`ReleaseOutcome`, the one place that
decides whether a release proved the backup (``verified``) and whether BackupComplete was sent.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, session_host, vss
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.agent_transport import AgentError, AgentOperationError
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.diskshadow_log import (
    failure_from_log,
    is_full_backup_log,
    log_exclusions,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.run_ids import new_run_id
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.shadow_plan import Plan

DEFAULT_SESSION_TIMEOUT = 300
# The longest an agent request waits on the host: long waits cost time, not round trips; WinRM keeps polling.
WAIT_PER_ROUND_TRIP = 120
# The scheduled task's execution time limit is the hold timeout plus the session timeout plus this margin.
TASK_TIME_LIMIT_MARGIN = 300
# Run directories older than the task time limit plus this margin are leftovers (session_cleanup).
CLEANUP_MARGIN = 600
# The run files whose appearance ends an agent-side wait: the set was created, or diskshadow ended.
WAIT_FOR_CREATED = [diskshadow.CREATED_FILE, diskshadow.EXIT_FILE]


class SessionError(Exception):
    """The session cannot go on; the message says what happened and what to do."""

    def __init__(self, message: str, *, hresult: int | None = None, run_id: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.hresult = hresult
        self.run_id = run_id
        self.details = details or {}


def check_session_directory(sessions: dict) -> None:
    """SessionError unless the session tree of the agent's ``sessions`` answer is safe (session_host.py)."""
    problems = session_host.directory_problems(sessions)
    if problems:
        raise SessionError("the session directory is not safe for SYSTEM to run files from, so no session was started: "
                           + "; ".join(problems), details={"session_directory_problems": problems})


def recorded_shadows(status: dict, session_plan) -> tuple[str, dict]:
    """(shadow set id, {volume path: shadow id}) from the created.txt of a run status; SessionError when incomplete."""
    record = status["record"] or diskshadow.read_created_record("")
    try:
        return record.by_volume(session_plan)
    except diskshadow.SessionPlanError as exc:
        raise SessionError(f"session {session_plan.run_id}: {exc}", run_id=session_plan.run_id) from exc


def writer_results(plan: Plan, writers: list[dict], log: str | None) -> list[dict]:
    """Per writer that matters to this set: required or not, included or excluded, and why."""
    exclusions = log_exclusions(log, [writer["name"] for writer in writers])
    excluded_by_log = {vss.writer_name_key(item["writer"]): item["text"] for item in exclusions["writers"]}
    included_by_log = {vss.writer_name_key(item["writer"]): item for item in exclusions["included"]}
    components_by_writer: dict[str, list] = {}
    for item in exclusions["components"]:
        components_by_writer.setdefault(vss.writer_name_key(item["writer"]), []).append(
            {"component": item["component"], "volume": item["volume"], "text": item["text"]}
        )
    required = {entry["instance_id"]: entry for entry in plan.required_writers}
    excluded = {entry["instance_id"] for entry in plan.excluded_writers}
    touching = {vss.writer_name_key(name) for name in plan.touching_writers}
    results = []
    for writer in writers:
        key = vss.writer_name_key(writer["name"])
        relevant = (writer["instance_id"] in required or writer["instance_id"] in excluded or key in touching
                    or key in excluded_by_log or key in components_by_writer or key in included_by_log)
        if not relevant:
            continue
        entry = {
            "name": writer["name"],
            "writer_id": writer["writer_id"],
            "state_name": writer.get("state_name"),
            "required": writer["instance_id"] in required,
            "rule": required[writer["instance_id"]]["rule"] if writer["instance_id"] in required else None,
            "included": None,
            "reason": None,
            "included_components": list(included_by_log[key]["components"]) if key in included_by_log else [],
            "excluded_components": components_by_writer.get(key, []),
        }
        if writer["instance_id"] in excluded:
            entry.update(included=False, reason="writer exclude (exclude_writers)")
        elif key in excluded_by_log:
            entry.update(included=False, reason=excluded_by_log[key])
        elif key in included_by_log:
            entry.update(included=True, reason=included_by_log[key]["text"])
        elif key in touching or entry["required"]:
            entry.update(included=True, reason="writer verify: diskshadow fails rather than drop it" if entry["required"]
                         else "has components on the set")
        elif writer.get("components") is not None:
            entry.update(included=False, reason="none of its components is on the set's volumes")
        results.append(entry)
    return results


@dataclass
class RetryPolicy:
    """When a failed session is tried again (Microsoft's advice, vss.py): in-progress sets and transient writer errors."""

    in_progress_retries: int = vss.SNAPSHOT_SET_MAX_RETRIES
    in_progress_delay: float = vss.SNAPSHOT_SET_RETRY_AFTER_SECONDS
    writer_error_retries: int = 0
    writer_error_delay: float = vss.WRITER_RETRY_AFTER_SECONDS

    def decide(self, hresult: int | None, used: dict) -> tuple[str, float] | None:
        """(kind, delay) when another attempt is due, else None; ``used`` counts attempts per kind (updated)."""
        if hresult is None:
            return None
        if hresult == vss.VSS_E_SNAPSHOT_SET_IN_PROGRESS:
            kind, limit, delay = "in_progress", self.in_progress_retries, self.in_progress_delay
        else:
            info = vss.hresult_info(hresult)
            if info is None or not info.retryable:
                return None
            kind, limit, delay = "writer_error", self.writer_error_retries, self.writer_error_delay
        if used.get(kind, 0) >= limit:
            return None
        used[kind] = used.get(kind, 0) + 1
        return kind, delay


@dataclass
class CreateOutcome:
    """A shadow set that exists: the run, what diskshadow recorded, and the story of the attempts; ``started`` (its
    session_start was sent) and ``reported`` (the answer saying the set exists came in) are instants of the runner's
    clock."""

    run_id: str
    session_plan: Any
    status: dict
    shadow_set_id: str
    shadows: dict
    attempts: list
    cleaned: list
    started: float = 0.0
    reported: float = 0.0


class SessionRunner:
    """Drives the agent's session ops (docs/vss-session.md) with bounded waits and the retry policy.

    ``send(op, args)`` returns the op's result or raises an AgentError; ``sleep`` and ``clock`` are time.sleep and
    time.monotonic in production.
    """

    def __init__(self, send: Callable[[str, dict], dict], *, sleep: Callable[[float], None], clock: Callable[[], float],
                 policy: RetryPolicy | None = None, session_timeout: int = DEFAULT_SESSION_TIMEOUT,
                 wait_per_round_trip: int = WAIT_PER_ROUND_TRIP, run_id_factory: Callable[[], str] = new_run_id):
        self.send = send
        self.sleep = sleep
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.session_timeout = session_timeout
        self.wait_per_round_trip = wait_per_round_trip
        self.run_id_factory = run_id_factory
        self.attempts: list[dict] = []
        self.cleanup_errors: list[str] = []

    def _wait(self, deadline: float) -> int:
        return int(max(0, min(self.wait_per_round_trip, math.ceil(deadline - self.clock()))))

    def task_time_limit(self, hold_timeout: int) -> int:
        return int(hold_timeout + self.session_timeout + TASK_TIME_LIMIT_MARGIN)

    def create(self, plan: Plan, backup_type: str, hold_timeout: int, cleanup: bool = True,
               leftover_age: int | None = None, *, sessions: dict) -> CreateOutcome:
        """Starts sessions until one has created its shadow set, a failure is final, or the retries run out.

        ``sessions`` is the agent's ``sessions`` answer: nothing starts on a session directory that is not safe, and the
        agent creates the folders that did not exist. With ``cleanup``, the first start also cleans the runs older than
        ``leftover_age`` seconds (default: this session's task time limit plus a margin, so that no live session of
        another controller is touched).
        """
        check_session_directory(sessions)
        used: dict = {}
        cleaned: list = []
        time_limit = self.task_time_limit(hold_timeout)
        leftovers = session_host.leftover_runs(sessions, leftover_age or time_limit + CLEANUP_MARGIN) if cleanup else []
        new_folders = session_host.folders_to_create(sessions)
        while True:
            session_plan = plan.session_plan(self.run_id_factory(), backup_type, hold_timeout)
            files = diskshadow.session_files(session_plan)
            run_id = session_plan.run_id
            started = self.clock()
            deadline = started + self.session_timeout
            args = {"run_id": run_id, "files": files, "wait_seconds": self._wait(deadline), "run_dir": session_plan.run_dir(),
                    "time_limit_seconds": time_limit, "wait_for": WAIT_FOR_CREATED, "create_folders": new_folders}
            if leftovers:
                args["cleanup"], leftovers = leftovers, []
            try:
                status = session_host.run_status(self.send("session_start", args))
            except AgentOperationError as exc:
                decision = self.policy.decide(exc.hresult, used)
                self.attempts.append({"run_id": run_id, "outcome": "refused", "hresult": exc.hresult,
                                      "hresult_name": exc.hresult_name, "message": exc.reason,
                                      "retry_after": decision[1] if decision else None})
                if decision is None:
                    raise
                self.sleep(decision[1])
                if new_folders:
                    # Refused before the agent created anything; whoever ran meanwhile may have made the folders.
                    sessions = self.send("sessions", {})
                    check_session_directory(sessions)
                    new_folders = session_host.folders_to_create(sessions)
                continue
            except AgentError as exc:
                raise self._lost(run_id, "session_start", exc) from exc
            new_folders = []
            cleaned.extend(status.get("cleaned") or [])
            try:
                while status["state"] == "starting" and self.clock() < deadline:
                    status = session_host.run_status(self.send("session_status", {
                        "run_id": run_id, "wait_seconds": self._wait(deadline), "wait_for": WAIT_FOR_CREATED}))
            except AgentError as exc:
                raise self._lost(run_id, "session_status", exc) from exc
            state = status["state"]
            if state == "starting":
                self.attempts.append({"run_id": run_id, "outcome": "timeout"})
                self.abort(run_id)
                raise SessionError(
                    f"diskshadow did not create the shadow set of {', '.join(plan.paths())} within session_timeout "
                    f"({self.session_timeout} s); the session was aborted. Writers slow to freeze, or a busy host: raise "
                    f"session_timeout", run_id=run_id, details={"status": status},
                )
            if state in ("created", "completed"):
                try:
                    set_id, shadows = recorded_shadows(status, session_plan)
                except SessionError:
                    self.abort(run_id)
                    raise
                self.attempts.append({"run_id": run_id, "outcome": state})
                return CreateOutcome(run_id, session_plan, status, set_id, shadows, self.attempts, cleaned, started,
                                     self.clock())
            if state == "missing":
                raise SessionError(f"session {run_id}: its run directory vanished on the host", run_id=run_id)
            failure = failure_from_log(status.get("log"))
            if status["record"] is not None:
                self.abort(run_id)
            hresult = failure["hresult"] if failure else None
            decision = self.policy.decide(hresult, used)
            self.attempts.append({"run_id": run_id, "outcome": "failed", "hresult": hresult,
                                  "hresult_name": failure["name"] if failure else None,
                                  "exit_code": status.get("exit_code"), "retry_after": decision[1] if decision else None})
            if decision is None:
                raise SessionError(
                    failure_message(plan, status, failure, run_id), hresult=hresult, run_id=run_id,
                    details={"status": status, "failure": failure},
                )
            self.sleep(decision[1])

    def _lost(self, run_id: str, op: str, exc: AgentError) -> SessionError:
        """The error of a session whose start may have happened unseen: it is aborted first, best effort."""
        self.attempts.append({"run_id": run_id, "outcome": "lost", "message": str(exc)})
        aborted = self.abort(run_id) is not None
        return SessionError(
            f"session {run_id}: {op} failed after it was sent ({exc}); the session may run on the host, so it was "
            + ("aborted (no BackupComplete, its shadow copies deleted)" if aborted else
               f"to be aborted, which failed too: run state=aborted with run_id {run_id}"),
            run_id=run_id)

    def abort(self, run_id: str) -> dict | None:
        """Best effort: release ``abort`` and delete the run's shadows; errors are kept, never raised."""
        try:
            return session_host.run_status(self.send("session_release", {
                "run_id": run_id, "decision": diskshadow.RELEASE_ABORT, "wait_seconds": min(60, self.wait_per_round_trip),
                "delete_shadows": True}))
        except AgentError as exc:
            self.cleanup_errors.append(f"aborting session {run_id} failed: {exc}")
            return None


def failure_message(plan: Plan, status: dict, failure: dict | None, run_id: str) -> str:
    """Why diskshadow failed: HRESULT name, meaning, advice, writers it dropped, the log's tail when nothing is known."""
    volumes = ", ".join(plan.paths())
    if failure:
        text = f"diskshadow failed to create the shadow set of {volumes} (run {run_id}): HRESULT {failure['hresult_text']}"
        if failure.get("meaning"):
            text += f": {failure['meaning']} {failure['advice']}"
        elif failure.get("error_text"):
            text += f" ({failure['error_text']})"
    else:
        tail = " | ".join(line.strip() for line in (status.get("log") or "").splitlines()[-6:] if line.strip())
        text = (f"diskshadow ended with exit code {status.get('exit_code')} without creating the shadow set of {volumes} "
                f"(run {run_id}); the task may have been stopped (time limit); log tail: {tail or '(empty)'}")
    required = {vss.writer_name_key(entry["name"]) for entry in plan.required_writers}
    dropped = [item for item in log_exclusions(status.get("log"), [entry["name"] for entry in plan.required_writers])["writers"]
               if vss.writer_name_key(item["writer"]) in required]
    if dropped:
        text += "; required writers left out by diskshadow: " + "; ".join(item["text"] for item in dropped)
    return text


# ------------------------------------------------------------------------------------------------------------ release


@dataclass(frozen=True)
class ReleaseOutcome:
    """What a ``session_release`` status means for the task.

    ``ok`` False means the task fails with ``message``. ``verified``: every shadow recorded at creation still existed
    when the release came (so every EBS snapshot taken in between holds it); None when it cannot be told (released
    before, nothing recorded). ``backup_complete_sent``: for a full backup, whether diskshadow reached ``end backup``;
    None for a copy backup, which never sends it.
    """

    state: str
    backup_type: str
    ok: bool = True
    message: str | None = None
    changed: bool = False
    verified: bool | None = None
    backup_complete_sent: bool | None = None
    missing_shadow_ids: tuple = ()

    def failed(self, message: str) -> ReleaseOutcome:
        return replace(self, ok=False, message=message)


def judge_release(status: dict, decision: str, run_id: str) -> ReleaseOutcome:
    """The outcome of releasing session ``run_id`` with ``decision`` (``ok`` or ``abort``), from the status of the
    agent's answer (session_host.run_status)."""
    state = status["state"]
    full = is_full_backup_log(status.get("log"))
    outcome = ReleaseOutcome(state=state, backup_type="full" if full else "copy")
    if state == "missing":
        if decision == "ok":
            return outcome.failed(f"session {run_id} does not exist on the host (never started, or cleaned up after its "
                                  f"hold timeout): nothing to complete")
        return outcome
    effective = status.get("decision") or decision
    released_before = bool(status.get("released_before"))
    outcome = replace(outcome, changed=not released_before or bool(status.get("deleted_shadow_ids")))
    if decision == "ok" and effective != "ok":
        return outcome.failed(f"session {run_id} was already released with {effective!r}: it cannot be completed")
    recorded = [shadow_id for shadow_id in map(normalise_guid, (status.get("shadows") or {}).values()) if shadow_id]
    present = {normalise_guid(value) for value in status.get("present_shadow_ids") or []}
    if not released_before and recorded:
        missing = tuple(shadow_id for shadow_id in recorded if shadow_id not in present)
        outcome = replace(outcome, missing_shadow_ids=missing, verified=not missing)
    if decision != "ok":
        # An abort after an ``ok`` release finds BackupComplete already sent.
        outcome = replace(outcome, backup_complete_sent=(state == "completed" and effective == "ok") if full else None)
        if state in ("starting", "created"):
            return outcome.failed(f"session {run_id}: diskshadow still runs after the abort; its task is stopped at its "
                                  f"time limit")
        return outcome
    if state in ("starting", "created"):
        return outcome.failed(f"session {run_id}: diskshadow has not ended within the wait after the release (end backup "
                              f"still running); run state=completed again to check, the shadows are kept until then")
    if full:
        outcome = replace(outcome, backup_complete_sent=state == "completed")
    if state == "failed":
        failure = failure_from_log(status.get("log"))
        if failure:
            cause = f"HRESULT {failure['hresult_text']}"
        elif status.get("exit_code") is None:
            cause = "no exit code (its task ended without writing exit.txt: stopped at its time limit, or killed)"
        else:
            cause = f"exit code {status.get('exit_code')}"
        return outcome.failed(f"session {run_id}: diskshadow ended with {cause} before or at the release"
                              + ("; BackupComplete was not sent (did the hold time out before the release?)" if full else ""))
    if outcome.missing_shadow_ids:
        return outcome.failed(
            f"session {run_id}: shadow copies {', '.join(outcome.missing_shadow_ids)} were gone when the set was released "
            f"(diff area full, or deleted): EBS snapshots taken since they were created may not hold them; treat this "
            f"backup as crash-consistent")
    return outcome
