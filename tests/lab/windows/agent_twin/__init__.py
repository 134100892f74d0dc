r"""The lab's twin of the collection's agent, ``plugins/plugin_utils/agent/shadowsnap_agent.ps1``.

A simulated host cannot run PowerShell, so it cannot run the agent. It recognises the agent instead (a
``powershell.exe ... -EncodedCommand <bootstrap>`` command whose standard input is ``<request JSON>\n<agent script>``,
the script's first line ``# shadowsnap-agent protocol=1``) and this package answers the request the way the .ps1
would, from the host's model: one JSON document on stdout, non-ASCII characters escaped as ``\uXXXX``, exit code 0,
failures included (``ok: false`` and an error document with ``message``, ``hresult``, ``command``, ``exit_code``,
``output``, ``type`` and ``where``), batches of read operations, native tools' text with their lines joined by CRLF,
a non-zero tool exit code turned into an error with the HRESULT found in the text. The collection's bootstrap is
recognised too: fewer than two lines on standard input get its ``"op": null`` error document.

It is a twin, not the agent: every integration test runs it instead of the .ps1, so the two must not drift.
:mod:`.protocol` holds what they must agree on (op names and handlers, argument bounds, run-directory file names and
the other shared names, the keys of the error document and of the raw facts), and tests/unit/lab/test_agent_twin_parity.py
reads the script as the transport sends it and fails when they disagree. Like the agent, the twin answers raw facts and
decides no session state: it models the host, and never imports the collection's Python. A ``sequence`` carries reads
and restore ops in order and stops at the first that fails. :mod:`.read_ops` answers
``facts``, ``storage``, ``writers`` and ``shadows``; :mod:`.session_ops` the session ops and ``sessions``;
:mod:`.restore_ops` the restore ops (disks online and offline, revert, expose, services); :mod:`.files_ops` the
file copy of a file-level restore (robocopy).
"""

import time

from . import files_ops, read_ops, restore_ops, session_ops
from .protocol import (
    BATCH_OP,
    PROTOCOL,
    READ_OPS,
    SEQUENCE_OP,
    SEQUENCE_OPS,
    SESSION_OPS,
    AgentError,
    answer,
    error_document,
    get_property,
    parse_request,
)

# op -> (handler, the function of the .ps1 that answers it: the error document's ``where``).
OPERATIONS = {
    "facts": (lambda host, args: read_ops.facts(host.model), "Get-FactsResult"),
    "storage": (lambda host, args: read_ops.storage(host.model), "Get-StorageResult"),
    "writers": (read_ops.writers, "Get-WritersResult"),
    "shadows": (lambda host, args: read_ops.shadows(host.model), "Get-ShadowsResult"),
    "sessions": (session_ops.sessions, "Get-SessionsResult"),
    "session_start": (session_ops.session_start, "Start-Session"),
    "session_status": (session_ops.session_status, "Invoke-SessionStatus"),
    "session_release": (session_ops.session_release, "Invoke-SessionRelease"),
    "shadow_delete": (session_ops.shadow_delete, "Invoke-ShadowDelete"),
    "session_cleanup": (session_ops.session_cleanup, "Invoke-SessionCleanup"),
    "service_restart": (session_ops.service_restart, "Invoke-ServiceRestart"),
    "file_read": (session_ops.file_read, "Invoke-FileRead"),
    "disk_online": (restore_ops.disk_online, "Invoke-DiskOnline"),
    "disk_offline": (restore_ops.disk_offline, "Invoke-DiskOffline"),
    "shadow_revert": (restore_ops.shadow_revert, "Invoke-ShadowRevert"),
    "shadow_expose": (restore_ops.shadow_expose, "Invoke-ShadowExpose"),
    "shadow_unexpose": (restore_ops.shadow_unexpose, "Invoke-ShadowUnexpose"),
    "service_set": (restore_ops.service_set, "Invoke-ServiceSet"),
    "files_copy": (files_ops.files_copy, "Invoke-FilesCopy"),
}


def run_op(host, op, args):
    """One op, answered as a document (ok or error); replays of whole results or errors apply here."""
    started = time.monotonic()
    host.counters.count_op(str(op))
    try:
        replayed = host.replays.take(op, None, kinds=("result", "error"))
        if replayed is not None:
            if replayed["kind"] == "error":
                return answer(op, started, error=error_document(**replayed["error"]))
            return answer(op, started, result=replayed["result"])
        if op not in OPERATIONS:
            raise AgentError("unknown op '%s' (this agent answers: %s, %s, %s)" % (
                "" if op is None else op, ", ".join(READ_OPS + SESSION_OPS), BATCH_OP, SEQUENCE_OP))
        handler, function = OPERATIONS[op]
        try:
            return answer(op, started, result=handler(host, args if isinstance(args, dict) else {}))
        except AgentError as error:
            error.where = error.where or "at %s, <No file>" % function
            raise
    except AgentError as error:
        host.counters.add("errors")
        return answer(op, started, error=error.document())


def requests_of(args, kind, allowed, refusal):
    """The ``requests`` of a batch or a sequence; AgentError for none, or for an op it may not hold."""
    requests = get_property(args, "requests", [])
    if not isinstance(requests, list):
        requests = [requests]
    if not requests:
        raise AgentError("a %s needs at least one request in args.requests" % kind)
    for item in requests:
        item_op = get_property(item, "op", "")
        if item_op not in allowed:
            raise AgentError(refusal % (item_op, ", ".join(allowed)))
    return requests


def run_batch(host, args):
    """Several read ops in one round trip (a batch holds read ops only)."""
    started = time.monotonic()
    requests = requests_of(args, BATCH_OP, READ_OPS, "op '%s' cannot be batched: a batch holds read ops only (%s)")
    answers = [run_op(host, get_property(item, "op"), get_property(item, "args")) for item in requests]
    return {"protocol": PROTOCOL, "op": BATCH_OP, "ok": True, "result": {"answers": answers},
            "elapsed_ms": int((time.monotonic() - started) * 1000)}


def run_sequence(host, args):
    """Reads and restore ops in order, in one round trip; the first that fails ends it (the later ops do not run)."""
    started = time.monotonic()
    requests = requests_of(args, SEQUENCE_OP, SEQUENCE_OPS, "op '%s' cannot be in a sequence: it holds %s only")
    answers = []
    for item in requests:
        answers.append(run_op(host, get_property(item, "op"), get_property(item, "args")))
        if not answers[-1]["ok"]:
            break
    return {"protocol": PROTOCOL, "op": SEQUENCE_OP, "ok": True, "result": {"answers": answers},
            "elapsed_ms": int((time.monotonic() - started) * 1000)}


def handle_request(host, request_text):
    """Answer one agent request (a single op or a batch) from the host's model and replay plan."""
    op = None
    try:
        request = parse_request(request_text)
        op = get_property(request, "op")
        version = get_property(request, "protocol")
        if version != PROTOCOL:
            raise AgentError("request protocol '%s' is not supported by this agent (protocol %d)" % (
                "" if version is None else version, PROTOCOL))
        if op == BATCH_OP:
            host.counters.count_op(BATCH_OP)
            return run_batch(host, get_property(request, "args"))
        if op == SEQUENCE_OP:
            host.counters.count_op(SEQUENCE_OP)
            return run_sequence(host, get_property(request, "args"))
        return run_op(host, op, get_property(request, "args"))
    except AgentError as error:
        host.counters.add("errors")
        return {"protocol": PROTOCOL, "op": op, "ok": False, "error": error.document(), "elapsed_ms": 0}
