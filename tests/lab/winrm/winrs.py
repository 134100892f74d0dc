"""The Windows Remote Shell (WinRS) resource of the lab: shells, commands, stdin, output and signals.

A command runs on the simulated host in a worker thread once its input is known: when a Send carries
``End="true"``, or when the first Receive arrives and no Send was made (pywinrm's ``run_cmd``, Ansible's ``raw``,
pypsrp's ``execute_cmd``). A Receive waits for the result up to the request's OperationTimeout and then answers
``w:TimedOut``, which clients treat as "poll again". Output larger than the client's MaxEnvelopeSize allows is
handed out over several Receives, the last one carrying ``CommandState/Done`` and the exit code.
"""

import base64
import binascii
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import soap

SIGNAL_TERMINATE = soap.NS_SHELL + "/signal/terminate"
SIGNAL_CTRL_C = soap.NS_SHELL + "/signal/ctrl_c"
SIGNAL_CTRL_BREAK = soap.NS_SHELL + "/signal/ctrl_break"
STATUS_CONTROL_C_EXIT = -1073741510  # 0xC000013A, the exit code of a console process stopped by Ctrl+C
DEFAULT_OPERATION_TIMEOUT = 60.0
_ENVELOPE_OVERHEAD = 4096


class AnswerLost(Exception):
    """The Receive that would carry a command's output is answered by resetting the connection (the host said so)."""


def _new_id():
    return str(uuid.uuid4()).upper()


def _true(value):
    return (value or "").strip().lower() == "true"


@dataclass
class Shell:
    """A cmd shell created by a client; its code page, environment and working directory options are not modelled."""

    id: str
    owner: str
    client_ip: str
    input_streams: str = "stdin"
    output_streams: str = "stdout stderr"
    commands: dict = field(default_factory=dict)


class Command:
    """One process started in a shell: its stdin, its worker thread, and the output not yet handed to the client."""

    def __init__(self, command_id, command, arguments, start_worker):
        self.id = command_id
        self.command = command
        self.arguments = arguments
        self._start_worker = start_worker
        self._state = threading.Condition()
        self._stdin = bytearray()
        self._stdin_seen = False
        self._stdin_closed = False
        self._started = False
        self._closed = False
        self._outcome = None
        self._stdout_sent = 0
        self._stderr_sent = 0

    def send(self, data, end):
        with self._state:
            if self._stdin_closed or self._closed:
                raise soap.invalid_parameter("The stdin stream of command %s is already closed. " % self.id)
            self._stdin_seen = True
            self._stdin += data
            if end:
                self._stdin_closed = True
                self._start()

    def _start(self):
        if not self._started and self._outcome is None:
            self._started = True
            self._start_worker(self, bytes(self._stdin))

    def finish(self, outcome):
        """Worker side: the host's result (stdout, stderr, exit code, answer lost) or the exception it raised."""
        with self._state:
            if self._outcome is None:
                self._outcome = outcome
            self._state.notify_all()

    def ctrl_c(self):
        """Stop a running process the way Ctrl+C stops a console program; a finished one keeps its result."""
        self.finish((b"", b"", STATUS_CONTROL_C_EXIT, False))

    def close(self):
        with self._state:
            self._closed = True
            self._state.notify_all()

    def receive(self, timeout, budget, stopping):
        """(stdout chunk, stderr chunk, exit code or None while output remains) once there is something to say."""
        deadline = time.monotonic() + timeout
        with self._state:
            if not self._stdin_seen:
                self._stdin_closed = True
                self._start()
            while self._outcome is None and not self._closed and not stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise soap.timed_out()
                self._state.wait(remaining)
            if self._closed or stopping.is_set():
                raise soap.command_not_found()
            if isinstance(self._outcome, BaseException):
                raise soap.provider_failure("The lab host failed to run %r: %r " % (self.command, self._outcome))
            stdout, stderr, exit_code, lost = self._outcome
            if lost:
                self._outcome = (stdout, stderr, exit_code, False)
                self._stdout_sent, self._stderr_sent = len(stdout), len(stderr)
                raise AnswerLost()
            stdout_chunk = stdout[self._stdout_sent:self._stdout_sent + budget]
            self._stdout_sent += len(stdout_chunk)
            stderr_chunk = stderr[self._stderr_sent:self._stderr_sent + budget - len(stdout_chunk)]
            self._stderr_sent += len(stderr_chunk)
            done = self._stdout_sent == len(stdout) and self._stderr_sent == len(stderr)
            return stdout_chunk, stderr_chunk, exit_code if done else None


class WinRSService:
    """Shell bookkeeping and the six WinRS actions, for one simulated host."""

    def __init__(self, host, counters, on_host_error):
        self._host = host
        self._counters = counters
        self._on_host_error = on_host_error
        self._lock = threading.Lock()
        self._shells = {}
        self._workers = []
        self.stopping = threading.Event()

    def handle(self, request, owner, client_ip, endpoint):
        """The response envelope bytes for a parsed request; raises :class:`soap.WSManFault` for a fault."""
        action = request.action_name
        if action is None:
            raise soap.WSManFault(
                "a:ActionNotSupported",
                soap.ERROR_ACTION_NOT_SUPPORTED,
                "The WS-Management service does not support the action %s. " % request.action,
            )
        if request.resource_uri != soap.CMD_SHELL_URI:
            raise soap.WSManFault(
                "a:DestinationUnreachable",
                soap.ERROR_RESOURCE_NOT_FOUND,
                "The WS-Management service cannot process the request. The service cannot find the resource identified by the resource URI "
                "and selectors. (%s) " % (request.resource_uri or "no ResourceURI"),
            )
        envelope, body = soap.response_envelope(action, request.message_id)
        if action == "Create":
            self._create(request, body, owner, client_ip, endpoint)
        else:
            handlers = {"Delete": self._delete, "Command": self._start_command, "Send": self._send, "Receive": self._receive, "Signal": self._signal}
            handlers[action](request, body, self._find_shell(request))
        return soap.serialize(envelope)

    def _find_shell(self, request):
        shell_id = request.selectors.get("ShellId")
        if not shell_id:
            raise soap.WSManFault(
                "w:InvalidSelectors",
                soap.ERROR_INSUFFICIENT_SELECTORS,
                "The Windows Remote Shell cannot process the request because it requires the following selector: ShellId. Retry with the "
                "correct selector. ",
                reason="The WS-Management service cannot process the request because the request did not contain all required selectors. ",
            )
        with self._lock:
            shell = self._shells.get(shell_id.upper())
        if shell is None:
            raise soap.shell_not_found(shell_id)
        return shell

    def _find_command(self, shell, command_id):
        with self._lock:
            command = shell.commands.get((command_id or "").upper())
        if command is None:
            raise soap.command_not_found()
        return command

    def _create(self, request, body, owner, client_ip, endpoint):
        spec = request.body.find(soap.qname(soap.NS_SHELL, "Shell"))
        if spec is None:
            raise soap.schema_violation("A Create request for a cmd shell must carry an rsp:Shell element. ")
        shell = Shell(
            id=(spec.get("ShellId") or _new_id()).upper(),
            owner=owner,
            client_ip=client_ip,
            input_streams=(spec.findtext(soap.qname(soap.NS_SHELL, "InputStreams")) or "stdin").strip(),
            output_streams=(spec.findtext(soap.qname(soap.NS_SHELL, "OutputStreams")) or "stdout stderr").strip(),
        )
        with self._lock:
            if shell.id in self._shells:
                raise soap.WSManFault(
                    "w:AlreadyExists", soap.ERROR_ALREADY_EXISTS, "The WS-Management service cannot create the resource because it already exists. "
                )
            self._shells[shell.id] = shell
        self._counters.add("shells_created")

        created = soap.element(body, "x:ResourceCreated")
        soap.element(created, "a:Address", endpoint)
        reference = soap.element(created, "a:ReferenceParameters")
        soap.element(reference, "w:ResourceURI", soap.CMD_SHELL_URI)
        soap.element(soap.element(reference, "w:SelectorSet"), "w:Selector", shell.id, Name="ShellId")
        described = soap.element(body, "rsp:Shell", **{"xmlns:rsp": soap.NS_SHELL})
        for tag, value in (
            ("ShellId", shell.id),
            ("ResourceUri", soap.CMD_SHELL_URI),
            ("Owner", shell.owner),
            ("ClientIP", shell.client_ip),
            ("IdleTimeOut", "PT7200.000S"),
            ("InputStreams", shell.input_streams),
            ("OutputStreams", shell.output_streams),
            ("ShellRunTime", "P0DT0H0M0S"),
            ("ShellInactivity", "P0DT0H0M0S"),
        ):
            soap.element(described, "rsp:" + tag, value)

    def _delete(self, request, body, shell):
        del request, body
        with self._lock:
            self._shells.pop(shell.id, None)
            commands = list(shell.commands.values())
            shell.commands.clear()
        for command in commands:
            command.close()
        self._counters.add("shells_deleted")

    def _start_command(self, request, body, shell):
        line = request.body.find(soap.qname(soap.NS_SHELL, "CommandLine"))
        executable = line.findtext(soap.qname(soap.NS_SHELL, "Command")) if line is not None else None
        if executable is None:
            raise soap.schema_violation("A Command request must carry rsp:CommandLine/rsp:Command. ")
        arguments = [argument.text or "" for argument in line.iterfind(soap.qname(soap.NS_SHELL, "Arguments"))]
        command = Command((line.get("CommandId") or _new_id()).upper(), executable.strip(), arguments, self._start_worker)
        with self._lock:
            shell.commands[command.id] = command
        self._counters.add("commands")
        soap.element(soap.element(body, "rsp:CommandResponse"), "rsp:CommandId", command.id)

    def _send(self, request, body, shell):
        streams = list(request.body.iterfind("%s/%s" % (soap.qname(soap.NS_SHELL, "Send"), soap.qname(soap.NS_SHELL, "Stream"))))
        if not streams:
            raise soap.schema_violation("A Send request must carry rsp:Send/rsp:Stream. ")
        for stream in streams:
            if stream.get("Name") != "stdin":
                raise soap.invalid_parameter("The shell has no input stream named %r. " % stream.get("Name"))
            try:
                data = base64.b64decode((stream.text or "").strip(), validate=True)
            except binascii.Error:
                raise soap.schema_violation("The stdin stream is not valid base64. ") from None
            self._find_command(shell, stream.get("CommandId")).send(data, _true(stream.get("End")))
        soap.element(body, "rsp:SendResponse")

    def _receive(self, request, body, shell):
        desired = request.body.find("%s/%s" % (soap.qname(soap.NS_SHELL, "Receive"), soap.qname(soap.NS_SHELL, "DesiredStream")))
        if desired is None:
            raise soap.schema_violation("A Receive request must carry rsp:Receive/rsp:DesiredStream. ")
        command = self._find_command(shell, desired.get("CommandId"))
        timeout = request.operation_timeout if request.operation_timeout is not None else DEFAULT_OPERATION_TIMEOUT
        budget = max(1024, (request.max_envelope_size - _ENVELOPE_OVERHEAD) * 3 // 4)
        try:
            stdout, stderr, exit_code = command.receive(timeout, budget, self.stopping)
        except soap.WSManFault as fault:
            if fault.subcode == "w:TimedOut":
                self._counters.add("receive_timeouts")
            raise
        response = soap.element(body, "rsp:ReceiveResponse")
        wanted = (desired.text or "stdout stderr").split()
        for name, data in (("stdout", stdout), ("stderr", stderr)):
            if data and name in wanted:
                soap.element(response, "rsp:Stream", base64.b64encode(data).decode("ascii"), Name=name, CommandId=command.id)
        if exit_code is None:
            soap.element(response, "rsp:CommandState", CommandId=command.id, State=soap.COMMAND_STATE_RUNNING)
            return
        for name in wanted:
            soap.element(response, "rsp:Stream", "", Name=name, CommandId=command.id, End="true")
        state = soap.element(response, "rsp:CommandState", CommandId=command.id, State=soap.COMMAND_STATE_DONE)
        soap.element(state, "rsp:ExitCode", str(exit_code))

    def _signal(self, request, body, shell):
        signal = request.body.find(soap.qname(soap.NS_SHELL, "Signal"))
        if signal is None:
            raise soap.schema_violation("A Signal request must carry rsp:Signal. ")
        command = self._find_command(shell, signal.get("CommandId"))
        code = (signal.findtext(soap.qname(soap.NS_SHELL, "Code")) or "").strip()
        if code == SIGNAL_TERMINATE:
            with self._lock:
                shell.commands.pop(command.id, None)
            command.close()
        elif code in (SIGNAL_CTRL_C, SIGNAL_CTRL_BREAK):
            command.ctrl_c()
        else:
            raise soap.invalid_parameter("The signal code %r is not supported by the cmd shell. " % code)
        soap.element(body, "rsp:SignalResponse")

    def _start_worker(self, command, stdin):
        worker = threading.Thread(target=self._run, args=(command, stdin), name="lab-winrm-command-%s" % command.id[:8], daemon=True)
        with self._lock:
            self._workers = [thread for thread in self._workers if thread.is_alive()]
            self._workers.append(worker)
        worker.start()

    def _run(self, command, stdin):
        try:
            result = self._host.run_command(command.command, list(command.arguments), stdin)
            outcome = (result.stdout, result.stderr, result.exit_code, bool(result.answer_lost))
            if not isinstance(outcome[0], bytes) or not isinstance(outcome[1], bytes) or not isinstance(outcome[2], int):
                raise TypeError("run_command must return stdout/stderr as bytes and exit_code as int, got %r" % (result,))
        except Exception as error:  # pylint: disable=broad-exception-caught
            self._on_host_error(error)
            outcome = error
        command.finish(outcome)

    def shell_ids(self):
        with self._lock:
            return list(self._shells)

    def close(self, timeout):
        """Drop every shell, wake waiting Receives, and join command workers; returns the workers still running."""
        self.stopping.set()
        with self._lock:
            commands = [command for shell in self._shells.values() for command in shell.commands.values()]
            self._shells.clear()
            workers = list(self._workers)
        for command in commands:
            command.close()
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        return [worker for worker in workers if worker.is_alive()]
