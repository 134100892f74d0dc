# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent transport: the one place where the controller talks to the Windows agent.

An action plugin sends one request per round trip through the host's own Ansible connection (``winrm``, ``psrp`` or
``ssh`` with the PowerShell shell), the way ``ansible.windows.win_reboot`` does, with
``ActionBase._low_level_execute_command``. The wire format is in ``docs/agent-protocol.md``:

- the command is ``BOOTSTRAP``, a short fixed PowerShell script, encoded by the connection's shell plugin
  (``_encode_script``: ``PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand ...``).
  The winrm and psrp connection plugins recognise that prefix and do not encode it twice; psrp decodes it and runs
  the script in its runspace; ssh runs the command line in the remote shell;
- standard input is the request (JSON, one line) and the agent script after it. Both are ASCII, so no code page can
  mangle them. The bootstrap reads them with ``$input`` (lines of stdin for winrm and ssh, pipeline input for psrp),
  turns the script into a script block and runs it with the request;
- the agent script is joined here from its parts in ``agent/`` (:func:`agent_script`): the frame with the shared helpers
  and the dispatch, the read ops, the session ops, the C# helper as a here-string, and a generated ``$Shadowsnap``
  block with the names the script shares with the controller (op lists and handlers, run-file names, the run-id and
  GUID patterns, the in-progress HRESULT...), taken from their owners (:func:`script_constants`), so that the
  PowerShell never spells them;
- standard output is exactly one JSON document; stderr may carry a CLIXML progress or error stream, kept for
  diagnostics only.

Read operations are idempotent and are retried on transient connection errors with a bounded, jittered back-off,
resetting the connection between tries. Operations that change the host are never retried: a lost answer leaves
their outcome unknown, and the caller has to look before trying again.

Usage from an action plugin::

    transport = AgentTransport(self, host=task_vars.get("inventory_hostname"))
    facts = transport.request("facts").result
    reply = transport.request_many([("facts", None), ("storage", None)])   # one round trip
    facts, storage = reply.results
    transport.request_sequence([("service_set", {...}), ("disk_offline", {...})])   # in order, up to a failure
    transport.round_trips                                                   # commands sent so far
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import json
import random
import re
import socket
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.utils.display import Display

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow, run_ids, session_host
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import GUID_PATTERN
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss import (
    VSS_E_SNAPSHOT_SET_IN_PROGRESS,
    format_hresult,
    hresult_from_text,
    hresult_info,
)

try:
    from requests import exceptions as requests_exceptions
except ImportError:  # pragma: no cover - requests comes with pywinrm and pypsrp
    requests_exceptions = None

display = Display()

PROTOCOL_VERSION = 1
AGENT_HEADER = "# shadowsnap-agent protocol=1"
AGENT_DIRECTORY = Path(__file__).resolve().parent / "agent"
# The agent script's parts: the frame (the protocol header, the shared helpers, the dispatch) holds the line
# PARTS_MARKER, where the generated constants, the C# helper and the other parts go, in this order.
AGENT_FRAME = "shadowsnap_agent.ps1"
AGENT_PARTS = ("read_ops.ps1", "session_ops.ps1", "restore_ops.ps1", "files_ops.ps1")
VOLUME_EXTENTS_SOURCE = "VolumeExtents.cs"
PARTS_MARKER = "# @shadowsnap-agent-parts@"

# Every op of the protocol and the function of the agent script that answers it (the script dispatches by this).
AGENT_OPS = {
    "facts": "Get-FactsResult",
    "storage": "Get-StorageResult",
    "writers": "Get-WritersResult",
    "shadows": "Get-ShadowsResult",
    "sessions": "Get-SessionsResult",
    "session_start": "Start-Session",
    "session_status": "Invoke-SessionStatus",
    "session_release": "Invoke-SessionRelease",
    "shadow_delete": "Invoke-ShadowDelete",
    "session_cleanup": "Invoke-SessionCleanup",
    "service_restart": "Invoke-ServiceRestart",
    "file_read": "Invoke-FileRead",
    "disk_online": "Invoke-DiskOnline",
    "disk_offline": "Invoke-DiskOffline",
    "shadow_revert": "Invoke-ShadowRevert",
    "shadow_expose": "Invoke-ShadowExpose",
    "shadow_unexpose": "Invoke-ShadowUnexpose",
    "service_set": "Invoke-ServiceSet",
    "files_copy": "Invoke-FilesCopy",
}
# Ops that only read: safe to repeat after a lost answer. A batch is a read when every op in it is one.
READ_OPS = ("facts", "storage", "writers", "shadows", "sessions")
# The session ops (docs/vss-session.md): never batched; all but these idempotent ones change the host.
SESSION_OPS = tuple(op for op in AGENT_OPS if op not in READ_OPS)
# Ops that change nothing on the host either, but are not batchable reads: they may be retried after a lost answer too.
IDEMPOTENT_OPS = ("session_status", "file_read")
BATCH_OP = "batch"
# Reads and the restore ops that change the host, carried in order by one round trip: the first that fails ends it.
SEQUENCE_OP = "sequence"
SEQUENCE_OPS = READ_OPS + ("disk_online", "disk_offline", "shadow_revert", "shadow_expose", "service_set")

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0

# The bootstrap, run with -EncodedCommand. The shell plugin strips every line and drops blank ones before encoding,
# so nothing here may depend on indentation. It must stay small: over ssh it travels on a command line.
BOOTSTRAP = r"""
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try {
$shadowsnapLines = @(foreach ($shadowsnapLine in $input) { [string]$shadowsnapLine })
if ($shadowsnapLines.Count -lt 2) { throw 'expected the request line and the agent script on standard input' }
$shadowsnapMode = [string]$ExecutionContext.SessionState.LanguageMode
if ($shadowsnapMode -ne 'FullLanguage') { throw ('the agent needs FullLanguage, PowerShell runs in ' + $shadowsnapMode) }
$shadowsnapAgent = [ScriptBlock]::Create(($shadowsnapLines[1..($shadowsnapLines.Count - 1)] -join "`n"))
}
catch {
$shadowsnapMessage = ConvertTo-Json -InputObject ('shadowsnap bootstrap: ' + $_.Exception.Message) -Compress
'{"protocol":1,"op":null,"ok":false,"error":{"message":' + $shadowsnapMessage + ',"hresult":null,"command":null,"exit_code":null}}'
exit 0
}
& $shadowsnapAgent $shadowsnapLines[0]
exit 0
"""

_SNIPPET_CHARS = 400

# Connection errors that say "this will not get better by itself": retrying them only locks accounts.
_PERMANENT_MESSAGE = re.compile(
    r"credentials were rejected|unauthori[sz]ed|\bcode\s+401\b|access is denied|authentication failed|"
    r"no (?:suitable )?authentication|certificate verify failed",
    re.IGNORECASE,
)
_TIMEOUT_MESSAGE = re.compile(r"timed?\s*out", re.IGNORECASE)
# WS-Management faults after which a fresh shell helps: the shell or command the client knows is gone (WinRM restart).
_TRANSIENT_WSMAN_FAULTS = frozenset((0x8033805B, 0x8033805A))


class AgentError(Exception):
    """A request to the agent failed; ``host`` and ``op`` say where and what."""

    def __init__(self, message: str, *, host: str, op: str | None):
        super().__init__(message)
        self.host = host
        self.op = op


class AgentTransportError(AgentError):
    """The request did not come back as an agent answer: connection failure, exit code, not one JSON document."""

    def __init__(self, message: str, *, host: str, op: str | None, rc: int | None = None, stdout: str = "",
                 stderr: str = "", round_trips: int = 0):
        super().__init__(message, host=host, op=op)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.round_trips = round_trips


class AgentConnectionError(AgentTransportError):
    """The connection failed (after the retries a read op is allowed, or at once for an op that changes the host)."""


class AgentProtocolError(AgentTransportError):
    """The host answered, but not with one agent answer document of this protocol version."""


class AgentOperationError(AgentError):
    """The agent ran and reported that the operation failed (the error document of docs/agent-protocol.md).

    In a sequence, ``completed`` holds the results of the ops before the failed one (they were carried out).
    """

    def __init__(self, *, host: str, op: str | None, error: dict, round_trips: int = 0, completed: tuple = ()):
        self.error = error
        self.completed = completed
        self.reason = str(error.get("message") or "no message")
        self.command = error.get("command")
        self.exit_code = error.get("exit_code")
        self.output = error.get("output")
        self.hresult = _parse_hresult(error.get("hresult"))
        info = hresult_info(self.hresult) if self.hresult is not None else None
        self.hresult_name = info.name if info else None
        self.advice = info.advice if info else None
        self.round_trips = round_trips
        super().__init__(self._describe(host, op, info), host=host, op=op)

    def _describe(self, host: str, op: str | None, info) -> str:
        parts = [f"{host}: agent op {op!r} failed: {self.reason}"]
        if self.command:
            exit_text = f", exit code {self.exit_code}" if self.exit_code is not None else ""
            parts.append(f"command: {self.command}{exit_text}")
        if self.hresult is not None:
            text = f"HRESULT {format_hresult(self.hresult)}"
            if info:
                text += f": {info.meaning} {info.advice}"
            parts.append(text)
        return "; ".join(parts)


def _parse_hresult(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int):
        return value & 0xFFFFFFFF
    try:
        return hresult_from_text(str(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class AgentReply:
    """What one request brought back.

    ``result`` is the op's result (for a batch, the raw ``{"answers": [...]}``); ``results`` holds the result of every
    op in request order (one item for a single op). ``round_trips`` counts the commands sent for this request, retries
    included; ``elapsed`` is controller-side seconds, back-off included; ``agent_elapsed_ms`` is what the agent
    measured; ``stderr`` is what the host wrote on stderr (CLIXML decoded), for diagnostics.
    """

    op: str
    result: dict
    results: tuple
    round_trips: int
    elapsed: float
    agent_elapsed_ms: int | None
    stderr: str


def script_constants() -> dict:
    """The names the agent script shares with the controller, from their owners; the script reads them as
    ``$Shadowsnap.<Name>`` and spells none of them itself."""
    return {
        "Protocol": PROTOCOL_VERSION,
        "ReadOps": list(READ_OPS),
        "SessionOps": list(SESSION_OPS),
        "Handlers": dict(AGENT_OPS),
        "BatchOp": BATCH_OP,
        "SequenceOp": SEQUENCE_OP,
        "SequenceOps": list(SEQUENCE_OPS),
        "RunIdPattern": run_ids.RUN_ID_PATTERN,
        "GuidPattern": "^" + GUID_PATTERN + "$",
        "InProgressHResult": "0x%08X" % VSS_E_SNAPSHOT_SET_IN_PROGRESS,
        "AgentFolder": diskshadow.AGENT_FOLDER,
        "RunsFolder": diskshadow.RUNS_FOLDER,
        "TaskPath": run_ids.TASK_PATH,
        "TaskPrefix": run_ids.TASK_PREFIX,
        "SessionFiles": list(diskshadow.SESSION_FILES),
        "RequiredSessionFiles": list(diskshadow.REQUIRED_SESSION_FILES),
        "ScriptFile": diskshadow.SCRIPT_FILE,
        "RunFile": diskshadow.RUN_FILE,
        "CreatedFile": diskshadow.CREATED_FILE,
        "ExitFile": diskshadow.EXIT_FILE,
        "ReleaseFile": diskshadow.RELEASE_FILE,
        "LogFile": diskshadow.LOG_FILE,
        "ShadowSetVariable": diskshadow.SHADOW_SET_VARIABLE,
        "ReleaseDecisions": list(diskshadow.RELEASE_DECISIONS),
        "AbortDecision": diskshadow.RELEASE_ABORT,
        "ActiveTaskStates": list(session_host.ACTIVE_TASK_STATES),
        "TaskNeverRan": session_host.TASK_NEVER_RAN,
        "SystemSid": session_host.SYSTEM_SID,
        "AdministratorsSid": session_host.ADMINISTRATORS_SID,
    }


def powershell_literal(value: Any) -> str:
    """A PowerShell expression for a constant: single-quoted text, a whole number, an array, an ordered dictionary."""
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if not value.isascii():
            raise ValueError(f"agent constant {value!r} is not ASCII")
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return "@(" + ", ".join(powershell_literal(item) for item in value) + ")"
    if isinstance(value, dict):
        return "[ordered]@{ " + "; ".join(f"{_powershell_key(key)} = {powershell_literal(item)}" for key, item in value.items()) + " }"
    raise TypeError(f"no PowerShell literal for {value!r}")


def _powershell_key(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"agent constant name {key!r} is not a plain identifier")
    return key


def constants_block(constants: dict | None = None) -> str:
    """``$Shadowsnap = [pscustomobject]...``: a property the script reads but the block lacks fails under strict mode."""
    lines = ["# The names this agent shares with the controller (generated by agent_transport.py from their owners).",
             "$Shadowsnap = [pscustomobject][ordered]@{"]
    lines += [f"    {_powershell_key(name)} = {powershell_literal(value)}"
              for name, value in (script_constants() if constants is None else constants).items()]
    return "\n".join(lines + ["}"])


def _read_part(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AnsibleError(f"the agent script part {path} must be ASCII only: byte {exc.start} is not") from exc
    return text.replace("\r\n", "\n")


def agent_script(directory: Path = AGENT_DIRECTORY) -> str:
    """The one agent script sent with every request: the frame with the generated constants, the C# helper (as the
    here-string ``$VolumeExtentsSource``) and the other parts in place of its PARTS_MARKER line. Every part is checked
    to be ASCII (no code page can change it); the protocol header is the first line."""
    frame = _read_part(directory / AGENT_FRAME)
    if frame.split("\n", 1)[0].strip() != AGENT_HEADER:
        raise AnsibleError(f"the agent script {directory / AGENT_FRAME} must start with the line {AGENT_HEADER!r}")
    marker = re.compile("^" + re.escape(PARTS_MARKER) + "\n", re.MULTILINE)
    if len(marker.findall(frame)) != 1:
        raise AnsibleError(f"the agent script {directory / AGENT_FRAME} must hold the line {PARTS_MARKER!r} once")
    source = _read_part(directory / VOLUME_EXTENTS_SOURCE)
    if re.search(r"^'@", source, flags=re.MULTILINE):
        raise AnsibleError(f"{directory / VOLUME_EXTENTS_SOURCE} must not have a line starting with '@ (that would end "
                           f"the here-string the script carries it in)")
    inserted = [constants_block(), "$VolumeExtentsSource = @'", source.rstrip("\n"), "'@"]
    inserted += [_read_part(directory / name).rstrip("\n") for name in AGENT_PARTS]
    return marker.sub(lambda match: "\n".join(inserted) + "\n", frame, count=1)


def is_read_request(op: str, args: dict | None = None) -> bool:
    """Whether a request only reads (and may be retried): a read op, an idempotent op, or a batch of read ops only."""
    if op == BATCH_OP:
        requests = (args or {}).get("requests") or []
        return bool(requests) and all(item.get("op") in READ_OPS for item in requests)
    return op in READ_OPS or op in IDEMPOTENT_OPS


def build_request(op: str, args: dict | None = None) -> dict:
    """The request document of docs/agent-protocol.md."""
    return {"protocol": PROTOCOL_VERSION, "op": op, "args": dict(args or {})}


def build_batch_request(requests: Iterable[tuple[str, dict | None]]) -> dict:
    """A ``batch`` request: several read ops in one round trip, answered in order."""
    items = [{"op": op, "args": dict(args or {})} for op, args in requests]
    if not items:
        raise ValueError("a batch needs at least one request")
    not_reads = sorted({item["op"] for item in items if item["op"] not in READ_OPS})
    if not_reads:
        raise ValueError(f"a batch holds read ops only ({', '.join(sorted(READ_OPS))}); not: {', '.join(not_reads)}")
    return build_request(BATCH_OP, {"requests": items})


def build_sequence_request(requests: Iterable[tuple[str, dict | None]]) -> dict:
    """A ``sequence`` request: reads and restore ops carried out in order in one round trip, up to the first failure."""
    items = [{"op": op, "args": dict(args or {})} for op, args in requests]
    if not items:
        raise ValueError("a sequence needs at least one request")
    others = sorted({item["op"] for item in items if item["op"] not in SEQUENCE_OPS})
    if others:
        raise ValueError(f"a sequence holds {', '.join(SEQUENCE_OPS)} only; not: {', '.join(others)}")
    return build_request(SEQUENCE_OP, {"requests": items})


def build_stdin(request: dict, script: str) -> bytes:
    """Standard input of the bootstrap: the request on one line, then the agent script (ASCII)."""
    line = json.dumps(request, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    return (line + "\n" + script).encode("ascii")


def build_command(shell) -> str:
    """The bootstrap as the connection's shell plugin encodes a PowerShell script (``-EncodedCommand``)."""
    if not getattr(shell, "_IS_WINDOWS", False) or not hasattr(shell, "_encode_script"):
        name = getattr(shell, "SHELL_FAMILY", type(shell).__name__)
        raise AnsibleError(
            f"the shadowsnap agent needs a Windows host reached with the PowerShell shell (winrm, psrp, or ssh with "
            f"ansible_shell_type=powershell); this connection uses the {name!r} shell"
        )
    return shell._encode_script(BOOTSTRAP, as_list=False, strict_mode=False, preserve_rc=False)


def decode_clixml(stderr: str) -> str:
    """stderr with PowerShell's CLIXML blocks replaced by the text of their error records (progress records dropped)."""
    if "#< CLIXML" not in stderr:
        return stderr
    texts = []
    rest = stderr
    while True:
        start = rest.find("<Objs")
        end = rest.find("</Objs>", start)
        if start < 0 or end < 0:
            break
        block, rest = rest[start:end + len("</Objs>")], rest[end + len("</Objs>"):]
        try:
            root = ET.fromstring(block)
        except ET.ParseError:
            texts.append(block)
            continue
        for element in root.iter():
            if element.tag.endswith("}S") and element.get("S") == "Error":
                texts.append(re.sub(r"_x([0-9A-Fa-f]{4})_", lambda match: chr(int(match.group(1), 16)), element.text or ""))
    leftover = rest.replace("#< CLIXML", "").strip()
    if leftover:
        texts.append(leftover)
    return "".join(texts).strip()


def _snippet(text: str) -> str:
    text = (text or "").strip()
    if not text:
        return "(nothing)"
    return repr(text[:_SNIPPET_CHARS] + ("..." if len(text) > _SNIPPET_CHARS else ""))


def decode_answer(stdout: str, *, host: str, op: str, rc: int = 0, stderr: str = "", round_trips: int = 0) -> dict:
    """The agent's answer document from stdout; AgentProtocolError unless it is exactly one answer of this protocol.

    The answer's own ``ok`` is not judged here (see ``AgentTransport``).
    """
    details = {"host": host, "op": op, "rc": rc, "stdout": stdout, "stderr": stderr, "round_trips": round_trips}
    text = (stdout or "").lstrip("\ufeff").strip()
    if not text:
        raise AgentProtocolError(
            f"{host}: agent op {op!r}: no answer on stdout (exit code {rc}); stderr: {_snippet(stderr)}", **details
        )
    try:
        answer, end = json.JSONDecoder().raw_decode(text)
    except ValueError as exc:
        raise AgentProtocolError(
            f"{host}: agent op {op!r}: stdout is not a JSON document ({exc}); stdout: {_snippet(text)}; "
            f"stderr: {_snippet(stderr)}",
            **details,
        ) from exc
    extra = text[end:].strip()
    if extra:
        raise AgentProtocolError(
            f"{host}: agent op {op!r}: expected exactly one JSON document on stdout, found more output after it: "
            f"{_snippet(extra)}",
            **details,
        )
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise AgentProtocolError(
            f"{host}: agent op {op!r}: the JSON document is not an agent answer (no boolean 'ok'): {_snippet(text)}",
            **details,
        )
    if answer.get("protocol") != PROTOCOL_VERSION:
        raise AgentProtocolError(
            f"{host}: agent op {op!r}: the answer speaks protocol {answer.get('protocol')!r}, the controller "
            f"protocol {PROTOCOL_VERSION}",
            **details,
        )
    if answer["ok"] and answer.get("op") != op:
        raise AgentProtocolError(f"{host}: asked for op {op!r}, the agent answered op {answer.get('op')!r}", **details)
    if answer["ok"] and not isinstance(answer.get("result"), dict):
        raise AgentProtocolError(f"{host}: agent op {op!r}: the answer has no result object", **details)
    if not answer["ok"] and not isinstance(answer.get("error"), dict):
        raise AgentProtocolError(f"{host}: agent op {op!r}: failed answer without an error object", **details)
    return answer


def is_transient(exc: BaseException) -> bool:
    """Whether a connection-level exception may go away on its own (and a read op may be retried after a reset).

    Transient: AnsibleConnectionFailure, socket resets and timeouts, requests' connection errors and timeouts, an
    HTTP 5xx from the WinRM endpoint, a WS-Management fault saying the shell is gone. Never transient: rejected
    credentials or certificates, whatever the exception type says.
    """
    current: BaseException | None = exc
    seen = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if _PERMANENT_MESSAGE.search(str(current)):
            return False
        if _transient_type(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _transient_type(exc: BaseException) -> bool:
    if isinstance(exc, (AnsibleConnectionFailure, ConnectionError, TimeoutError, socket.timeout)):
        return True
    if requests_exceptions is not None and isinstance(
        exc, (requests_exceptions.ConnectionError, requests_exceptions.Timeout, requests_exceptions.ChunkedEncodingError)
    ):
        return True
    name = type(exc).__name__
    if name == "WinRMTransportError":  # pywinrm and pypsrp: unexpected HTTP status
        code = getattr(exc, "code", None)
        return isinstance(code, int) and code >= 500
    if name == "WSManFaultError":
        return getattr(exc, "wsman_fault_code", None) in _TRANSIENT_WSMAN_FAULTS
    if isinstance(exc, AnsibleError) and _TIMEOUT_MESSAGE.search(str(exc)):
        return True  # winrm: "the connection attempt timed out"
    return False


class AgentTransport:
    """Sends agent requests through an action plugin's connection; see the module docstring."""

    def __init__(
        self,
        action,
        host: str | None = None,
        *,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        sleep: Callable[[float], None] = time.sleep,
        uniform: Callable[[float, float], float] = random.uniform,
        clock: Callable[[], float] = time.monotonic,
        script: str | None = None,
    ):
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self._action = action
        self._connection = action._connection
        self.host = host or _connection_host(self._connection)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._uniform = uniform
        self._clock = clock
        self._script = script if script is not None else agent_script()
        self.round_trips = 0
        self.elapsed = 0.0

    def metadata(self) -> dict:
        """Counters for a task result: round trips (commands sent, retries included) and seconds spent."""
        return {"round_trips": self.round_trips, "elapsed": round(self.elapsed, 3)}

    def request(self, op: str, args: dict | None = None) -> AgentReply:
        """One op, one round trip (more only when a read op is retried)."""
        if op in (BATCH_OP, SEQUENCE_OP):
            raise ValueError("use request_many() for a batch, request_sequence() for a sequence")
        return self._send(build_request(op, args))

    def request_many(self, requests: Iterable[tuple[str, dict | None]]) -> AgentReply:
        """Several read ops in one round trip (a ``batch``); the first failed op raises AgentOperationError."""
        return self._send(build_batch_request(requests))

    def request_sequence(self, requests: Iterable[tuple[str, dict | None]]) -> AgentReply:
        """Several ops carried out in order in one round trip; the first that fails ends the sequence and raises
        AgentOperationError with the results of the ops before it (``completed``). Never retried: it changes the host."""
        return self._send(build_sequence_request(requests))

    def _send(self, request: dict) -> AgentReply:
        op = request["op"]
        retryable = is_read_request(op, request["args"])
        command = build_command(self._connection._shell)
        stdin = build_stdin(request, self._script)
        started = self._clock()
        sent = 0
        try:
            for attempt in range(1, self.retries + 2):
                if attempt > 1:
                    self._reset_connection(op)
                sent += 1
                self.round_trips += 1
                try:
                    executed = self._action._low_level_execute_command(command, sudoable=False, in_data=stdin)
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    self._connection_failed(exc, op, attempt, retryable, sent)
                    continue
                return self._reply(request, executed, sent, started)
            raise AssertionError("unreachable: the last attempt either returns or raises")  # pragma: no cover
        finally:
            self.elapsed += self._clock() - started

    def _connection_failed(self, exc: Exception, op: str, attempt: int, retryable: bool, sent: int) -> None:
        """Raises unless the failure is transient, the op is a read and tries are left; else backs off."""
        kind = type(exc).__name__
        if not is_transient(exc):
            raise AgentConnectionError(
                f"{self.host}: agent op {op!r}: {kind}: {exc}", host=self.host, op=op, round_trips=sent
            ) from exc
        if not retryable:
            raise AgentConnectionError(
                f"{self.host}: agent op {op!r}: connection failed ({kind}: {exc}); not retried because {op!r} changes "
                f"the host: check its state before running it again",
                host=self.host,
                op=op,
                round_trips=sent,
            ) from exc
        if attempt > self.retries:
            raise AgentConnectionError(
                f"{self.host}: agent op {op!r}: connection failed {attempt} times, last: {kind}: {exc}",
                host=self.host,
                op=op,
                round_trips=sent,
            ) from exc
        delay = self._delay(attempt)
        display.vvv(f"shadowsnap agent: {op} on {self.host} failed ({kind}: {exc}); retry {attempt} in {delay:.1f}s")
        self._sleep(delay)

    def _delay(self, attempt: int) -> float:
        """Exponential back-off capped at ``max_backoff``, with "equal jitter": between half and all of it."""
        ceiling = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        return ceiling / 2 + self._uniform(0, ceiling / 2)

    def _reset_connection(self, op: str) -> None:
        """Close and reset the connection, as win_reboot does: a broken WinRM shell or runspace is not reused."""
        for name in ("close", "reset"):
            method = getattr(self._connection, name, None)
            if method is None:
                continue
            try:
                method()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                display.vvv(f"shadowsnap agent: {name} of the connection to {self.host} before retrying {op} failed: {exc}")

    def _reply(self, request: dict, executed: dict, sent: int, started: float) -> AgentReply:
        op = request["op"]
        rc = executed.get("rc")
        stdout = executed.get("stdout") or ""
        stderr = decode_clixml(executed.get("stderr") or "")
        if rc not in (0, None):
            try:
                answer = decode_answer(stdout, host=self.host, op=op, rc=rc, stderr=stderr, round_trips=sent)
            except AgentProtocolError:
                answer = None
            if answer is not None and not answer["ok"]:
                raise AgentOperationError(host=self.host, op=op, error=answer["error"], round_trips=sent)
            raise AgentTransportError(
                f"{self.host}: agent op {op!r}: the command exited with code {rc}; stderr: {_snippet(stderr)}; "
                f"stdout: {_snippet(stdout)}",
                host=self.host,
                op=op,
                rc=rc,
                stdout=stdout,
                stderr=stderr,
                round_trips=sent,
            )
        answer = decode_answer(stdout, host=self.host, op=op, rc=0, stderr=stderr, round_trips=sent)
        if not answer["ok"]:
            raise AgentOperationError(host=self.host, op=answer.get("op") or op, error=answer["error"], round_trips=sent)
        if op in (BATCH_OP, SEQUENCE_OP):
            results = self._batch_results(request, answer, sent, stderr)
        else:
            results = (answer["result"],)
        return AgentReply(
            op=op,
            result=answer["result"],
            results=results,
            round_trips=sent,
            elapsed=round(self._clock() - started, 3),
            agent_elapsed_ms=answer.get("elapsed_ms"),
            stderr=stderr,
        )

    def _batch_results(self, request: dict, answer: dict, sent: int, stderr: str) -> tuple:
        """The result of each op in request order. The first failed op raises AgentOperationError (``completed``: the
        results before it); a sequence's answers end at its first failure, a batch answers every op."""
        op = request["op"]
        asked = [item["op"] for item in request["args"]["requests"]]
        answers = answer["result"].get("answers")
        ended_early = op == SEQUENCE_OP and isinstance(answers, list) and 0 < len(answers) < len(asked) and (
            isinstance(answers[-1], dict) and answers[-1].get("ok") is False)
        if not isinstance(answers, list) or (len(answers) != len(asked) and not ended_early):
            raise AgentProtocolError(
                f"{self.host}: {op} of {len(asked)} ops ({', '.join(asked)}) answered with "
                f"{len(answers) if isinstance(answers, list) else 'no'} answers",
                host=self.host,
                op=op,
                stderr=stderr,
                round_trips=sent,
            )
        results = []
        for item_op, item in zip(asked, answers):
            if not isinstance(item, dict) or not isinstance(item.get("ok"), bool):
                raise AgentProtocolError(
                    f"{self.host}: {op} answer for op {item_op!r} is not an agent answer: {_snippet(json.dumps(item))}",
                    host=self.host,
                    op=item_op,
                    round_trips=sent,
                )
            if not item["ok"]:
                raise AgentOperationError(host=self.host, op=item_op, error=item.get("error") or {}, round_trips=sent,
                                          completed=tuple(results))
            if item.get("op") != item_op or not isinstance(item.get("result"), dict):
                raise AgentProtocolError(
                    f"{self.host}: {op} asked for op {item_op!r}, got an answer for op {item.get('op')!r}",
                    host=self.host,
                    op=item_op,
                    round_trips=sent,
                )
            results.append(item["result"])
        return tuple(results)


def _connection_host(connection) -> str:
    for option in ("remote_addr", "host"):
        try:
            value = connection.get_option(option)
        except Exception:  # pylint: disable=broad-exception-caught
            value = None
        if value:
            return str(value)
    play_context = getattr(connection, "_play_context", None)
    return str(getattr(play_context, "remote_addr", None) or "the Windows host")
