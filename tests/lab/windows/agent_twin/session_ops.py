r"""The twin's session ops of the shadow engine (docs/vss-session.md), and its read op ``sessions``.

What the agent does on Windows, done on the host's model, answered with the same raw facts: ``session_start`` cleans
the leftover runs the controller chose, creates ``C:\ProgramData\shadowsnap`` and its ``runs`` folder where the
controller found them missing (the root protected as the agent's Set-Acl does), writes the files the controller
generated into ``runs\<run_id>\`` (the C: volume's content, so an EBS snapshot of C: carries them), registers and
starts the task ``\shadowsnap\shadowsnap-<run_id>`` (lab.windows.tasks runs its ``run.cmd``) and waits for one of the
files the controller waits for; ``session_status`` reads the run back; ``session_release`` writes ``release.txt``;
``shadow_delete`` deletes shadow copies through diskshadow; ``session_cleanup`` removes the runs it is given;
``sessions`` reports the session tree (owner, reparse point, explicit entries of each folder) and every run.

Like the agent, the twin decides no state: the controller derives it from these facts. It follows the agent's rule for
a task that is still active (running, queued, or started and not run yet) in its waits and its refusal of a second
session, as the agent does.
"""

import base64
import datetime
import hashlib
import re
import time

from ..diskshadow import run_diskshadow
from ..files import ADMINISTRATORS
from ..locales import agent_decode
from .protocol import (
    ABORT_DECISION,
    ACTIVE_TASK_STATES,
    CREATED_FILE,
    EXIT_FILE,
    IN_PROGRESS_HRESULT,
    LOG_FILE,
    LOG_LIMIT,
    OUTPUT_LIMIT,
    RELEASE_DECISIONS,
    RELEASE_FILE,
    REQUIRED_SESSION_FILES,
    RUN_FILES,
    RUN_ROOT,
    SERVICE_NAME_PATTERN,
    SESSION_FILES,
    SHADOW_SET_VARIABLE,
    SHADOWSNAP_ROOT,
    TASK_NEVER_RAN,
    TASK_PATH,
    TASK_PREFIX,
    AgentError,
    checked_guid,
    diskshadow_command,
    int_argument,
    list_argument,
    run_dir_of,
    run_file,
    run_id_argument,
)

SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)
# How Get-Item shows a junction: the attributes, and PowerShell's LinkType.
JUNCTION_ATTRIBUTES = "Directory, ReparsePoint"
JUNCTION_LINK_TYPE = "Junction"


def task_name(run_id):
    return TASK_PREFIX + run_id


def utc_text(moment):
    """ConvertTo-UtcText: ISO 8601 in UTC with milliseconds and a ``Z``."""
    moment = moment.astimezone(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def created_text(model, folder):
    """A folder's CreationTimeUtc on the host's clock (the lab keeps when it was created on its monotonic clock)."""
    return utc_text(model.clock() - datetime.timedelta(seconds=time.monotonic() - folder.created))


def duration_text(seconds):
    """A TimeSpan as Task Scheduler's ExecutionTimeLimit shows it (XmlConvert): ``PT1H``, ``PT25M``, ``P1DT2H``."""
    days, rest = divmod(int(round(seconds)), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    time_part = "".join("%d%s" % (value, unit) for value, unit in ((hours, "H"), (minutes, "M"), (secs, "S")) if value)
    if not days and not time_part:
        return "PT0S"
    return "P" + ("%dD" % days if days else "") + ("T" + time_part if time_part else "")


def age(model, run_id, seconds):
    """Lab control: make a run directory ``seconds`` older (so that the controller's leftover rule can be tested)."""
    folder = model.files.folder(run_dir_of(run_id))
    if folder is None:
        raise AgentError("no run directory %s" % run_dir_of(run_id))
    folder.created -= float(seconds)
    task = model.tasks.get(task_name(run_id))
    if task is not None:
        task.started -= float(seconds)


# ------------------------------------------------------------------------------------------------ facts


def task_active(task):
    """Test-TaskActive: running or queued, or started and not run yet."""
    return task is not None and (task.state in ACTIVE_TASK_STATES or task.last_result == TASK_NEVER_RAN)


def task_facts(task):
    """Get-TaskFacts: what Task Scheduler says of a run's task; None when it is not registered."""
    if task is None:
        return None
    return {"name": task.name, "state": task.state, "last_result": task.last_result, "time_limit": duration_text(task.time_limit)}


def read_run_file(model, run_dir, name):
    """Read-RunFile: the text of a small ASCII file of a run directory, as it is; None when absent."""
    data = model.files.read(run_file(run_dir, name))
    return None if data is None else data.decode("ascii", errors="replace")


def run_facts(model, run_id, with_log=False):
    """Get-RunFacts: the directory, the task (read before the files), created.txt, exit.txt, release.txt, the log."""
    run_dir = run_dir_of(run_id)
    facts = {"run_id": run_id, "run_dir": run_dir, "exists": False, "created": None, "task": None, "files": {},
             "log": None, "log_truncated": False}
    if not model.files.folder_exists(run_dir):
        return facts
    folder = model.files.folder(run_dir)
    facts["exists"] = True
    facts["created"] = created_text(model, folder) if folder is not None else utc_text(model.clock())
    facts["task"] = task_facts(model.tasks.get(task_name(run_id)))
    facts["files"] = {name: read_run_file(model, run_dir, name) for name in (CREATED_FILE, EXIT_FILE, RELEASE_FILE)}
    if with_log:
        data = model.files.read(run_file(run_dir, LOG_FILE))
        if data is not None:
            text = agent_decode(data, model.locale.oem_code_page)
            facts["log_truncated"] = len(text) > LOG_LIMIT
            facts["log"] = text[-LOG_LIMIT:]
    return facts


def wait_run(model, run_id, seconds, wait_for, cancel=None):
    """Wait-Run: until a file of ``wait_for`` exists, the task no longer runs or the directory is gone; the facts."""
    run_dir = run_dir_of(run_id)

    def settled():
        return (not model.files.folder_exists(run_dir) or not task_active(model.tasks.get(task_name(run_id)))
                or any(model.files.exists(run_file(run_dir, name)) for name in wait_for))

    model.tasks.wait(settled, seconds, cancel)
    return run_facts(model, run_id, with_log=True)


def folder_facts(model, path):
    """Get-FolderFacts: owner, attributes, link, inheritance and explicit entries of a folder. Get-Item shows a junction
    itself; its security is read where Windows opens it, at the target (the lab's inference, as for Set-Acl)."""
    files = model.files
    facts = {"path": path, "exists": False, "created": None, "owner": None, "owner_name": None, "attributes": None,
             "link_type": None, "link_target": None, "inherits": None, "explicit_access": [], "error": None}
    if not files.folder_exists(path):
        return facts
    folder = files.folder(path)
    junction = folder.junction_to if folder is not None else None
    secured = files.folder(files.real_path(path)) if junction else folder
    facts.update(exists=True, created=created_text(model, folder) if folder is not None else utc_text(model.clock()),
                 attributes=JUNCTION_ATTRIBUTES if junction else "Directory",
                 link_type=JUNCTION_LINK_TYPE if junction else None, link_target=junction)
    if secured is None:
        facts.update(owner=ADMINISTRATORS, owner_name=files.account(ADMINISTRATORS), inherits=True)
        return facts
    facts.update(owner=secured.owner, owner_name=files.account(secured.owner), inherits=not secured.protected,
                 explicit_access=[{"identity": entry["identity"], "name": files.account(entry["identity"]),
                                   "rights": entry["rights"], "type": entry["type"], "inheritance": entry["inheritance"],
                                   "propagation": "None"} for entry in secured.aces])
    return facts


def run_names(model):
    """The folders in the runs folder (Get-ChildItem -Directory), through a junction as Windows lists them."""
    depth = RUN_ROOT.count("\\") + 1
    names = {path.split("\\")[depth] for path in model.files.list(RUN_ROOT) if path.count("\\") > depth}
    names.update(model.files.subfolders(RUN_ROOT))
    return sorted(names)


def sessions(host, args):
    """Get-SessionsResult: the session tree's folders and every run, read before a session starts."""
    model = host.model
    folders = [folder_facts(model, SHADOWSNAP_ROOT), folder_facts(model, RUN_ROOT)]
    runs = []
    if model.files.folder_exists(RUN_ROOT):
        for name in run_names(model):
            folders.append(folder_facts(model, run_dir_of(name)))
            runs.append(run_facts(model, name))
    return {"root": SHADOWSNAP_ROOT, "run_root": RUN_ROOT, "read_at": utc_text(model.clock()), "folders": folders,
            "runs": runs}


# ------------------------------------------------------------------------------------------------ folders and shadows


def initialize_session_folders(model, create_folders):
    """Initialize-SessionFolders: the root and its runs folder created where the controller found them missing (refused
    where they appeared or vanished since), the root protected (Protect-SessionRoot) before anything goes into it."""
    wanted = {path.lower() for path in create_folders}
    for path in (SHADOWSNAP_ROOT, RUN_ROOT):
        if path.lower() in wanted:
            if model.files.folder_exists(path) or model.files.exists(path):
                raise AgentError("%s exists now, but did not when the controller checked the session directory: someone "
                                 "else created it; the session was not started" % path, where="at New-SessionFolder, <No file>")
            model.files.create_folder(path)
        elif not model.files.folder_exists(path):
            raise AgentError("%s is gone since the controller checked the session directory; the session was not started"
                             % path, where="at Initialize-SessionFolders, <No file>")
        if path == SHADOWSNAP_ROOT:
            model.files.protect(path)


def shadow_copy_ids(model):
    """Get-ShadowCopyIds: every shadow copy's ID and SetID as Win32_ShadowCopy gives them (upper case)."""
    return [{"ID": record["ID"].upper(), "SetID": record["SetID"].upper()} for record in model.shadows.list()]


def set_shadow_ids(model, set_id=None, shadow_ids=()):
    """Get-SetShadowIds: ids (``{guid}``, lower case) of the set's shadow copies, or of the listed ones, that exist."""
    wanted = [checked_guid(shadow_id) for shadow_id in shadow_ids if shadow_id is not None]
    wanted_set = checked_guid(set_id) if set_id else None
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
    lines = ["delete shadows set %s" % checked_guid(set_id)] if set_id else []
    lines += ["delete shadows id %s" % checked_guid(shadow_id) for shadow_id in shadow_ids]
    result = run_diskshadow(model, "\r\n".join(lines) + "\r\n")
    after = set_shadow_ids(model, set_id, shadow_ids)
    if after:
        raise AgentError("diskshadow did not delete the shadow copies %s" % ", ".join(after),
                         hresult="0x%08X" % result.failure if result.failure else None,
                         command=diskshadow_command(), output=result.output[:OUTPUT_LIMIT], exit_code=result.exit_code,
                         where="at Remove-Shadows, <No file>")
    return before


def recorded_set_id(model, run_dir):
    """Get-RecordedSetId: the value of created.txt's VSS_SHADOW_SET line, the one value of the record the agent reads
    itself (to delete that set at the release); None when there is none."""
    prefix = SHADOW_SET_VARIABLE + "="
    for line in (read_run_file(model, run_dir, CREATED_FILE) or "").replace("\r\n", "\n").split("\n"):
        if line.strip().startswith(prefix):
            return checked_guid(line.strip()[len(prefix):].strip())
    return None


def run_cleanup(model, runs):
    """Invoke-RunCleanup: for each run the controller chose, stop its task, delete the given shadow set, unregister the
    task, remove the run directory; one entry per run, a failure kept in its entry."""
    cleaned = []
    for run in runs if isinstance(runs, list) else [runs]:
        run = run if isinstance(run, dict) else {}
        entry = {"run_id": str(run.get("run_id") or ""), "shadow_set_id": run.get("shadow_set_id"), "deleted_shadow_ids": [],
                 "error": None}
        try:
            run_id = run_id_argument(run)
            model.tasks.stop(task_name(run_id))
            if entry["shadow_set_id"]:
                entry["deleted_shadow_ids"] = remove_shadows(model, entry["shadow_set_id"])
            model.tasks.unregister(task_name(run_id))
            model.files.remove_tree(run_dir_of(run_id))
        except AgentError as error:
            entry["error"] = error.message
        cleaned.append(entry)
    return cleaned


# ------------------------------------------------------------------------------------------------ the ops


def session_start(host, args):
    """session_start (docs/vss-session.md)."""
    model = host.model
    run_id = run_id_argument(args)
    run_dir = run_dir_of(run_id)
    wait_seconds = int_argument("session_start", args, "wait_seconds")
    time_limit = int_argument("session_start", args, "time_limit_seconds")
    wait_for = list_argument(args, "wait_for", RUN_FILES)
    create_folders = list_argument(args, "create_folders", (SHADOWSNAP_ROOT, RUN_ROOT))
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
    cleaned = run_cleanup(model, args.get("cleanup") or [])
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
        initialize_session_folders(model, create_folders)
        model.files.create_folder(run_dir)
        for name, text in files.items():
            model.files.write(run_file(run_dir, name), str(text if text is not None else "").encode("ascii"))
        tasks.register_and_start(TASK_PATH, task_name(run_id), run_file(run_dir, "run.cmd"), run_dir, time_limit, run_id)
    found = wait_run(model, run_id, wait_seconds, wait_for, host.stopping)
    found["cleaned"] = cleaned
    return found


def session_status(host, args):
    run_id = run_id_argument(args)
    wait_seconds = int_argument("session_status", args, "wait_seconds")
    return wait_run(host.model, run_id, wait_seconds, list_argument(args, "wait_for", RUN_FILES), host.stopping)


def session_release(host, args):
    """session_release: the first decision stands; an abort in effect stops a task that still runs; the shadow copies
    are listed before any deletion; the recorded set is deleted when asked once diskshadow has ended."""
    model = host.model
    run_id = run_id_argument(args)
    decision = str(args.get("decision") or "")
    if decision not in RELEASE_DECISIONS:
        raise AgentError("decision must be '%s', not '%s'" % ("' or '".join(RELEASE_DECISIONS), decision))
    wait_seconds = int_argument("session_release", args, "wait_seconds")
    delete = bool(args.get("delete_shadows", False))
    run_dir = run_dir_of(run_id)
    release_path = run_file(run_dir, RELEASE_FILE)
    released_before = model.files.exists(release_path)
    copies, deleted = [], []
    if model.files.folder_exists(run_dir):
        if not released_before:
            model.files.write(release_path, (decision + "\r\n").encode("ascii"))
        model.tasks.wake(task_name(run_id))
        wait_run(model, run_id, wait_seconds, (EXIT_FILE,), host.stopping)
        in_effect = (read_run_file(model, run_dir, RELEASE_FILE) or "").strip()
        if in_effect == ABORT_DECISION and task_active(model.tasks.get(task_name(run_id))):
            model.tasks.stop(task_name(run_id))
        copies = shadow_copy_ids(model)
        set_id = recorded_set_id(model, run_dir)
        ended = not task_active(model.tasks.get(task_name(run_id)))
        if delete and ended and set_id:
            deleted = remove_shadows(model, set_id)
        if ended:
            model.tasks.unregister(task_name(run_id))
    found = run_facts(model, run_id, with_log=True)
    found.update(released_before=released_before, shadow_copies=copies, deleted_shadow_ids=deleted)
    return found


def shadow_delete(host, args):
    set_id = args.get("shadow_set_id")
    shadow_ids = args.get("shadow_ids") or []
    if not isinstance(shadow_ids, list):
        shadow_ids = [shadow_ids]
    if not set_id and not shadow_ids:
        raise AgentError("shadow_delete needs shadow_set_id or shadow_ids")
    return {"deleted_shadow_ids": remove_shadows(host.model, set_id, shadow_ids)}


def session_cleanup(host, args):
    """session_cleanup: the runs the controller chose (``runs``: run_id and shadow_set_id each), as session_start's."""
    runs = args.get("runs")
    if runs is None:
        raise AgentError("session_cleanup needs runs (run_id and shadow_set_id of each)")
    return {"cleaned": run_cleanup(host.model, runs)}


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
