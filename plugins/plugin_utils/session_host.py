# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
r"""The host side of a shadow engine session, as the agent reports it, and what it means.

The agent's session ops answer raw facts (docs/vss-session.md "Run facts"): the texts of a run directory's created.txt,
exit.txt and release.txt, the run's scheduled task (state, last result, time limit), diskshadow's log, timestamps of
the host's clock; the ``sessions`` read op adds, for the session tree (``%ProgramData%\shadowsnap``, its ``runs``
folder and every run directory), each folder's owner, reparse point and explicit access entries. This module is the
one place that reads them: :func:`run_status` derives the session state and parses created.txt (once per answer),
:func:`directory_problems` says whether SYSTEM may run what is written into the tree, :func:`leftover_runs` decides
which earlier runs a new session cleans. Pure functions of the answers, tested without Windows.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import math
import re
from datetime import datetime

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.diskshadow import (
    CREATED_FILE,
    EXIT_FILE,
    RELEASE_FILE,
    RELEASE_OK,
    read_created_record,
)
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.run_ids import is_run_id

# Task Scheduler's states of a task that runs or is about to (StateEnum names, or their numbers when the CIM class
# arrives without its enumeration type), and the LastTaskResult of a task started but not run yet
# (SCHED_S_TASK_HAS_NOT_RUN). The agent applies the same rule to its waits and to its one-session-at-a-time refusal.
ACTIVE_TASK_STATES = ("Running", "Queued", "4", "2")
TASK_NEVER_RAN = 0x00041303
# The only accounts the session tree may belong to or give explicit access to: SYSTEM runs its files, Administrators
# run the agent.
SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"
TRUSTED_SIDS = (SYSTEM_SID, ADMINISTRATORS_SID)
# A run younger than this is never a leftover, whatever the caller asks: its session may still be starting.
MIN_LEFTOVER_AGE = 60

_DURATION = re.compile(r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")


def task_active(task: dict | None) -> bool:
    """Whether a run's task runs or is about to (the agent's ``task`` facts; None when it is not registered)."""
    if not task:
        return False
    return str(task.get("state")) in ACTIVE_TASK_STATES or task.get("last_result") == TASK_NEVER_RAN


def task_time_limit(task: dict) -> float:
    """The task's execution time limit in seconds (``ExecutionTimeLimit``, an XML duration); infinite without one."""
    match = _DURATION.match(str(task.get("time_limit") or "").strip())
    if not match or not any(match.groupdict().values()):
        return math.inf
    parts = {name: float(value or 0) for name, value in match.groupdict().items()}
    seconds = parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]
    return seconds if seconds > 0 else math.inf


def exit_code(text: str | None) -> int | None:
    """exit.txt's number; None when the file is absent or empty, -1 when it holds anything but a number."""
    value = (text or "").strip()
    if not value:
        return None
    return int(value) if re.fullmatch(r"[+-]?\d{1,10}", value) and abs(int(value)) < 2 ** 31 else -1


def session_state(exists: bool, active: bool, created: bool, code: int | None) -> str:
    """``missing`` (no run directory), ``completed``/``failed`` (diskshadow's exit code), ``created`` (the set exists,
    diskshadow still runs: holding a full backup), ``starting``; ``failed`` too when the task ended without an exit
    code (stopped at its time limit, or killed). The agent reads the task before the files, so a run that ends in
    between is never taken for stopped."""
    if not exists:
        return "missing"
    if code is not None:
        return "completed" if code == 0 else "failed"
    if active:
        return "created" if created else "starting"
    return "failed"


def run_status(answer: dict) -> dict:
    """The session status of a ``session_start``, ``session_status`` or ``session_release`` answer.

    Keys: ``run_id``, ``run_dir``, ``state``, ``record`` (diskshadow.CreatedRecord, None before created.txt exists),
    ``shadow_set_id`` and ``shadows`` (alias -> id) from it, ``exit_code``, ``log``, ``log_truncated``, ``task_running``,
    ``task_state``, ``release`` (release.txt); a start adds ``cleaned``; a release adds ``decision`` (the one in
    effect), ``released_before``, ``present_shadow_ids`` (the set's shadow copies that existed when the release came,
    before any deletion) and ``deleted_shadow_ids``.
    """
    files = answer.get("files") or {}
    record = read_created_record(files[CREATED_FILE]) if files.get(CREATED_FILE) is not None else None
    code = exit_code(files.get(EXIT_FILE))
    task = answer.get("task")
    active = task_active(task)
    release = (files.get(RELEASE_FILE) or "").strip() or None
    status = {
        "run_id": answer.get("run_id"),
        "run_dir": answer.get("run_dir"),
        "state": session_state(bool(answer.get("exists")), active, record is not None, code),
        "record": record,
        "shadow_set_id": record.shadow_set_id if record else None,
        "shadows": record.shadows if record else {},
        "exit_code": code,
        "log": answer.get("log"),
        "log_truncated": bool(answer.get("log_truncated")),
        "task_running": active,
        "task_state": task.get("state") if task else None,
        "release": release,
    }
    if "cleaned" in answer:
        status["cleaned"] = list(answer["cleaned"] or [])
    if "released_before" in answer:
        set_id = status["shadow_set_id"]
        status.update(
            decision=release,
            released_before=bool(answer["released_before"]),
            present_shadow_ids=[normalise_guid(copy.get("ID")) for copy in answer.get("shadow_copies") or []
                                if set_id and normalise_guid(copy.get("SetID")) == set_id],
            deleted_shadow_ids=[normalise_guid(value) for value in answer.get("deleted_shadow_ids") or []],
        )
    return status


# ------------------------------------------------------------------------------------------------ the session tree


def _account(sid: str | None, name: str | None) -> str:
    return name or sid or "an unknown account"


def _findings(folder: dict) -> tuple[list, bool]:
    """(what is wrong with one folder, whether the folder itself has to go)."""
    findings, remove = [], False
    if folder.get("error"):
        return [f"has a security descriptor the agent cannot read ({folder['error']})"], True
    if folder.get("owner") not in TRUSTED_SIDS:
        findings.append(f"is owned by {_account(folder.get('owner'), folder.get('owner_name'))}")
        remove = True
    if "ReparsePoint" in str(folder.get("attributes") or ""):
        link = (folder.get("link_type") or "reparse point").lower()
        findings.append(f"is a {link} to {folder['link_target']}" if folder.get("link_target") else f"is a {link}")
        remove = True
    for entry in folder.get("explicit_access") or []:
        if entry.get("identity") not in TRUSTED_SIDS:
            findings.append(f"has an explicit {entry.get('type')} entry for "
                            f"{_account(entry.get('identity'), entry.get('name'))} ({entry.get('rights')})")
    return findings, remove


def directory_problems(sessions: dict) -> list[str]:
    """What makes the session tree of a ``sessions`` answer unsafe, one sentence per folder saying what was found and
    how to fix it; empty when it is safe.

    SYSTEM runs what the agent writes there and any local user may create folders in ``%ProgramData%``: a folder
    another account owns keeps its owner and its explicit entries after the agent protects the root, and a junction
    or other reparse point sends the writes elsewhere. So every folder must be owned by SYSTEM or Administrators, be no
    reparse point and have no explicit access entry for anyone else (inherited entries come from the root, which the
    agent protects when a session starts). Folders below one that has to be removed are not listed.
    """
    problems, removed = [], []
    for folder in sessions.get("folders") or []:
        path = folder.get("path") or ""
        if not folder.get("exists") or any(path.lower().startswith(parent.lower() + "\\") for parent in removed):
            continue
        findings, remove = _findings(folder)
        if not findings:
            continue
        if remove:
            removed.append(path)
            fix = f"remove {path} and let the agent create it"
            if "ReparsePoint" in str(folder.get("attributes") or ""):
                fix += f" (rmdir \"{path}\" removes the link, not its target)"
        else:
            names = sorted({_account(entry.get("identity"), entry.get("name")) for entry in folder.get("explicit_access") or []
                            if entry.get("identity") not in TRUSTED_SIDS})
            fix = (f"remove {path} and let the agent create it, or remove the entries ("
                   + "; ".join(f"icacls \"{path}\" /remove \"{name}\"" for name in names) + ")")
        problems.append(f"{path} {' and '.join(findings)}: {fix}")
    return problems


def folders_to_create(sessions: dict) -> list[str]:
    """The root and runs folder of a ``sessions`` answer that do not exist yet. The agent creates them and fails when
    one exists by then: someone else made it after the controller checked the tree."""
    existing = {(folder.get("path") or "").lower() for folder in sessions.get("folders") or [] if folder.get("exists")}
    return [path for path in (sessions.get("root"), sessions.get("run_root")) if path and path.lower() not in existing]


def _moment(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def leftover_runs(sessions: dict, older_than: float) -> list[dict]:
    """The cleanup decision over a ``sessions`` answer: ``{"run_id", "shadow_set_id"}`` of every run at least
    ``older_than`` seconds old (never under MIN_LEFTOVER_AGE; by its directory's creation time and the host's clock)
    whose task does not still run within its own time limit. ``shadow_set_id`` is the set its created.txt records, to
    delete, unless the run was released ``ok`` (the release deleted those shadows, or kept them on purpose)."""
    now = _moment(sessions.get("read_at"))
    limit = max(MIN_LEFTOVER_AGE, older_than)
    found = []
    for run in sessions.get("runs") or []:
        created = _moment(run.get("created"))
        if now is None or created is None or not is_run_id(run.get("run_id")):
            continue
        age = (now - created).total_seconds()
        if age < limit or (task_active(run.get("task")) and age < task_time_limit(run["task"])):
            continue
        status = run_status(run)
        found.append({"run_id": run["run_id"],
                      "shadow_set_id": status["shadow_set_id"] if status["release"] != RELEASE_OK else None})
    return found
