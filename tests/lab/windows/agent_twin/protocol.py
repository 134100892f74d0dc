r"""What the agent and its twin must agree on: op names and handlers, argument bounds, run-directory file names and the
other names the agent shares with the controller, the keys of the error document and of the raw facts it answers.

The agent script gets the shared names from the controller (the ``$Shadowsnap`` block the transport generates from
the collection's Python); the twin spells them here on its own, because it models the host, not the controller's
code. tests/unit/lab/test_agent_twin_parity.py reads the script as the transport sends it (the block, the
``Get-IntArgument`` calls of each op's handler, the keys of ``New-ErrorAnswer`` and of the raw facts) and fails when
the two disagree.
"""

import json
import re
import time
import uuid

PROTOCOL = 1
AGENT_MARKER = "# shadowsnap-agent protocol="
BOOTSTRAP_SIGNATURE = "shadowsnap bootstrap:"

READ_OPS = ("facts", "storage", "writers", "shadows", "sessions")
# The session and restore ops: never batched; all but session_status and file_read change the host.
SESSION_OPS = ("session_start", "session_status", "session_release", "shadow_delete", "session_cleanup",
               "service_restart", "file_read", "disk_online", "disk_offline", "shadow_revert", "shadow_expose",
               "shadow_unexpose", "service_set", "files_copy")
BATCH_OP = "batch"
# Reads and the restore ops that change the host, carried out in order by one request; the first failure ends it.
SEQUENCE_OP = "sequence"
SEQUENCE_OPS = READ_OPS + ("disk_online", "disk_offline", "shadow_revert", "shadow_expose", "service_set")
WRITER_SOURCES = ("vssadmin", "diskshadow_status", "diskshadow_detailed")

# Whole-number arguments per op: name -> (default, minimum, maximum); Get-IntArgument clamps into the bounds.
INT_ARGUMENTS = {
    "session_start": {"wait_seconds": (0, 0, 900), "time_limit_seconds": (3600, 60, 86400)},
    "session_status": {"wait_seconds": (0, 0, 900)},
    "session_release": {"wait_seconds": (0, 0, 900)},
    "service_restart": {"timeout_seconds": (60, 1, 300)},
    "file_read": {"max_bytes": (16777216, 1, 134217728)},
    "service_set": {"timeout_seconds": (60, 1, 300)},
}
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RUN_ID = re.compile(RUN_ID_PATTERN)
GUID_PATTERN = r"^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$"
SERVICE_NAME_PATTERN = r"^[A-Za-z0-9_.$-][A-Za-z0-9 _.$-]{0,255}$"

PROGRAM_DATA = "C:\\ProgramData"
AGENT_FOLDER = "shadowsnap"
RUNS_FOLDER = "runs"
# files_copy: the most robocopy runs one request may hold, and the keys of each run's answer.
FILES_COPY_MAX_JOBS = 64
FILES_COPY_JOB_KEYS = ("command", "exit_code", "output")
SHADOWSNAP_ROOT = PROGRAM_DATA + "\\" + AGENT_FOLDER
RUN_ROOT = SHADOWSNAP_ROOT + "\\" + RUNS_FOLDER
TASK_PATH = "\\shadowsnap\\"
TASK_PREFIX = "shadowsnap-"
# The files session_start writes (the controller generates them), and those it needs.
SCRIPT_FILE = "snapshot.dsh"
RUN_FILE = "run.cmd"
SESSION_FILES = (SCRIPT_FILE, "record.cmd", "hold.cmd", RUN_FILE)
REQUIRED_SESSION_FILES = (SCRIPT_FILE, "record.cmd", RUN_FILE)
# The files of a run directory the agent reads besides those: the record, the exit code, the release decision,
# diskshadow's output.
CREATED_FILE = "created.txt"
EXIT_FILE = "exit.txt"
RELEASE_FILE = "release.txt"
LOG_FILE = "diskshadow.log"
RUN_FILES = (CREATED_FILE, EXIT_FILE, RELEASE_FILE, LOG_FILE)
SHADOW_SET_VARIABLE = "VSS_SHADOW_SET"
RELEASE_DECISIONS = ("ok", "abort")
ABORT_DECISION = "abort"
# Task Scheduler's states of a task that runs or is about to, and the LastTaskResult of one started but not run yet.
ACTIVE_TASK_STATES = ("Running", "Queued", "4", "2")
TASK_NEVER_RAN = 0x00041303
SYSTEM_SID = "S-1-5-18"
ADMINISTRATORS_SID = "S-1-5-32-544"

# The keys of the raw facts the session ops answer (docs/vss-session.md "Run facts", "The session directory").
RUN_FACT_KEYS = ("run_id", "run_dir", "exists", "created", "task", "files", "log", "log_truncated")
TASK_FACT_KEYS = ("name", "state", "last_result", "time_limit")
FOLDER_FACT_KEYS = ("path", "exists", "created", "owner", "owner_name", "attributes", "link_type", "link_target",
                    "inherits", "explicit_access", "error")
ACCESS_ENTRY_KEYS = ("identity", "name", "rights", "type", "inheritance", "propagation")
SESSIONS_KEYS = ("root", "run_root", "read_at", "folders", "runs")
SHADOW_COPY_KEYS = ("ID", "SetID")
CLEANED_KEYS = ("run_id", "shadow_set_id", "deleted_shadow_ids", "error")
# What session_start and session_release add to the run facts.
START_KEYS = ("cleaned",)
RELEASE_KEYS = ("released_before", "shadow_copies", "deleted_shadow_ids")
# What the restore ops answer: a disk's state after disk_online / disk_offline, a service after service_set, the
# answers of shadow_revert, shadow_expose and shadow_unexpose.
DISK_STATE_KEYS = ("number", "is_offline", "is_read_only", "guid", "signature", "partition_number", "drive_letter",
                   "access_paths")
SERVICE_STATE_KEYS = ("name", "previous_status", "status")
REVERT_KEYS = ("shadow_id", "tool", "command", "output")
EXPOSE_KEYS = ("shadow_id", "path", "output")
UNEXPOSE_KEYS = ("path", "output")

OUTPUT_LIMIT = 65536
LOG_LIMIT = 524288
IN_PROGRESS_HRESULT = "0x80042316"
ANSWER_KEYS = ("protocol", "op", "ok", "result", "error", "elapsed_ms")
ERROR_KEYS = ("message", "hresult", "command", "exit_code", "output", "type", "where")
TEMP_FOLDER = "C:\\Users\\Administrator\\AppData\\Local\\Temp"
_HRESULT_IN_TEXT = re.compile(r"[:\uff1a]\s*(?:0x)?(8[0-9A-Fa-f]{7})\s*$", re.MULTILINE)


class AgentError(Exception):
    """An operation failed the way the agent reports it: the ``error`` document of an ``ok: false`` answer."""

    def __init__(self, message, hresult=None, command=None, exit_code=None, output=None, where=None):  # pylint: disable=too-many-arguments
        super().__init__(message)
        self.message = message
        self.hresult = hresult
        self.command = command
        self.exit_code = exit_code
        self.output = output
        self.where = where

    def document(self):
        hresult = self.hresult
        if isinstance(hresult, int):
            hresult = "0x%08X" % (hresult & 0xFFFFFFFF)
        values = {"message": self.message, "hresult": hresult, "command": self.command, "exit_code": self.exit_code,
                  "output": self.output, "type": "System.Exception",
                  "where": self.where or "at <ScriptBlock>, <No file>: line 1"}
        return {key: values[key] for key in ERROR_KEYS}


def error_document(**values):
    """A complete error document (every key of the agent's), from what a replay or a test gives."""
    document = AgentError("replayed failure").document()
    document.update(values)
    return document


def answer(op, started, result=None, error=None):
    """The answer document of one op (``ok`` with its result, or the error document)."""
    document = {"protocol": PROTOCOL, "op": op, "ok": error is None}
    if error is None:
        document["result"] = result
    else:
        document["error"] = error
    document["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return document


def encode_answer(document):
    """``ConvertTo-Json -Compress`` with non-ASCII escaped, written by ``Write-Output`` (a CRLF after it)."""
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\r\n"


def split_agent_input(lines):
    """``(request_text, script, protocol)`` when standard input's lines carry the agent, else None."""
    if len(lines) < 2:
        return None
    first = lines[1].lstrip("\ufeff").strip()
    if not first.startswith(AGENT_MARKER):
        return None
    version = first[len(AGENT_MARKER):].strip()
    return lines[0], "\n".join(lines[1:]), version


def is_collection_bootstrap(script):
    return BOOTSTRAP_SIGNATURE in script and "$input" in script


def bootstrap_error(message):
    """The document the collection's bootstrap writes when it cannot start the agent."""
    document = {"protocol": PROTOCOL, "op": None, "ok": False,
                "error": {"message": BOOTSTRAP_SIGNATURE + " " + message, "hresult": None, "command": None, "exit_code": None}}
    return encode_answer(document)


def parse_request(request_text):
    """The request document, or raises AgentError as the agent reports a request that is not JSON."""
    try:
        return json.loads(request_text)
    except ValueError as error:
        raise AgentError("Invalid JSON primitive: %s (%s)" % (request_text[:40], error)) from error


def get_property(value, name, default=None):
    """The agent's Get-Property: a key of an object, or the default (also for things that are not objects)."""
    if isinstance(value, dict) and name in value:
        return value[name]
    return default


def diskshadow_command():
    """The command line the agent's Invoke-DiskShadow reports: diskshadow on a temporary script of its own."""
    return "diskshadow.exe /s %s\\shadowsnap-%s.dsh" % (TEMP_FOLDER, uuid.uuid4().hex)


def hresult_in_text(text):
    """The failure HRESULT a native tool printed after a label, by structure (the agent's Get-HResultFromText)."""
    match = _HRESULT_IN_TEXT.search(text or "")
    return "0x" + match.group(1).upper() if match else None


def int_argument(op, args, name, where="at Get-IntArgument, <No file>"):
    """The agent's Get-IntArgument with the op's bounds of :data:`INT_ARGUMENTS`: a whole number clamped into
    [minimum, maximum], the default when absent; AgentError for anything else."""
    default, minimum, maximum = INT_ARGUMENTS[op][name]
    value = args.get(name) if isinstance(args, dict) else None
    if value is None:
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not re.match(r"^[+-]?\d+$", text):
        raise AgentError("argument '%s' must be a whole number, not '%s'" % (name, value), where=where)
    return max(minimum, min(maximum, int(text)))


def run_id_argument(args):
    run_id = str(args.get("run_id") if isinstance(args, dict) and args.get("run_id") is not None else "")
    if not RUN_ID.match(run_id):
        raise AgentError("run id '%s' is not valid (letters, digits, '.', '_' or '-', at most 64)" % run_id,
                         where="at Get-RunId, <No file>")
    return run_id


def checked_guid(value):
    """The agent's Assert-Guid: ``{guid}`` as the controller sends it, in lower case, or AgentError (no text reaches a
    diskshadow script unchecked)."""
    text = "" if value is None else str(value)
    if not re.match(GUID_PATTERN, text):
        raise AgentError("'%s' is not a GUID" % text, where="at Assert-Guid, <No file>")
    return text.lower()


def list_argument(args, name, allowed):
    """The agent's Get-ListArgument: a list (one value counts as a list of one), each item one of ``allowed``."""
    value = args.get(name) if isinstance(args, dict) else None
    items = [str(item) for item in (value if isinstance(value, list) else [value]) if item is not None]
    for item in items:
        if item.lower() not in [entry.lower() for entry in allowed]:
            raise AgentError("argument '%s' may hold %s, not '%s'" % (name, ", ".join(allowed), item),
                             where="at Get-ListArgument, <No file>")
    return items


def run_dir_of(run_id):
    return RUN_ROOT + "\\" + run_id


def run_file(run_dir, name):
    return run_dir + "\\" + name
