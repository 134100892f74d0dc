# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Answers of the agent's session ops as a host would give them (docs/vss-session.md "Run facts", "The session
directory"), for tests that script a host: raw facts only, the way the agent and the lab's twin answer them
(test_session_host.py checks these builders against the twin's keys)."""

from __future__ import annotations

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow

SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
READ_AT = "2026-11-25T02:00:00.000Z"
ROOT = diskshadow.PROGRAM_DATA + "\\" + diskshadow.AGENT_FOLDER


def created_text(set_id: str, shadows: dict) -> str:
    """created.txt as record.cmd writes it."""
    lines = [f"{diskshadow.SHADOW_SET_VARIABLE}={set_id}"] + [f"{alias}={shadow_id}" for alias, shadow_id in shadows.items()]
    return "\r\n".join(lines) + "\r\n"


def task(state="Running", last_result=0x41301, time_limit="PT25M", run_id="ss-1"):
    return {"name": "shadowsnap-" + run_id, "state": state, "last_result": last_result, "time_limit": time_limit}


def run_facts(run_id, state, *, created=None, exit_text=None, release=None, log="", created_at="2026-11-25T01:37:00.000Z",
              task_facts=None, **extra):
    """The raw facts of a run that a host in ``state`` shows: ``starting`` and ``created`` with a running task,
    ``completed`` with exit.txt ``0``, ``failed`` with ``exit_text`` (or none: a task that ended without it),
    ``missing`` without a directory. ``created`` is created.txt's text; ``extra`` the keys a start or release adds."""
    if state == "missing":
        facts = {"run_id": run_id, "run_dir": diskshadow.RUN_ROOT + "\\" + run_id, "exists": False, "created": None,
                 "task": None, "files": {}, "log": None, "log_truncated": False}
        return dict(facts, **extra)
    running = state in ("starting", "created")
    if state == "completed":
        exit_text = "0\r\n"
    facts = {
        "run_id": run_id,
        "run_dir": diskshadow.RUN_ROOT + "\\" + run_id,
        "exists": True,
        "created": created_at,
        "task": task_facts if task_facts is not None else task("Running" if running else "Ready", 0x41301 if running else 0,
                                                               run_id=run_id),
        "files": {diskshadow.CREATED_FILE: created, diskshadow.EXIT_FILE: exit_text, diskshadow.RELEASE_FILE: release},
        "log": log,
        "log_truncated": False,
    }
    return dict(facts, **extra)


def folder(path, owner=ADMINISTRATORS, *, exists=True, aces=(), attributes="Directory", link_type=None, link_target=None,
           owner_name=None, inherits=True):
    if not exists:
        return {"path": path, "exists": False, "created": None, "owner": None, "owner_name": None, "attributes": None,
                "link_type": None, "link_target": None, "inherits": None, "explicit_access": [], "error": None}
    names = {SYSTEM: "NT AUTHORITY\\SYSTEM", ADMINISTRATORS: "BUILTIN\\Administrators"}
    return {"path": path, "exists": True, "created": "2026-11-20T00:00:00.000Z", "owner": owner,
            "owner_name": owner_name or names.get(owner, owner), "attributes": attributes, "link_type": link_type,
            "link_target": link_target, "inherits": inherits,
            "explicit_access": [{"identity": identity, "name": names.get(identity, name), "rights": rights, "type": kind,
                                 "inheritance": "ContainerInherit, ObjectInherit", "propagation": "None"}
                                for identity, name, rights, kind in aces],
            "error": None}


def sessions(folders=None, runs=()):
    """A ``sessions`` answer: by default the tree as the agent leaves it (the root protected, its runs folder)."""
    if folders is None:
        folders = [folder(ROOT, aces=[(SYSTEM, "", "FullControl", "Allow"), (ADMINISTRATORS, "", "FullControl", "Allow")],
                          inherits=False),
                   folder(diskshadow.RUN_ROOT)]
        folders += [folder(diskshadow.RUN_ROOT + "\\" + run["run_id"]) for run in runs]
    return {"root": ROOT, "run_root": diskshadow.RUN_ROOT, "read_at": READ_AT, "folders": list(folders), "runs": list(runs)}


def fresh_host_sessions():
    """A ``sessions`` answer of a host where no session ever ran: the agent creates the root and its runs folder."""
    return sessions([folder(ROOT, exists=False), folder(diskshadow.RUN_ROOT, exists=False)])
