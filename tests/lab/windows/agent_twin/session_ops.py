r"""The twin's session ops of the shadow engine (docs/vss-session.md): run directories, scheduled tasks, release.

What the agent does on Windows, done on the host's model: ``session_start`` writes the files the controller generated
into ``C:\ProgramData\shadowsnap\runs\<run_id>\`` (the C: volume's content, so an EBS snapshot of C: carries them),
registers and starts the task ``\shadowsnap\shadowsnap-<run_id>`` (lab.windows.tasks runs its ``run.cmd``), and waits
for the run to create its set; ``session_status`` reads the run directory back; ``session_release`` writes
``release.txt``; ``shadow_delete`` deletes shadow copies through diskshadow; ``session_cleanup`` removes stale runs.
"""

import base64
import hashlib
import re
import time

from ..diskshadow import run_diskshadow
from ..locales import agent_decode
from .protocol import (
    CREATED_FILE,
    EXIT_FILE,
    IN_PROGRESS_HRESULT,
    LOG_FILE,
    LOG_LIMIT,
    OUTPUT_LIMIT,
    RELEASE_FILE,
    REQUIRED_SESSION_FILES,
    RUN_ID,
    RUN_ROOT,
    SERVICE_NAME_PATTERN,
    SESSION_FILES,
    SHADOWSNAP_ROOT,
    TASK_PATH,
    TASK_PREFIX,
    AgentError,
    braced_guid,
    diskshadow_command,
    int_argument,
    parse_created,
    run_dir_of,
    run_file,
    run_id_argument,
)

SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)


def task_name(run_id):
    return TASK_PREFIX + run_id


def _read_small(model, path):
    """Read-SmallText: ASCII, trimmed; None when absent."""
    data = model.files.read(path)
    return None if data is None else data.decode("ascii", errors="replace").strip()


def run_age(model, run_id):
    """Seconds since the run directory was created (directories the agent did not create count as very old)."""
    folder = model.files.folder(run_dir_of(run_id))
    return float("inf") if folder is None else time.monotonic() - folder.created


def age(model, run_id, seconds):
    """Lab control: make a run directory ``seconds`` older (so that cleanup's minimum age can be tested)."""
    folder = model.files.folder(run_dir_of(run_id))
    if folder is None:
        raise AgentError("no run directory %s" % run_dir_of(run_id))
    folder.created -= float(seconds)
    task = model.tasks.get(task_name(run_id))
    if task is not None:
        task.started -= float(seconds)
    return run_age(model, run_id)


def status(model, run_id, with_log=True):
    """Get-SessionStatus: starting, created, completed, failed or missing."""
    run_dir = run_dir_of(run_id)
    found = {"run_id": run_id, "run_dir": run_dir, "state": "missing", "shadow_set_id": None, "shadows": {},
             "exit_code": None, "log": None, "log_truncated": False, "task_running": False, "task_state": None,
             "release": None}
    if not model.files.folder_exists(run_dir):
        return found
    task = model.tasks.get(task_name(run_id))
    active = task is not None and task.active
    found["task_running"] = active
    found["task_state"] = task.state if task is not None else None
    created = model.files.read(run_file(run_dir, CREATED_FILE))
    if created is not None:
        values = parse_created(created.decode("ascii", errors="replace").strip())
        found["shadow_set_id"] = values.pop("VSS_SHADOW_SET", None)
        found["shadows"] = values
    exit_text = _read_small(model, run_file(run_dir, EXIT_FILE))
    if exit_text:
        found["exit_code"] = int(exit_text) if re.match(r"^[+-]?\d+$", exit_text) and abs(int(exit_text)) < 2 ** 31 else -1
    found["release"] = _read_small(model, run_file(run_dir, RELEASE_FILE))
    if found["exit_code"] is not None:
        found["state"] = "completed" if found["exit_code"] == 0 else "failed"
    elif active:
        found["state"] = "created" if created is not None else "starting"
    else:
        found["state"] = "failed"
    if with_log:
        data = model.files.read(run_file(run_dir, LOG_FILE))
        if data is not None:
            text = agent_decode(data, model.locale.oem_code_page)
            found["log_truncated"] = len(text) > LOG_LIMIT
            found["log"] = text[-LOG_LIMIT:]
    return found


def wait_session(model, run_id, seconds, until="end", cancel=None):
    """Wait-Session: until the run has ended (``end``) or created its set or ended (``created``)."""

    def settled():
        state = status(model, run_id, with_log=False)["state"]
        return state in ("completed", "failed", "missing") or (until == "created" and state == "created")

    model.tasks.wait(settled, seconds, cancel)
    return status(model, run_id)


def initialize_run_root(model):
    """Initialize-RunRoot: the agent's folder exists, with an ACL of its own (SYSTEM and Administrators only, owner
    Administrators), and so does its runs folder."""
    model.files.create_folder(SHADOWSNAP_ROOT)
    model.files.protect(SHADOWSNAP_ROOT)
    model.files.create_folder(RUN_ROOT)


def session_start(host, args):
    """session_start (docs/vss-session.md)."""
    model = host.model
    run_id = run_id_argument(args)
    run_dir = run_dir_of(run_id)
    wait_seconds = int_argument("session_start", args, "wait_seconds")
    time_limit = int_argument("session_start", args, "time_limit_seconds")
    expected = str(args.get("run_dir") or "")
    if expected and expected.rstrip("\\") != run_dir.rstrip("\\"):
        raise AgentError("the session files were generated for %s, but this host's run directory is %s (ProgramData is "
                         "C:\\ProgramData)" % (expected, run_dir))
    files = args.get("files")
    if not isinstance(files, dict):
        raise AgentError("session_start needs files (name -> text)")
    for required in REQUIRED_SESSION_FILES:
        if required not in files:
            raise AgentError("session_start needs the file %s" % required)
    for name, text in files.items():
        if name not in SESSION_FILES:
            raise AgentError("'%s' is not a session file (%s)" % (name, ", ".join(SESSION_FILES)))
        if re.search(r"[^\x00-\x7f]", str(text if text is not None else "")):
            raise AgentError("session file %s is not ASCII" % name)
    cleaned = []
    if args.get("cleanup_older_than_seconds") is not None:
        cleaned = cleanup(model, int_argument("session_start", args, "cleanup_older_than_seconds"))
    tasks = model.tasks
    with model.lock:
        if tasks.closed:
            raise AgentError("the host is shutting down")
        others = [name for name in tasks.active(exclude=task_name(run_id))
                  if not model.files.exists(run_file(run_dir_of(name[len(TASK_PREFIX):]), EXIT_FILE))]
        if others:
            raise AgentError("another shadowsnap session is running on this host (%s); VSS creates one shadow copy set "
                             "at a time" % ", ".join(others), hresult=IN_PROGRESS_HRESULT)
        if model.files.folder_exists(run_dir):
            raise AgentError("run %s already exists (%s); a run id is used once" % (run_id, run_dir))
        initialize_run_root(model)
        model.files.create_folder(run_dir)
        for name, text in files.items():
            model.files.write(run_file(run_dir, name), str(text if text is not None else "").encode("ascii"))
        tasks.register_and_start(TASK_PATH, task_name(run_id), run_file(run_dir, "run.cmd"), run_dir, time_limit, run_id)
    found = wait_session(model, run_id, wait_seconds, "created", host.stopping)
    found["cleaned"] = cleaned
    return found


def session_status(host, args):
    run_id = run_id_argument(args)
    until = str(args.get("until", "end") if args.get("until") is not None else "end")
    if until not in ("end", "created"):
        raise AgentError("until must be 'end' or 'created', not '%s'" % until)
    return wait_session(host.model, run_id, int_argument("session_status", args, "wait_seconds"), until, host.stopping)


def session_release(host, args):
    """session_release: the first decision stands; abort stops a task that still runs; deletes when asked."""
    model = host.model
    run_id = run_id_argument(args)
    decision = str(args.get("decision") or "")
    if decision not in ("ok", "abort"):
        raise AgentError("decision must be 'ok' or 'abort', not '%s'" % decision)
    wait_seconds = int_argument("session_release", args, "wait_seconds")
    delete = bool(args.get("delete_shadows", False))
    release_path = run_file(run_dir_of(run_id), RELEASE_FILE)
    found = status(model, run_id)
    released_before = model.files.exists(release_path)
    if found["state"] != "missing":
        if not released_before:
            model.files.write(release_path, (decision + "\r\n").encode("ascii"))
        model.tasks.wake(task_name(run_id))
        found = wait_session(model, run_id, wait_seconds, "end", host.stopping)
        if _read_small(model, release_path) == "abort" and found["task_running"]:
            model.tasks.stop(task_name(run_id))
            found = status(model, run_id)
    present, deleted = [], []
    if found["shadow_set_id"]:
        present = set_shadow_ids(model, found["shadow_set_id"])
        if delete and not found["task_running"]:
            deleted = remove_shadows(model, found["shadow_set_id"])
    if found["state"] != "missing" and not found["task_running"]:
        model.tasks.unregister(task_name(run_id))
    found["decision"] = _read_small(model, release_path)
    found["released_before"] = released_before
    found["present_shadow_ids"] = present
    found["deleted_shadow_ids"] = deleted
    return found


def set_shadow_ids(model, set_id=None, shadow_ids=()):
    """Get-SetShadowIds: ids (``{guid}``, lower case) of the set's shadow copies, or of the listed ones, that exist."""
    wanted = [braced_guid(shadow_id) for shadow_id in shadow_ids if shadow_id is not None]
    wanted_set = braced_guid(set_id) if set_id else None
    return [record["ID"].lower() for record in model.shadows.list()
            if (wanted_set and record["SetID"].lower() == wanted_set) or record["ID"].lower() in wanted]


def remove_shadows(model, set_id=None, shadow_ids=()):
    """Remove-Shadows: ``delete shadows set``/``id`` through diskshadow; the ids that existed before and are gone."""
    shadow_ids = [shadow_id for shadow_id in shadow_ids if shadow_id is not None]
    before = set_shadow_ids(model, set_id, shadow_ids)
    if not before:
        return []
    if not model.os.is_server:
        raise AgentError("diskshadow.exe is not on this host (it ships with Windows Server only)")
    lines = ["delete shadows set %s" % braced_guid(set_id)] if set_id else []
    lines += ["delete shadows id %s" % braced_guid(shadow_id) for shadow_id in shadow_ids]
    result = run_diskshadow(model, "\r\n".join(lines) + "\r\n")
    after = set_shadow_ids(model, set_id, shadow_ids)
    if after:
        raise AgentError("diskshadow did not delete the shadow copies %s" % ", ".join(after),
                         hresult="0x%08X" % result.failure if result.failure else None,
                         command=diskshadow_command(), output=result.output[:OUTPUT_LIMIT], exit_code=result.exit_code,
                         where="at Remove-Shadows, <No file>")
    return before


def shadow_delete(host, args):
    set_id = args.get("shadow_set_id")
    shadow_ids = args.get("shadow_ids") or []
    if not isinstance(shadow_ids, list):
        shadow_ids = [shadow_ids]
    if not set_id and not shadow_ids:
        raise AgentError("shadow_delete needs shadow_set_id or shadow_ids")
    return {"deleted_shadow_ids": remove_shadows(host.model, set_id, shadow_ids)}


def cleanup(model, older_than_seconds):
    """Invoke-SessionCleanup: runs older than that (not a task still within its own time limit): stop the task,
    delete the shadows recorded in created.txt unless released ``ok``, unregister the task, remove the directory."""
    run_ids = {path[len(RUN_ROOT) + 1:].split("\\", 1)[0] for path in model.files.list(RUN_ROOT)}
    run_ids.update(model.files.subfolders(RUN_ROOT))
    cleaned = []
    for run_id in sorted(run_ids):
        elapsed = run_age(model, run_id)
        if elapsed < older_than_seconds or not RUN_ID.match(run_id):
            continue
        task = model.tasks.get(task_name(run_id))
        if task is not None and task.active and elapsed < task.time_limit:
            continue
        entry = {"run_id": run_id, "shadow_set_id": None, "deleted_shadow_ids": [], "error": None}
        try:
            model.tasks.stop(task_name(run_id))
            run_dir = run_dir_of(run_id)
            created = model.files.read(run_file(run_dir, CREATED_FILE))
            record = parse_created(created.decode("ascii", errors="replace")) if created is not None else None
            if record and record.get("VSS_SHADOW_SET") and _read_small(model, run_file(run_dir, RELEASE_FILE)) != "ok":
                entry["shadow_set_id"] = record["VSS_SHADOW_SET"]
                entry["deleted_shadow_ids"] = remove_shadows(model, record["VSS_SHADOW_SET"])
            model.tasks.unregister(task_name(run_id))
            model.files.remove_tree(run_dir)
        except AgentError as error:
            entry["error"] = error.message
        cleaned.append(entry)
    return cleaned


def session_cleanup(host, args):
    older_than = int_argument("session_cleanup", args, "older_than_seconds")
    if older_than is None:
        raise AgentError("session_cleanup needs older_than_seconds")
    return {"cleaned": cleanup(host.model, older_than)}


def service_restart(host, args):
    """Stop (with its running dependents), start, wait: the service of a failed writer gets it back, STABLE, with a new
    instance id. ``name`` or ``names``; ``timeout_seconds`` is accepted (services restart at once in the lab)."""
    model = host.model
    names = []
    if args.get("name"):
        names.append(str(args["name"]))
    extra = args.get("names") or []
    for item in extra if isinstance(extra, list) else [extra]:
        if item is not None and str(item) not in names:
            names.append(str(item))
    if not names:
        raise AgentError("service_restart needs name (or names)")
    int_argument("service_restart", args, "timeout_seconds")
    services = []
    for name in names:
        started = time.monotonic()
        if not SERVICE_NAME.match(name):
            raise AgentError("'%s' is not a service name" % name, where="at Restart-ServiceBounded, <No file>")
        service = model.services.find(name)
        if service is None:
            raise AgentError("there is no service '%s' on this host" % name, where="at Restart-ServiceBounded, <No file>")
        previous = service.status
        if previous == "Running":
            model.services.restart(service.name)
        else:
            model.services.set_state(service.name, "Running")
        services.append({"name": service.name, "display_name": service.display_name, "previous_status": previous,
                         "status": service.status, "restarted_dependents": [],
                         "elapsed_ms": int((time.monotonic() - started) * 1000)})
    return {"services": services}


def file_read(host, args):
    """A file's bytes as base64 with its size and SHA-256 (e.g. the session's backup.cab), bounded by max_bytes."""
    path = str(args.get("path") or "")
    if not path:
        raise AgentError("file_read needs path")
    limit = int_argument("file_read", args, "max_bytes")
    try:
        data = host.model.files.read(path)
    except ValueError:
        data = None
    if data is None:
        raise AgentError("there is no file %s" % path)
    if len(data) > limit:
        raise AgentError("%s is %d bytes, more than max_bytes (%d)" % (path, len(data), limit))
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "content_base64": base64.b64encode(data).decode("ascii")}
