"""The object behind a lab WinRM endpoint: recognises the agent, answers through its twin, replays, counts.

:class:`LabWindowsHost` implements the WinRM endpoint's host interface (``run_command``): it tells the collection's
agent (answered by lab.windows.agent_twin) from other PowerShell (lab.windows.powershell) and from cmd.exe commands.
Its :attr:`model` can be replaced while the endpoint runs (the lab does so on reset), so an endpoint keeps its port
across resets.
"""

import base64
import json
import threading
from dataclasses import dataclass, field

from lab.winrm import CommandResult, FaultRule, decode_powershell_command

from . import agent_twin, powershell
from .agent_twin.protocol import (
    PROTOCOL,
    WRITER_SOURCES,
    bootstrap_error,
    encode_answer,
    is_collection_bootstrap,
    split_agent_input,
)
from .locales import console_bytes

MAX_PAUSE_SECONDS = 60.0


@dataclass
class ReplayRule:
    """Answer ``op`` (and for ``writers`` one ``source``) with recorded output instead of the model.

    ``kind``: ``tool`` (a writer source's console text, or raw console bytes), ``result`` (the op's whole result),
    ``error`` (an ``ok: false`` answer with this error document) or ``process`` (the raw process: stdout, stderr and
    exit code, bypassing the agent's JSON: a transport-level failure). ``times``: how many answers (None: until
    cleared).
    """

    op: str
    kind: str
    source: str | None = None
    text: str | None = None
    raw_base64: str | None = None
    exit_code: int = 0
    result: dict | None = None
    error: dict | None = None
    stdout: str = ""
    stderr: str = ""
    times: int | None = 1
    served: int = 0

    @property
    def exhausted(self):
        return self.times is not None and self.served >= self.times

    def describe(self):
        return {
            "op": self.op,
            "kind": self.kind,
            "source": self.source,
            "exit_code": self.exit_code,
            "text_chars": len(self.text) if self.text is not None else None,
            "times": self.times,
            "served": self.served,
        }


class ReplayPlan:
    """The replay rules of one host, first armed first served."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self.served_total = 0

    def arm(self, op, *, source=None, text=None, raw=None, exit_code=0, result=None, error=None, stdout=None,
            stderr=None, times=1):  # pylint: disable=too-many-arguments
        """Arm a rule; the kind follows from what is given (see :class:`ReplayRule`)."""
        if not isinstance(op, str) or not op:
            raise ValueError("op is required")
        if times is not None and int(times) < 1:
            raise ValueError("times must be >= 1 or None")
        if text is not None or raw is not None:
            if op != "writers" or source not in WRITER_SOURCES:
                raise ValueError("tool output replays need op 'writers' and a source among %s" % ", ".join(WRITER_SOURCES))
            if isinstance(raw, (bytes, bytearray)):
                raw = base64.b64encode(bytes(raw)).decode("ascii")
            rule = ReplayRule(op, "tool", source=source, text=text, raw_base64=raw, exit_code=int(exit_code))
        elif result is not None:
            rule = ReplayRule(op, "result", result=dict(result))
        elif error is not None:
            rule = ReplayRule(op, "error", error=dict(error))
        elif stdout is not None or stderr is not None:
            rule = ReplayRule(op, "process", stdout=stdout or "", stderr=stderr or "", exit_code=int(exit_code))
        else:
            raise ValueError("a replay needs text/raw (tool output), result, error, or stdout/stderr (process)")
        rule.times = None if times is None else int(times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, op, source=None, kinds=("tool",)):
        """The next matching rule's fields as a dict (counted as served), or None."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or rule.kind not in kinds:
                    continue
                if rule.op not in (op, "*") or (rule.kind == "tool" and rule.source != source):
                    continue
                rule.served += 1
                self.served_total += 1
                return {
                    "kind": rule.kind,
                    "text": rule.text,
                    "raw_base64": rule.raw_base64,
                    "exit_code": rule.exit_code,
                    "result": rule.result,
                    "error": rule.error,
                    "stdout": rule.stdout,
                    "stderr": rule.stderr,
                }
        return None

    def clear(self, op=None):
        """Disarm the rules of ``op`` (every rule when None)."""
        with self._lock:
            self._rules = [rule for rule in self._rules if op is not None and rule.op != op]

    def reset(self):
        with self._lock:
            self._rules = []
            self.served_total = 0

    def describe(self):
        with self._lock:
            return [rule.describe() for rule in self._rules]


class AnswerDrop(FaultRule):
    """Lose the answer to agent requests of one op (``action`` holds the op; a batch or a sequence that carries it counts
    as a request of it) after the host carried them out: the endpoint resets the connection of the Receive that would
    carry it. ``after`` requests of that op go through
    first, then ``times`` answers are lost (None: until cleared); ``seen`` and ``fired`` show that it was hit."""

    def describe(self):
        return {"kind": "drop_answer", "op": self.action, "after": self.after, "times": self.times, "seen": self.seen,
                "fired": self.fired}


class AnswerDrops:
    """The answer drops armed on one host (``host.answer_drops``)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.rules = []

    def arm(self, op, after=0, times=1):
        if not isinstance(op, str) or not op:
            raise ValueError("a drop_answer fault needs the op whose answer is lost")
        if int(after) < 0 or (times is not None and int(times) < 1):
            raise ValueError("after must be >= 0 and times >= 1 or None")
        rule = AnswerDrop("drop_answer", action=op, after=int(after), times=None if times is None else int(times))
        with self._lock:
            self.rules.append(rule)
        return rule

    def fires(self, ops):
        """Whether the answer to a request carrying ``ops`` is lost (the first armed rule that fires)."""
        with self._lock:
            for rule in self.rules:
                if any(rule.match_request(op) for op in dict.fromkeys(ops)):
                    return True
        return False

    def clear(self):
        with self._lock:
            self.rules = []

    def describe(self):
        with self._lock:
            return [rule.describe() for rule in self.rules]


COUNTER_NAMES = ("round_trips", "errors", "refused", "raw_commands", "protocol_mismatches")


@dataclass
class AgentCounters:
    """Per-host counts of what the agent side saw: ``round_trips`` (agent requests answered), ``ops`` (per op),
    ``errors`` (``ok: false`` answers), ``refused`` (commands refused), ``raw_commands`` (non-agent statements
    answered), ``replays_served``, ``protocol_mismatches`` (agent scripts of another protocol version)."""

    values: dict = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    ops: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name, amount=1):
        with self.lock:
            self.values[name] += amount

    def count_op(self, op):
        with self.lock:
            self.ops[op] = self.ops.get(op, 0) + 1

    def snapshot(self):
        with self.lock:
            return dict(self.values, ops=dict(self.ops))

    def reset(self):
        with self.lock:
            self.values = dict.fromkeys(COUNTER_NAMES, 0)
            self.ops = {}


class LabWindowsHost:
    """A simulated Windows Server behind a :class:`lab.winrm.WinRMServer`."""

    def __init__(self, model):
        self.model = model
        self.replays = ReplayPlan()
        self.answer_drops = AnswerDrops()
        self.counters = AgentCounters()
        self.stopping = threading.Event()

    @property
    def name(self):
        return self.model.name

    def pause(self, seconds):
        """A slow tool: wait, but give up as soon as the lab stops."""
        if seconds > 0:
            self.stopping.wait(min(seconds, MAX_PAUSE_SECONDS))

    def reset(self, model=None):
        """A reseeded lab: new model (if given; the old one's threads are stopped), no replays, zero counts."""
        if model is not None:
            old, self.model = self.model, model
            if old is not model:
                old.shutdown()
        self.replays.reset()
        self.answer_drops.clear()
        self.counters.reset()

    def shutdown(self, timeout=5.0):
        """Stop the threads of the host's model (scheduled tasks, diskshadow, the application)."""
        self.stopping.set()
        self.model.shutdown(timeout)

    def run_command(self, command, arguments, stdin):
        try:
            script = decode_powershell_command(command, arguments)
        except ValueError:
            self.counters.add("refused")
            message = ("Cannot process the command because the value specified with -EncodedCommand is not properly "
                       "encoded. The value must be Base64 encoded.")
            return CommandResult(stderr=powershell.clixml_error([message]), exit_code=1)
        if script is None:
            return self._run_cmd(command, arguments)
        lines = powershell.stdin_lines(stdin) if stdin else []
        split = split_agent_input(lines)
        if split is not None:
            return self._run_agent(*split)
        if is_collection_bootstrap(script) and len(lines) < 2:
            self.counters.add("refused")
            return CommandResult(stdout=bootstrap_error("expected the request line and the agent script on standard input"))
        if lines:
            self.counters.add("refused")
            return CommandResult(stderr=powershell.clixml_error([
                "The lab host received standard input that is not a shadowsnap agent request "
                "(expected '<request JSON>\\n# shadowsnap-agent protocol=1 ...'): it cannot run other PowerShell.",
                powershell.LAB_HINT,
            ]), exit_code=1)
        return self._run_literal(script)

    def _run_agent(self, request_text, script, version):
        del script  # the lab answers from its model; the agent's PowerShell is not interpreted
        if version != str(PROTOCOL):
            self.counters.add("protocol_mismatches")
            self.counters.add("refused")
            return CommandResult(stderr=powershell.clixml_error([
                "The lab host speaks agent protocol %d; the agent script declares protocol=%s." % (PROTOCOL, version or "?"),
            ]), exit_code=1)
        self.counters.add("round_trips")
        op = _peek_op(request_text)
        process = self.replays.take(op, None, kinds=("process",)) if op else None
        if process is not None:
            self.counters.count_op(op)
            return CommandResult(stdout=process["stdout"].encode("utf-8"), stderr=process["stderr"].encode("utf-8"),
                                 exit_code=process["exit_code"])
        document = agent_twin.handle_request(self, request_text)
        return CommandResult(stdout=encode_answer(document), exit_code=0,
                             answer_lost=bool(op) and self.answer_drops.fires(_carried_ops(request_text)))

    def counter_snapshot(self):
        """Agent-side counts (see :class:`AgentCounters`), ``replays_served`` included."""
        return dict(self.counters.snapshot(), replays_served=self.replays.served_total)

    def _run_literal(self, script):
        model = self.model
        text, stderr, exit_code = powershell.run_literal_script(model, script)
        self.counters.add("refused" if stderr else "raw_commands")
        return CommandResult(stdout=console_bytes(text, model.locale.oem_code_page), stderr=stderr, exit_code=exit_code)

    def _run_cmd(self, command, arguments):
        line = " ".join([command] + list(arguments)).strip()
        verb = line.split()[0].lower() if line else ""
        if verb in ("hostname", "hostname.exe"):
            self.counters.add("raw_commands")
            return CommandResult(stdout=console_bytes(self.model.hostname + "\n", self.model.locale.oem_code_page))
        if verb == "echo":
            self.counters.add("raw_commands")
            return CommandResult(stdout=console_bytes(line[5:] + "\n", self.model.locale.oem_code_page))
        self.counters.add("refused")
        return CommandResult(stderr=powershell.cmd_not_recognized(line), exit_code=1)


def _carried_ops(request_text):
    """The op of a request and, for a batch or a sequence, the ops it carries."""
    request = json.loads(request_text)
    items = request.get("args", {}).get("requests") if isinstance(request.get("args"), dict) else None
    return [request["op"]] + [item.get("op") for item in items or [] if isinstance(item, dict)]


def _peek_op(request_text):
    try:
        request = json.loads(request_text)
    except ValueError:
        return None
    return request.get("op") if isinstance(request, dict) and isinstance(request.get("op"), str) else None
