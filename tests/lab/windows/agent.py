r"""The agent protocol (docs/agent-protocol.md) as a simulated host answers it, and the little else it runs.

A host cannot run PowerShell. It recognises the agent instead: a ``powershell.exe ... -EncodedCommand <bootstrap>``
command whose standard input is ``<request JSON>\n<agent script>``, the agent script's first line being
``# shadowsnap-agent protocol=1``. It then answers the request from its model the way the collection's agent
(``plugins/plugin_utils/agent/shadowsnap_agent.ps1``) does: one JSON document on stdout, non-ASCII characters escaped
as ``\uXXXX``, exit code 0, failures included (``ok: false`` and an error document with ``message``, ``hresult``,
``command``, ``exit_code``, ``output``, ``type`` and ``where``), batches of read operations, native tools' text with
their lines joined by CRLF, a non-zero tool exit code turned into an error with the HRESULT found in the text.

The collection's bootstrap is recognised by its ``shadowsnap bootstrap:`` error prefix; what it does before the agent
runs is modelled too: fewer than two lines on standard input get its ``"op": null`` error document. An agent script of
another protocol version, or a script that is not the agent, cannot be run by the lab: it is refused like a process
that failed (CLIXML error record on stderr, exit code 1).

Anything else is refused as PowerShell would refuse a command it does not know, except a few harmless statements the
lab answers minimally so that Ansible's ``raw`` works for smoke tests: ``Write-Output``/``echo``/``Write-Host`` of
literal text, ``exit N``, ``hostname``, ``$env:COMPUTERNAME``, ``$PSVersionTable`` (and ``.PSVersion``), and the
boilerplate Ansible wraps around them.
"""

import base64
import hashlib
import json
import re
import time
import uuid
from xml.sax.saxutils import escape

from .locales import agent_decode, console_bytes
from .render import (
    diskshadow_list_writers_detailed,
    diskshadow_list_writers_status,
    diskshadow_script,
    vssadmin_list_writers,
)
from .sessions import SessionError, int_argument

PROTOCOL = 1
AGENT_MARKER = "# shadowsnap-agent protocol="
BOOTSTRAP_SIGNATURE = "shadowsnap bootstrap:"
READ_OPS = ("facts", "storage", "writers", "shadows")
WRITER_SOURCES = ("vssadmin", "diskshadow_status", "diskshadow_detailed")
OUTPUT_LIMIT = 65536
TEMP_FOLDER = "C:\\Users\\Administrator\\AppData\\Local\\Temp"
CLIXML_HEADER = "#< CLIXML\r\n"
CLIXML_NAMESPACE = "http://schemas.microsoft.com/powershell/2004/04"
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
        return {
            "message": self.message,
            "hresult": hresult,
            "command": self.command,
            "exit_code": self.exit_code,
            "output": self.output,
            "type": "System.Exception",
            "where": self.where or "at <ScriptBlock>, <No file>: line 1",
        }


def error_document(**values):
    """A complete error document (every key of the agent's), from what a replay or a test gives."""
    document = AgentError("replayed failure").document()
    document.update(values)
    return document


def hresult_in_text(text):
    """The failure HRESULT a native tool printed after a label, by structure (the agent's Get-HResultFromText)."""
    match = _HRESULT_IN_TEXT.search(text or "")
    return "0x" + match.group(1).upper() if match else None


def text_lines(text):
    """Lines as PowerShell reads them from a stream (CRLF or LF), no empty line for the last line end."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def stdin_lines(stdin):
    """What ``$input`` gives the bootstrap: the lines of standard input."""
    return text_lines(stdin.decode("utf-8", errors="replace").lstrip("\ufeff"))


def split_agent_input(lines):
    """``(request_text, script, protocol)`` when the lines carry the agent, else None."""
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


def encode_answer(document):
    """``ConvertTo-Json -Compress`` with non-ASCII escaped, written by ``Write-Output`` (a CRLF after it)."""
    return json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\r\n"


def answer(op, started, result=None, error=None):
    document = {"protocol": PROTOCOL, "op": op, "ok": error is None}
    if error is None:
        document["result"] = result
    else:
        document["error"] = error
    document["elapsed_ms"] = int((time.monotonic() - started) * 1000)
    return document


def _property(value, name, default=None):
    """The agent's Get-Property: a key of an object, or the default (also for things that are not objects)."""
    if isinstance(value, dict) and name in value:
        return value[name]
    return default


def parse_request(request_text):
    """The request document, or raises AgentError as the agent reports a request that is not JSON."""
    try:
        return json.loads(request_text)
    except ValueError as error:
        raise AgentError("Invalid JSON primitive: %s (%s)" % (request_text[:40], error)) from error


def tool_text(model, raw):
    """What the agent keeps of a native tool's bytes: decoded with the console code page, lines joined with CRLF."""
    code_page = model.agent_code_page or model.locale.oem_code_page
    return "\r\n".join(text_lines(agent_decode(raw, code_page)))


def source_command(source):
    if source == "vssadmin":
        return "vssadmin.exe list writers"
    return "diskshadow.exe /s %s\\shadowsnap-%s.dsh" % (TEMP_FOLDER, uuid.uuid4().hex)


def render_writers_source(model, source):
    """The console text of one writer listing, rendered from the model."""
    if source == "vssadmin":
        model.start_vss()
        return vssadmin_list_writers(model.locale, model.visible_writers())
    model.start_vss()
    writers = model.visible_writers()
    commands = [("list writers status", diskshadow_list_writers_status(model.locale, writers))]
    if source == "diskshadow_detailed":
        commands.append(("list writers detailed", diskshadow_list_writers_detailed(model.locale, writers, model.writer_components)))
    return diskshadow_script(model.locale, model.hostname, model.clock(), commands)


def op_writers(host, args):
    model = host.model
    sources = _property(args, "sources", ["vssadmin"])
    if not isinstance(sources, list):
        sources = [sources]
    if not sources:
        sources = ["vssadmin"]
    host.pause(model.tool_delay_seconds)
    outputs = {}
    for source in (str(source) for source in sources):
        if source not in WRITER_SOURCES:
            raise AgentError("unknown writers source '%s' (known: %s)" % (source, ", ".join(WRITER_SOURCES)),
                             where="at Get-WritersResult, <No file>")
        if source != "vssadmin" and not model.os.is_server:
            raise AgentError("diskshadow.exe is not on this host (it ships with Windows Server only)", command="diskshadow",
                             where="at Invoke-DiskShadow, <No file>")
        command = source_command(source)
        replayed = host.replays.take("writers", source)
        if replayed is not None:
            raw = base64.b64decode(replayed["raw_base64"]) if replayed.get("raw_base64") is not None else None
            data = raw if raw is not None else console_bytes(replayed.get("text") or "", model.locale.oem_code_page)
            exit_code = int(replayed.get("exit_code", 0))
        else:
            data, exit_code = console_bytes(render_writers_source(model, source), model.locale.oem_code_page), 0
        text = tool_text(model, data)
        if exit_code != 0:
            raise AgentError("%s exited with code %d" % (command, exit_code), hresult=hresult_in_text(text), command=command,
                             exit_code=exit_code, output=text[:OUTPUT_LIMIT], where="at Assert-NativeSuccess, <No file>")
        outputs[source] = {"command": command, "text": text, "exit_code": exit_code}
    return {"oem_code_page": model.locale.oem_code_page, "outputs": outputs}


def _session_call(host, where, call):
    """Run a session operation on the host's model; its failures become the agent's error documents."""
    try:
        return call(host.model.sessions)
    except SessionError as error:
        output = error.output[:OUTPUT_LIMIT] if error.output else None
        raise AgentError(error.message, hresult=error.hresult, output=output, exit_code=error.exit_code,
                         command="diskshadow.exe /s %s\\shadowsnap-%s.dsh" % (TEMP_FOLDER, uuid.uuid4().hex) if output else None,
                         where=where) from error


def _args(args):
    return args if isinstance(args, dict) else {}


def op_session_cleanup(sessions, args):
    older_than = int_argument(args, "older_than_seconds", None, 60, 31536000)
    if older_than is None:
        raise SessionError("session_cleanup needs older_than_seconds")
    return {"cleaned": sessions.cleanup(older_than)}


SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.$-][A-Za-z0-9 _.$-]{0,255}$")


def op_service_restart(host, args):
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
        raise AgentError("service_restart needs name (or names)", where="at Invoke-ServiceRestart, <No file>")
    try:
        int_argument(args, "timeout_seconds", 60, 1, 300)
    except SessionError as error:
        raise AgentError(error.message, where="at Get-IntArgument, <No file>") from error
    services = []
    for name in names:
        started = time.monotonic()
        if not SERVICE_NAME.match(name):
            raise AgentError("'%s' is not a service name" % name, where="at Restart-ServiceBounded, <No file>")
        service = next((svc for svc in model.services.values() if svc.name.lower() == name.lower()), None)
        if service is None:
            raise AgentError("there is no service '%s' on this host" % name, where="at Restart-ServiceBounded, <No file>")
        previous = service.status
        if previous == "Running":
            model.restart_service(service.name)
        else:
            model.set_service_state(service.name, "Running")
        services.append({"name": service.name, "display_name": service.display_name, "previous_status": previous,
                         "status": service.status, "restarted_dependents": [],
                         "elapsed_ms": int((time.monotonic() - started) * 1000)})
    return {"services": services}


def op_file_read(host, args):
    """A file's bytes as base64 with its size and SHA-256 (e.g. the session's backup.cab), bounded by max_bytes."""
    path = str(args.get("path") or "")
    if not path:
        raise AgentError("file_read needs path", where="at Invoke-FileRead, <No file>")
    try:
        limit = int_argument(args, "max_bytes", 16777216, 1, 134217728)
    except SessionError as error:
        raise AgentError(error.message, where="at Get-IntArgument, <No file>") from error
    try:
        data = host.model.read_file(path)
    except ValueError:
        data = None
    if data is None:
        raise AgentError("there is no file %s" % path, where="at Invoke-FileRead, <No file>")
    if len(data) > limit:
        raise AgentError("%s is %d bytes, more than max_bytes (%d)" % (path, len(data), limit), where="at Invoke-FileRead, <No file>")
    return {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "content_base64": base64.b64encode(data).decode("ascii")}


SESSION_OPS = {
    "session_start": lambda host, args: _session_call(host, "at Start-Session, <No file>",
                                                      lambda sessions: sessions.start(_args(args), cancel=host.stopping)),
    "session_status": lambda host, args: _session_call(host, "at Invoke-SessionStatus, <No file>",
                                                       lambda sessions: sessions.session_status(_args(args), cancel=host.stopping)),
    "session_release": lambda host, args: _session_call(host, "at Invoke-SessionRelease, <No file>",
                                                        lambda sessions: sessions.release(_args(args), cancel=host.stopping)),
    "shadow_delete": lambda host, args: _session_call(host, "at Invoke-ShadowDelete, <No file>",
                                                      lambda sessions: sessions.shadow_delete(_args(args))),
    "session_cleanup": lambda host, args: _session_call(host, "at Invoke-SessionCleanup, <No file>",
                                                        lambda sessions: op_session_cleanup(sessions, _args(args))),
    "service_restart": lambda host, args: op_service_restart(host, _args(args)),
    "file_read": lambda host, args: op_file_read(host, _args(args)),
}


OPERATIONS = {
    "facts": lambda host, args: host.model.facts(),
    "storage": lambda host, args: host.model.storage(),
    "writers": op_writers,
    "shadows": lambda host, args: host.model.shadows(),
}
OPERATIONS.update(SESSION_OPS)


def run_op(host, op, args):
    """One read op, answered as a document (ok or error); replays of whole results or errors apply here."""
    started = time.monotonic()
    host.counters.count_op(str(op))
    try:
        replayed = host.replays.take(op, None, kinds=("result", "error"))
        if replayed is not None:
            if replayed["kind"] == "error":
                return answer(op, started, error=error_document(**replayed["error"]))
            return answer(op, started, result=replayed["result"])
        handler = OPERATIONS.get(op)
        if handler is None:
            raise AgentError("unknown op '%s' (this agent answers: %s, batch)" % (
                "" if op is None else op, ", ".join(READ_OPS + tuple(SESSION_OPS))))
        return answer(op, started, result=handler(host, args))
    except AgentError as error:
        host.counters.add("errors")
        return answer(op, started, error=error.document())


def run_batch(host, args):
    started = time.monotonic()
    requests = _property(args, "requests", [])
    if not isinstance(requests, list):
        requests = [requests]
    if not requests:
        raise AgentError("a batch needs at least one request in args.requests")
    for item in requests:
        item_op = _property(item, "op", "")
        if item_op not in READ_OPS:
            raise AgentError("op '%s' cannot be batched: a batch holds read ops only (%s)" % (item_op, ", ".join(READ_OPS)))
    answers = [run_op(host, _property(item, "op"), _property(item, "args")) for item in requests]
    return {"protocol": PROTOCOL, "op": "batch", "ok": True, "result": {"answers": answers},
            "elapsed_ms": int((time.monotonic() - started) * 1000)}


def handle_request(host, request_text):
    """Answer one agent request (a single read op or a batch) from the host's model and replay plan."""
    op = None
    try:
        request = parse_request(request_text)
        op = _property(request, "op")
        version = _property(request, "protocol")
        if version != PROTOCOL:
            raise AgentError("request protocol '%s' is not supported by this agent (protocol %d)" % (
                "" if version is None else version, PROTOCOL))
        if op == "batch":
            host.counters.count_op("batch")
            return run_batch(host, _property(request, "args"))
        return run_op(host, op, _property(request, "args"))
    except AgentError as error:
        host.counters.add("errors")
        return {"protocol": PROTOCOL, "op": op, "ok": False, "error": error.document(), "elapsed_ms": 0}


# ------------------------------------------------------------------------------------------- everything else
def clixml_error(lines):
    """PowerShell's stderr when its output is redirected: CLIXML ``<S S="Error">`` records, one per line."""
    records = "".join('<S S="Error">%s_x000D__x000A_</S>' % escape(line) for line in lines)
    return (CLIXML_HEADER + '<Objs Version="1.1.0.1" xmlns="%s">%s</Objs>' % (CLIXML_NAMESPACE, records)).encode("utf-8")


def command_not_found(name, statement, hint=None):
    lines = [
        "%s : The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. "
        "Check the spelling of the name, or if a path was included, verify that the path is correct and try again." % (name, name),
        "At line:1 char:1",
        "+ %s" % statement,
        "+ %s" % ("~" * max(1, len(name))),
        "    + CategoryInfo          : ObjectNotFound: (%s:String) [], CommandNotFoundException" % name,
        "    + FullyQualifiedErrorId : CommandNotFoundException",
        " ",
    ]
    if hint:
        lines.append(hint)
    return clixml_error(lines)


_BOILERPLATE = (
    re.compile(r"^Set-StrictMode\b", re.IGNORECASE),
    re.compile(r"^If\s*\(\s*-not\s+\$\?\s*\)", re.IGNORECASE),
    re.compile(r"^\$(ErrorActionPreference|ProgressPreference|WarningPreference|VerbosePreference)\s*=", re.IGNORECASE),
    re.compile(r"^#"),
    re.compile(r"^\}$"),
)
_LITERAL = re.compile(r"""^(?:"(?P<double>[^"]*)"|'(?P<single>[^']*)'|(?P<bare>\S+))""")
LAB_HINT = "(lab: this simulated Windows host only runs the shadowsnap agent and a few literal statements)"


def _literal_words(text):
    words = []
    text = text.strip()
    while text:
        match = _LITERAL.match(text)
        if not match:
            break
        words.append(next(value for value in match.groupdict().values() if value is not None))
        text = text[match.end():].strip()
    return words


def _ps_version_table(model):
    """``$PSVersionTable`` as Format-Table prints it (Windows PowerShell 5.1)."""
    return "\n".join([
        "",
        "Name                           Value",
        "----                           -----",
        "PSVersion                      %s" % model.os.powershell_version,
        "PSEdition                      Desktop",
        "PSCompatibleVersions           {1.0, 2.0, 3.0, 4.0...}",
        "BuildVersion                   10.0.%s" % model.os.powershell_version.split(".", 2)[2],
        "CLRVersion                     4.0.30319.42000",
        "WSManStackVersion              3.0",
        "PSRemotingProtocolVersion      2.3",
        "SerializationVersion           1.1.0.1",
        "",
    ])


def run_literal_script(model, script):
    """``(stdout_text, stderr_bytes, exit_code)`` of a script made only of statements the lab knows."""
    out = []
    for raw_statement in re.split(r"[;\r\n]+", script):
        statement = raw_statement.strip()
        if not statement or any(pattern.match(statement) for pattern in _BOILERPLATE):
            continue
        verb, dummy, rest = statement.partition(" ")
        lowered = verb.lower()
        if lowered in ("write-output", "echo", "write-host"):
            out.extend(_literal_words(rest))
        elif lowered == "exit":
            words = _literal_words(rest)
            return "".join(line + "\n" for line in out), b"", int(words[0]) if words and words[0].lstrip("-").isdigit() else 0
        elif lowered in ("hostname", "$env:computername", "hostname.exe"):
            out.append(model.hostname)
        elif lowered == "$psversiontable":
            out.append(_ps_version_table(model))
        elif lowered in ("$psversiontable.psversion.tostring()", "$psversiontable.psversion"):
            out.append(model.os.powershell_version)
        else:
            return "".join(line + "\n" for line in out), command_not_found(verb, statement, LAB_HINT), 1
    return "".join(line + "\n" for line in out), b"", 0


def cmd_not_recognized(command):
    name = command.strip().split()[0] if command.strip() else command
    return ("'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n" % name).encode()
