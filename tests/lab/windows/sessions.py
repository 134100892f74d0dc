r"""Run directories, scheduled tasks and batch files of the shadow engine's sessions (docs/vss-session.md), lab side.

:class:`SessionManager` (one per host model) does what the agent's session operations do on Windows: writes the files
the controller generated into ``C:\ProgramData\shadowsnap\runs\<run_id>\`` in the host's file system (the C: volume's
content, so an EBS snapshot of C: carries them), "registers and starts" the scheduled task ``shadowsnap-<run_id>``
(a worker thread running ``run.cmd``), reports the run directory, writes ``release.txt``, deletes shadow copies
through diskshadow and cleans up stale runs. Every thread is bounded: the task has an execution time limit, waits
give up at their deadline, and :meth:`SessionManager.shutdown` (the lab stops or resets) stops them all.

Batch files are executed, not assumed: :func:`run_batch` interprets the small part of cmd.exe the collection's
record, hold and run scripts use (recognised by their ``rem shadowsnap-<kind> protocol=1`` line): ``@echo off``,
``rem``, ``setlocal``, ``set`` and ``set /a``, labels and ``goto``, ``if exist`` / ``if A LEQ B`` / ``if
errorlevel``, ``exit /b N``, parenthesised blocks with their output redirected, ``echo`` (with cmd's rule that a
digit written right before ``>`` is a handle number: ``echo 0> file`` writes nothing into the file), ``>``, ``>>``,
``2>&1``, ``>nul``, ``&&``/``||``, ``move``, ``del``, ``type``, ``cd /d``, ``findstr /x /c:"..."``, ``ping -n N``
(waits N-1 seconds, in real time; the hold's wait ends early when ``session_release`` writes the release file) and
``diskshadow /s`` (the simulated one, :mod:`lab.windows.diskshadow`). ``%VAR%`` expands as in a batch file (an
undefined variable expands to nothing) from the environment diskshadow gives the scripts it ``exec``s (its aliases
and ``VSS_SHADOW_SET``). Anything else is "not recognized as an internal or external command" (errorlevel 9009).
"""

import re
import threading
import time

from .diskshadow import DiskShadowStopped, run_diskshadow
from .locales import agent_decode, codec, console_bytes

RUN_ROOT = "C:\\ProgramData\\shadowsnap\\runs"
TASK_PATH = "\\shadowsnap\\"
TASK_PREFIX = "shadowsnap-"
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SESSION_FILES = ("snapshot.dsh", "record.cmd", "hold.cmd", "run.cmd")
MARKER = re.compile(r"^\s*@?rem\s+shadowsnap-(?P<kind>record|hold|run)\s+protocol=(?P<protocol>\d+)\b(?P<rest>.*)$", re.IGNORECASE)
PROTOCOL = "1"
MAX_WAIT_SECONDS = 900
POLL_SECONDS = 0.05
DEFAULT_TASK_LIMIT_SECONDS = 3600
LOG_LIMIT = 524288
MAX_STATEMENTS = 200000
SCHED_S_TASK_TERMINATED = 0x00041306
# Task Scheduler's LastTaskResult: not run yet (SCHED_S_TASK_HAS_NOT_RUN), running (SCHED_S_TASK_RUNNING).
TASK_NEVER_RAN = 0x00041303
TASK_RUNNING = 0x00041301
HRESULT_SNAPSHOT_SET_IN_PROGRESS = "0x80042316"
ERRORLEVEL_NOT_RECOGNIZED = 9009
COMPARISONS = {"EQU": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LSS": lambda a, b: a < b,
               "LEQ": lambda a, b: a <= b, "GTR": lambda a, b: a > b, "GEQ": lambda a, b: a >= b}


class SessionError(Exception):
    """A session operation that fails the way the agent reports it (``message``, ``hresult``)."""

    def __init__(self, message, hresult=None, output=None, exit_code=None):
        super().__init__(message)
        self.message = message
        self.hresult = hresult
        self.output = output
        self.exit_code = exit_code


class BatchStopped(Exception):
    """The cmd.exe process was killed (its task was stopped)."""


def protocol_script_kind(data):
    """``record``, ``hold`` or ``run`` for the collection's batch files of protocol 1 (by their ``rem`` line), else None."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    for line in text.replace("\r\n", "\n").split("\n")[:5]:
        match = MARKER.match(line)
        if match and match.group("protocol") == PROTOCOL:
            return match.group("kind").lower()
    return None


def hold_timeout(data):
    """The ``timeout=`` of a hold script's marker line, or None."""
    text = data.decode("latin-1") if isinstance(data, bytes) else data
    for line in text.replace("\r\n", "\n").split("\n")[:5]:
        match = MARKER.match(line)
        if match:
            found = re.search(r"\btimeout=(\d+)", match.group("rest"))
            return int(found.group(1)) if found else None
    return None


def _split_outside_quotes(text, separators):
    """``[(separator before, part)]`` of ``text`` split at any of ``separators`` outside double quotes."""
    parts, current, before, quoted, index = [], [], None, False, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        if not quoted and not (char == "&" and index and text[index - 1] in "<>"):
            found = next((s for s in separators if text.startswith(s, index)), None)
            if found:
                parts.append((before, "".join(current)))
                current, before = [], found
                index += len(found)
                continue
        current.append(char)
        index += 1
    parts.append((before, "".join(current)))
    return parts


def _closing_paren(text):
    """Index of the parenthesis that closes the one ``text`` starts with (outside quotes), or None."""
    depth, quoted = 0, False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth == 0:
                return index
    return None


def _unquote(text):
    text = text.strip()
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def parse_redirections(text):
    """``(command text, [(handle, mode, target)])``: cmd's ``N>file``, ``>>file``, ``2>&1``, ``>nul`` outside quotes.

    A single digit right before ``>`` and after a delimiter is the handle (``echo 0> x`` redirects handle 0 and
    echoes nothing); ``target`` is a path, ``nul`` or ``&N``.
    """
    command, redirections, quoted, index = [], [], False, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        if quoted or char not in "<>":
            command.append(char)
            index += 1
            continue
        if char == "<":
            index += 1
            continue
        handle = 1
        if command and command[-1].isdigit() and (len(command) == 1 or command[-2] in " \t;,=()"):
            handle = int(command.pop())
        mode = ">"
        index += 1
        if index < len(text) and text[index] == ">":
            mode, index = ">>", index + 1
        while index < len(text) and text[index] in " \t":
            index += 1
        if text.startswith("&", index):
            match = re.match(r"&(\d)", text[index:])
            target = "&" + (match.group(1) if match else "1")
            index += len(target)
        elif text.startswith('"', index):
            end = text.find('"', index + 1)
            end = len(text) if end < 0 else end + 1
            target = text[index:end]
            index = end
        else:
            match = re.match(r"[^\s<>&|]*", text[index:])
            target = match.group(0)
            index += len(target)
        redirections.append((handle, mode, _unquote(target)))
    return "".join(command), redirections


class Batch:  # pylint: disable=too-many-instance-attributes
    """One cmd.exe running a batch file on a host model (see the module docstring for what it understands)."""

    def __init__(self, model, path, data, environment, write, *, stop=None, sleep=None, cwd=None, run_id=None):
        self.model = model
        self.path = path
        self.text = agent_decode(data, model.locale.oem_code_page) if isinstance(data, bytes) else data
        self.env = {key.upper(): value for key, value in (environment or {}).items()}
        self.saved = []
        self.write = write
        self.stop = stop
        self.sleep_function = sleep
        self.cwd = cwd or path.rsplit("\\", 1)[0]
        self.run_id = run_id
        self.errorlevel = 0
        self.echo_on = True
        self.statements = 0

    # ------------------------------------------------------------------------------------------ helpers
    def _check_stop(self):
        if self.stop is not None and self.stop.is_set():
            raise BatchStopped()

    def sleep(self, seconds):
        if seconds <= 0:
            return
        if self.sleep_function is not None:
            self.sleep_function(seconds)
        elif self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(min(seconds, MAX_WAIT_SECONDS))
        self._check_stop()

    def absolute(self, path):
        path = _unquote(path)
        if re.match(r"^[A-Za-z]:\\", path) or path.startswith("\\\\"):
            return path
        return self.cwd.rstrip("\\") + "\\" + path

    def expand(self, line):
        """Batch-file percent expansion: ``%%`` -> ``%``, ``%NAME%`` -> value or nothing, ``%0``-``%9`` -> nothing."""
        out, index = [], 0
        while index < len(line):
            char = line[index]
            if char != "%":
                out.append(char)
                index += 1
                continue
            if line.startswith("%%", index):
                out.append("%")
                index += 2
                continue
            if index + 1 < len(line) and line[index + 1].isdigit():
                index += 2
                continue
            end = line.find("%", index + 1)
            if end < 0:
                index += 1
                continue
            name = line[index + 1:end].upper()
            if name == "ERRORLEVEL" and name not in self.env:
                out.append(str(self.errorlevel))
            else:
                out.append(self.env.get(name, ""))
            index = end + 1
        return "".join(out)

    def _file_writer(self, path, mode):
        """A writer that appends console text (OEM code page, CRLF) to a file, created or truncated now."""
        target = self.absolute(path)
        if target.lower() == "nul":
            return lambda text: None
        if mode == ">" or self.model.read_file(target) is None:
            self.model.write_file(target, b"")
        code_page = self.model.locale.oem_code_page

        def append(text):
            if text:
                current = self.model.read_file(target) or b""
                self.model.write_file(target, current + console_bytes(text, code_page))

        return append

    def _streams(self, redirections, stdout, stderr):
        for handle, mode, target in redirections:
            if target.startswith("&"):
                source = stdout if target == "&1" else stderr
                if handle == 1:
                    stdout = source
                elif handle == 2:
                    stderr = source
                continue
            writer = self._file_writer(target, mode) if target.lower() != "nul" else (lambda text: None)
            if handle == 1:
                stdout = writer
            elif handle == 2:
                stderr = writer
        return stdout, stderr

    # --------------------------------------------------------------------------------------------- run
    def run(self):
        """Run the file; returns its exit code (``exit /b N``, else the last errorlevel)."""
        lines = self.text.replace("\r\n", "\n").split("\n")
        labels = {}
        for number, line in enumerate(lines):
            stripped = line.strip()
            if stripped.startswith(":") and not stripped.startswith("::"):
                labels[stripped[1:].split()[0].lower() if stripped[1:].split() else ""] = number
        index = 0
        while index < len(lines):
            self._check_stop()
            self.statements += 1
            if self.statements > MAX_STATEMENTS:
                self.write_stderr("lab: the batch file %s ran more than %d statements and was stopped." % (self.path, MAX_STATEMENTS))
                return 1
            line = lines[index].strip()
            index += 1
            if not line or line.startswith(":"):
                continue
            if line.startswith("(") and _closing_paren(line) is None:
                body = [line[1:].strip()] if line[1:].strip() else []
                while index < len(lines) and not lines[index].strip().startswith(")"):
                    body.append(lines[index].strip())
                    index += 1
                closing = lines[index].strip() if index < len(lines) else ")"
                index += 1
                control = self._block(body, closing[1:])
            else:
                control = self.statement(self.expand(line), self.write, self.write_stderr)
            if control is None:
                continue
            if control[0] == "exit":
                return control[1]
            if control[0] == "goto":
                label = control[1].lower()
                if label == "eof":
                    return self.errorlevel
                if label not in labels:
                    self.write_stderr("The system cannot find the batch label specified - %s" % control[1])
                    return 1
                index = labels[label] + 1
        return self.errorlevel

    def write_stderr(self, text):
        self.write(text.rstrip("\n") + "\n")

    def _block(self, body, closing):
        """A parenthesised block: every line expanded when the block is read, its output redirected as a whole."""
        expanded = [self.expand(line) for line in body if line]
        dummy, redirections = parse_redirections(self.expand(closing))
        stdout, stderr = self._streams(redirections, self.write, self.write_stderr)
        for line in expanded:
            control = self.statement(line, stdout, stderr)
            if control is not None:
                return control
        return None

    def statement(self, line, stdout, stderr):
        """One line (after expansion): ``&&``, ``||`` and ``&`` chains of simple commands."""
        control = None
        for separator, part in _split_outside_quotes(line, ("&&", "||", "&")):
            if separator == "&&" and self.errorlevel != 0:
                continue
            if separator == "||" and self.errorlevel == 0:
                continue
            control = self.simple(part.strip(), stdout, stderr)
            if control is not None:
                return control
        return control

    def simple(self, text, stdout, stderr):  # pylint: disable=too-many-return-statements,too-many-branches
        text = text.lstrip("@").strip()
        if not text:
            return None
        close = _closing_paren(text) if text.startswith("(") else None
        if close is not None:
            dummy, redirections = parse_redirections(text[close + 1:])
            out, err = self._streams(redirections, stdout, stderr)
            return self.statement(text[1:close], out, err)
        verb = re.split(r"[\s.(/]", text, maxsplit=1)[0].lower()
        if verb == "rem" or text.startswith("::"):
            return None
        if verb == "if":
            return self._if(text[2:].strip(), stdout, stderr)
        command, redirections = parse_redirections(text)
        out, err = self._streams(redirections, stdout, stderr)
        command = command.lstrip()
        words = command.split()
        verb = re.split(r"[\s.(/]", command, maxsplit=1)[0].lower() if words else ""
        arguments = command[len(verb):]
        if verb == "echo":
            return self._echo(arguments, out)
        if verb == "setlocal":
            self.saved.append(dict(self.env))
            return None
        if verb == "endlocal":
            if self.saved:
                self.env = self.saved.pop()
            return None
        if verb == "set":
            return self._set(arguments.strip(), out, err)
        if verb == "goto":
            return ("goto", arguments.strip().lstrip(":").split()[0] if arguments.strip() else "")
        if verb == "exit":
            parts = arguments.split()
            codes = [part for part in parts if part.lower() != "/b"]
            code = int(codes[0]) if codes and re.match(r"^-?\d+$", codes[0]) else self.errorlevel
            self.errorlevel = code
            return ("exit", code)
        if verb == "cd" or verb == "chdir":
            target = " ".join(part for part in words[1:] if part.lower() != "/d")
            self.cwd = self.absolute(target).rstrip("\\") if target else self.cwd
            self.errorlevel = 0
            return None
        handler = {"ping": self._ping, "findstr": self._findstr, "move": self._move, "del": self._del, "erase": self._del,
                   "type": self._type, "diskshadow": self._diskshadow, "diskshadow.exe": self._diskshadow}.get(verb)
        if handler is None:
            err("'%s' is not recognized as an internal or external command,\noperable program or batch file.\n" % words[0])
            self.errorlevel = ERRORLEVEL_NOT_RECOGNIZED
            return None
        self.errorlevel = handler(arguments.strip(), out, err)
        return None

    def _echo(self, arguments, out):
        if arguments[:1] in (".", ":", "("):
            out(arguments[1:] + "\n")
            return None
        text = arguments[1:] if arguments[:1] in (" ", "\t") else arguments
        if text.strip().lower() in ("off", "on"):
            self.echo_on = text.strip().lower() == "on"
            return None
        if not text.strip():
            out("ECHO is %s.\n" % ("on" if self.echo_on else "off"))
            return None
        out(text + "\n")
        return None

    def _set(self, arguments, out, err):
        if arguments.lower().startswith("/a"):
            expression = _unquote(arguments[2:].strip())
            match = re.match(r"^\s*([A-Za-z_][\w.]*)\s*([-+*/])?=\s*(.+)$", expression)
            if match:
                name, operator, value = match.group(1).upper(), match.group(2), self._arithmetic(match.group(3))
                if operator:
                    current = self._arithmetic(self.env.get(name, "0") or "0")
                    value = {"+": current + value, "-": current - value, "*": current * value,
                             "/": int(current / value) if value else 0}[operator]
                self.env[name] = str(value)
                self.errorlevel = 0
                return None
            out(str(self._arithmetic(expression)) + "\n")
            return None
        name, separator, value = _unquote(arguments).partition("=")
        if not separator:
            matches = sorted((k, v) for k, v in self.env.items() if k.startswith(name.upper()))
            for key, current in matches:
                out("%s=%s\n" % (key, current))
            self.errorlevel = 0 if matches else 1
            if not matches:
                err("Environment variable %s not defined\n" % name)
            return None
        if value:
            self.env[name.upper()] = value
        else:
            self.env.pop(name.upper(), None)
        self.errorlevel = 0
        return None

    def _arithmetic(self, text):
        total, sign = 0, 1
        for token in re.findall(r"[-+]|[A-Za-z_][\w.]*|\d+", text):
            if token in "+-" and len(token) == 1:
                sign = -1 if token == "-" else 1
                continue
            value = int(token) if token.isdigit() else int(self.env.get(token.upper(), "0") or "0")
            total += sign * value
            sign = 1
        return total

    def _if(self, text, stdout, stderr):
        negate = False
        insensitive = False
        while True:
            lowered = text.lower()
            if lowered.startswith("not "):
                negate, text = not negate, text[4:].strip()
            elif lowered.startswith("/i "):
                insensitive, text = True, text[3:].strip()
            else:
                break
        lowered = text.lower()
        if lowered.startswith("exist "):
            rest = text[6:].strip()
            target, command = self._first_token(rest)
            condition = self.model.file_exists(self.absolute(target))
        elif lowered.startswith("errorlevel "):
            number, command = self._first_token(text[11:].strip())
            condition = self.errorlevel >= int(number)
        elif lowered.startswith("defined "):
            name, command = self._first_token(text[8:].strip())
            condition = name.upper() in self.env
        else:
            match = re.match(r'^("[^"]*"|\S+?)\s*(==|\s(?:EQU|NEQ|LSS|LEQ|GTR|GEQ)\s)\s*("[^"]*"|\S+)\s+(.*)$', text, re.IGNORECASE)
            if not match:
                stderr("The syntax of the command is incorrect.\n")
                self.errorlevel = 255
                return None
            left, operator, right, command = match.group(1), match.group(2).strip().upper(), match.group(3), match.group(4)
            if insensitive:
                left, right = left.lower(), right.lower()
            if operator == "==":
                condition = left == right
            else:
                try:
                    condition = COMPARISONS[operator](int(_unquote(left)), int(_unquote(right)))
                except ValueError:
                    condition = COMPARISONS[operator](_unquote(left), _unquote(right))
        if condition != negate:
            return self.statement(command, stdout, stderr)
        return None

    @staticmethod
    def _first_token(text):
        if text.startswith('"'):
            end = text.find('"', 1)
            end = len(text) if end < 0 else end + 1
            return _unquote(text[:end]), text[end:].strip()
        token, dummy, rest = text.partition(" ")
        return token, rest.strip()

    # ------------------------------------------------------------------------------------------ programs
    def _ping(self, arguments, out, err):
        del err
        match = re.search(r"-n\s+(\d+)", arguments)
        count = int(match.group(1)) if match else 4
        host = arguments.split()[-1] if arguments.split() else "127.0.0.1"
        out("\nPinging %s with 32 bytes of data:\n" % host)
        for number in range(count):
            if number:
                self.sleep(1.0)
            out("Reply from %s: bytes=32 time<1ms TTL=128\n" % host)
        out("\nPing statistics for %s:\n    Packets: Sent = %d, Received = %d, Lost = 0 (0%% loss),\n" % (host, count, count))
        return 0

    def _findstr(self, arguments, out, err):
        options = re.findall(r'/c:"[^"]*"|/\w+', arguments, re.IGNORECASE)
        rest = arguments
        for option in options:
            rest = rest.replace(option, "", 1)
        literal = next((_unquote(o[3:]) for o in options if o.lower().startswith("/c:")), None)
        names = [_unquote(token) for token in re.findall(r'"[^"]*"|\S+', rest.strip())]
        if literal is None and names:
            literal = names.pop(0)
        whole = any(o.lower() == "/x" for o in options)
        insensitive = any(o.lower() == "/i" for o in options)
        found = False
        for name in names:
            data = self.model.read_file(self.absolute(name))
            if data is None:
                err("FINDSTR: Cannot open %s\n" % name)
                continue
            for line in data.decode(codec(self.model.locale.oem_code_page), errors="replace").split("\n"):
                line = line[:-1] if line.endswith("\r") else line
                left, right = (line.lower(), (literal or "").lower()) if insensitive else (line, literal or "")
                if (left == right) if whole else (right in left):
                    out(line + "\n")
                    found = True
        return 0 if found else 1

    def _move(self, arguments, out, err):
        names = [token for token in re.findall(r'"[^"]*"|\S+', arguments) if token.lower() != "/y"]
        if len(names) != 2:
            err("The syntax of the command is incorrect.\n")
            return 1
        source, target = self.absolute(names[0]), self.absolute(names[1])
        data = self.model.read_file(source)
        if data is None:
            err("The system cannot find the file specified.\n")
            return 1
        self.model.write_file(target, data)
        self.model.delete_file(source)
        out("        1 file(s) moved.\n")
        return 0

    def _del(self, arguments, out, err):
        del out
        for name in [token for token in re.findall(r'"[^"]*"|\S+', arguments) if not token.startswith("/")]:
            if not self.model.delete_file(self.absolute(name)):
                err("Could Not Find %s\n" % self.absolute(name))
        return 0

    def _type(self, arguments, out, err):
        data = self.model.read_file(self.absolute(arguments))
        if data is None:
            err("The system cannot find the file specified.\n")
            return 1
        out(agent_decode(data, self.model.locale.oem_code_page).replace("\r\n", "\n"))
        return 0

    def _diskshadow(self, arguments, out, err):
        if not self.model.os.is_server:
            err("'diskshadow' is not recognized as an internal or external command,\noperable program or batch file.\n")
            return ERRORLEVEL_NOT_RECOGNIZED
        match = re.search(r'/s\s+("[^"]*"|\S+)', arguments, re.IGNORECASE)
        if not match:
            err("lab: diskshadow runs here only in script mode (/s <file>).\n")
            return 1
        script_path = self.absolute(match.group(1))
        data = self.model.read_file(script_path)
        if data is None:
            out("\nThe script file name is not valid.\n\t%s\n" % script_path)
            return 2
        result = run_diskshadow(self.model, agent_decode(data, self.model.locale.oem_code_page), sink=out, stop=self.stop,
                                sleep=self.sleep_function, cwd=self.cwd, run_id=self.run_id)
        if result.exit_code is None:
            raise BatchStopped()
        return result.exit_code


def run_batch(model, path, data, environment, write_lines, **options):
    """Interpret a batch file; ``write_lines(*lines)`` receives its console output. Returns its exit code.

    Raises :class:`lab.windows.diskshadow.DiskShadowStopped` when the process is killed meanwhile.
    """
    pending = []

    def write(text):
        pending.append(text)
        joined = "".join(pending)
        if "\n" in joined:
            complete, dummy, rest = joined.rpartition("\n")
            pending[:] = [rest] if rest else []
            write_lines(*complete.split("\n"))

    try:
        code = Batch(model, path, data, environment, write, **options).run()
    except BatchStopped as stopped:
        raise DiskShadowStopped() from stopped
    if pending and "".join(pending):
        write_lines("".join(pending))
    return code


# ------------------------------------------------------------------------------------------------- sessions
class Task:  # pylint: disable=too-many-instance-attributes
    """The scheduled task ``\\shadowsnap\\shadowsnap-<run_id>``: cmd.exe /d /c run.cmd as SYSTEM, with a time limit."""

    def __init__(self, run_id, run_dir, time_limit):
        self.run_id = run_id
        self.name = TASK_PREFIX + run_id
        self.run_dir = run_dir
        self.time_limit = time_limit
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.thread = None
        self.timer = None
        self.running = False
        self.last_result = TASK_NEVER_RAN
        self.error = None

    @property
    def state(self):
        return "Running" if self.running else "Ready"

    def sleep(self, seconds):
        """How the task's batch files wait (ping): real time, ended early by a release or a stop."""
        self.wake.wait(seconds)
        self.wake.clear()
        if self.stop.is_set():
            raise BatchStopped()

    def describe(self):
        return {"run_id": self.run_id, "task": TASK_PATH + self.name, "state": self.state, "last_result": self.last_result,
                "age_seconds": round(time.monotonic() - self.started, 3), "time_limit_seconds": self.time_limit,
                "error": self.error}


def _run_file(run_dir, name):
    return run_dir + "\\" + name


def parse_created(text):
    values = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        index = line.find("=")
        if index >= 1:
            values[line[:index].strip()] = line[index + 1:].strip()
    return values


def braced_guid(value):
    """``{guid}`` in lower case, or SessionError (no text reaches a diskshadow script unchecked)."""
    text = str(value).strip()
    match = re.match(r"^\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?$", text)
    if not match:
        raise SessionError("'%s' is not a GUID" % text)
    return "{%s}" % match.group(1).lower()


def int_argument(args, name, default, minimum, maximum):
    """The agent's Get-IntArgument: a whole number clamped to [minimum, maximum]; ``default`` when absent."""
    value = args.get(name) if isinstance(args, dict) else None
    if value is None:
        return default
    text = str(value).strip()
    if isinstance(value, bool) or not re.match(r"^[+-]?\d+$", text):
        raise SessionError("argument '%s' must be a whole number, not '%s'" % (name, value))
    return max(minimum, min(maximum, int(text)))


class SessionManager:
    """The sessions of one host (thread-safe): what the agent's session ops do on Windows (docs/vss-session.md,
    plugins/plugin_utils/agent/shadowsnap_agent.ps1), on the host's model."""

    def __init__(self, model):
        self.model = model
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.tasks = {}
        self.created_at = {}
        self.closed = False

    # --------------------------------------------------------------------------------------------- helpers
    def _wait(self, predicate, seconds, cancel=None):
        """Wait until ``predicate()`` (evaluated without holding the lock: it reads the model), at most ``seconds``."""
        deadline = time.monotonic() + max(0.0, float(seconds or 0))
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.closed or (cancel is not None and cancel.is_set()):
                return False
            with self.changed:
                self.changed.wait(min(remaining, POLL_SECONDS))
        return True

    def _read_small(self, path):
        """Read-SmallText: ASCII, trimmed; None when absent."""
        data = self.model.read_file(path)
        return None if data is None else data.decode("ascii", errors="replace").strip()

    def _dir_exists(self, run_id):
        return bool(self.model.list_files(run_dir_of(run_id))) or run_id in self.created_at

    def run_age(self, run_id):
        """Seconds since the run directory was created (directories the lab did not create count as very old)."""
        created = self.created_at.get(run_id)
        return float("inf") if created is None else time.monotonic() - created

    def age(self, run_id, seconds):
        """Lab control: make a run directory ``seconds`` older (so that cleanup's minimum age can be tested)."""
        if run_id not in self.created_at:
            raise SessionError("no run directory %s" % run_dir_of(run_id))
        self.created_at[run_id] -= float(seconds)
        task = self.tasks.get(run_id)
        if task is not None:
            task.started -= float(seconds)
        return self.run_age(run_id)

    @staticmethod
    def _active(task):
        return task is not None and (task.running or task.last_result == TASK_NEVER_RAN)

    # ------------------------------------------------------------------------------------------ status
    def status(self, run_id, with_log=True):
        """Get-SessionStatus: starting, created, completed, failed or missing."""
        run_dir = run_dir_of(run_id)
        status = {"run_id": run_id, "run_dir": run_dir, "state": "missing", "shadow_set_id": None, "shadows": {},
                  "exit_code": None, "log": None, "log_truncated": False, "task_running": False, "task_state": None,
                  "release": None}
        if not self._dir_exists(run_id):
            return status
        task = self.tasks.get(run_id)
        active = self._active(task)
        status["task_running"] = active
        status["task_state"] = task.state if task is not None else None
        created = self.model.read_file(_run_file(run_dir, "created.txt"))
        if created is not None:
            values = parse_created(created.decode("ascii", errors="replace").strip())
            status["shadow_set_id"] = values.pop("VSS_SHADOW_SET", None)
            status["shadows"] = values
        exit_text = self._read_small(_run_file(run_dir, "exit.txt"))
        if exit_text:
            status["exit_code"] = int(exit_text) if re.match(r"^[+-]?\d+$", exit_text) and abs(int(exit_text)) < 2 ** 31 else -1
        status["release"] = self._read_small(_run_file(run_dir, "release.txt"))
        if status["exit_code"] is not None:
            status["state"] = "completed" if status["exit_code"] == 0 else "failed"
        elif active:
            status["state"] = "created" if created is not None else "starting"
        else:
            status["state"] = "failed"
        if with_log:
            data = self.model.read_file(_run_file(run_dir, "diskshadow.log"))
            if data is not None:
                text = agent_decode(data, self.model.locale.oem_code_page)
                status["log_truncated"] = len(text) > LOG_LIMIT
                status["log"] = text[-LOG_LIMIT:]
        return status

    def wait_session(self, run_id, seconds, until="end", cancel=None):
        """Wait-Session: until the run has ended (``end``) or created its set or ended (``created``)."""

        def settled():
            state = self.status(run_id, with_log=False)["state"]
            return state in ("completed", "failed", "missing") or (until == "created" and state == "created")

        self._wait(settled, seconds, cancel)
        return self.status(run_id)

    # --------------------------------------------------------------------------------------------- ops
    def start(self, args, cancel=None):  # pylint: disable=too-many-locals
        """session_start (docs/vss-session.md)."""
        run_id = run_id_argument(args)
        run_dir = run_dir_of(run_id)
        wait_seconds = int_argument(args, "wait_seconds", 0, 0, MAX_WAIT_SECONDS)
        time_limit = int_argument(args, "time_limit_seconds", DEFAULT_TASK_LIMIT_SECONDS, 60, 86400)
        expected = str(args.get("run_dir") or "")
        if expected and expected.rstrip("\\") != run_dir.rstrip("\\"):
            raise SessionError("the session files were generated for %s, but this host's run directory is %s (ProgramData is "
                               "C:\\ProgramData)" % (expected, run_dir))
        files = args.get("files")
        if not isinstance(files, dict):
            raise SessionError("session_start needs files (name -> text)")
        for required in ("snapshot.dsh", "record.cmd", "run.cmd"):
            if required not in files:
                raise SessionError("session_start needs the file %s" % required)
        for name, text in files.items():
            if name not in SESSION_FILES:
                raise SessionError("'%s' is not a session file (%s)" % (name, ", ".join(SESSION_FILES)))
            if re.search(r"[^\x00-\x7f]", str(text if text is not None else "")):
                raise SessionError("session file %s is not ASCII" % name)
        cleaned = []
        if args.get("cleanup_older_than_seconds") is not None:
            cleaned = self.cleanup(int_argument(args, "cleanup_older_than_seconds", 0, 60, 31536000))
        with self.lock:
            if self.closed:
                raise SessionError("the host is shutting down")
            others = [task.name for task in self.tasks.values() if task.run_id != run_id and self._active(task)]
            if others:
                raise SessionError("another shadowsnap session is running on this host (%s); VSS creates one shadow copy set "
                                   "at a time" % ", ".join(others), hresult=HRESULT_SNAPSHOT_SET_IN_PROGRESS)
            if self._dir_exists(run_id):
                raise SessionError("run %s already exists (%s); a run id is used once" % (run_id, run_dir))
            self.created_at[run_id] = time.monotonic()
            for name, text in files.items():
                self.model.write_file(_run_file(run_dir, name), str(text if text is not None else "").encode("ascii"))
            task = Task(run_id, run_dir, float(time_limit))
            self.tasks[run_id] = task
            task.running = True
            task.last_result = TASK_RUNNING
            task.thread = threading.Thread(target=self._task, args=(task,), name="lab-task-%s-%s" % (self.model.name, run_id),
                                           daemon=True)
            task.timer = threading.Timer(task.time_limit, self._time_limit, args=(task,))
            task.timer.daemon = True
            task.timer.start()
            task.thread.start()
        status = self.wait_session(run_id, wait_seconds, "created", cancel)
        status["cleaned"] = cleaned
        return status

    def _time_limit(self, task):
        task.error = "the task ran past its execution time limit (%g s) and was stopped" % task.time_limit
        task.stop.set()
        task.wake.set()

    def _task(self, task):
        path = _run_file(task.run_dir, "run.cmd")
        try:
            data = self.model.read_file(path) or b""
            if protocol_script_kind(data) is not None:
                result = run_batch(self.model, path, data, {"COMPUTERNAME": self.model.hostname}, lambda *lines: None,
                                   stop=task.stop, sleep=task.sleep, cwd=task.run_dir, run_id=task.run_id)
            else:
                result = self.model.exec_exit_codes.get(path.lower(), 0)
            task.last_result = result
        except DiskShadowStopped:
            task.last_result = SCHED_S_TASK_TERMINATED
        except Exception as error:  # pylint: disable=broad-except
            task.error = "%s: %s" % (type(error).__name__, error)
            task.last_result = 1
        finally:
            if task.timer is not None:
                task.timer.cancel()
            with self.changed:
                task.running = False
                self.changed.notify_all()

    def session_status(self, args, cancel=None):
        run_id = run_id_argument(args)
        until = str(args.get("until", "end") if args.get("until") is not None else "end")
        if until not in ("end", "created"):
            raise SessionError("until must be 'end' or 'created', not '%s'" % until)
        return self.wait_session(run_id, int_argument(args, "wait_seconds", 0, 0, MAX_WAIT_SECONDS), until, cancel)

    def release(self, args, cancel=None):
        """session_release: the first decision stands; abort stops a task that still runs; deletes when asked."""
        run_id = run_id_argument(args)
        decision = str(args.get("decision") or "")
        if decision not in ("ok", "abort"):
            raise SessionError("decision must be 'ok' or 'abort', not '%s'" % decision)
        wait_seconds = int_argument(args, "wait_seconds", 0, 0, MAX_WAIT_SECONDS)
        delete = bool(args.get("delete_shadows", False))
        run_dir = run_dir_of(run_id)
        release_path = _run_file(run_dir, "release.txt")
        status = self.status(run_id)
        released_before = self.model.file_exists(release_path)
        if status["state"] != "missing":
            if not released_before:
                self.model.write_file(release_path, (decision + "\r\n").encode("ascii"))
            task = self.tasks.get(run_id)
            if task is not None:
                task.wake.set()
            status = self.wait_session(run_id, wait_seconds, "end", cancel)
            if self._read_small(release_path) == "abort" and status["task_running"]:
                self.stop_task(run_id)
                status = self.status(run_id)
        present, deleted = [], []
        if status["shadow_set_id"]:
            present = self.set_shadow_ids(status["shadow_set_id"])
            if delete and not status["task_running"]:
                deleted = self.remove_shadows(status["shadow_set_id"])
        if status["state"] != "missing" and not status["task_running"]:
            self.unregister(run_id)
        status["decision"] = self._read_small(release_path)
        status["released_before"] = released_before
        status["present_shadow_ids"] = present
        status["deleted_shadow_ids"] = deleted
        return status

    def set_shadow_ids(self, set_id=None, shadow_ids=()):
        """Get-SetShadowIds: ids (``{guid}``, lower case) of the set's shadow copies, or of the listed ones, that exist."""
        wanted = [braced_guid(shadow_id) for shadow_id in shadow_ids if shadow_id is not None]
        wanted_set = braced_guid(set_id) if set_id else None
        return [record["ID"].lower() for record in self.model.list_shadows()
                if (wanted_set and record["SetID"].lower() == wanted_set) or record["ID"].lower() in wanted]

    def remove_shadows(self, set_id=None, shadow_ids=()):
        """Remove-Shadows: ``delete shadows set``/``id`` through diskshadow; the ids that existed before and are gone."""
        shadow_ids = [shadow_id for shadow_id in shadow_ids if shadow_id is not None]
        before = self.set_shadow_ids(set_id, shadow_ids)
        if not before:
            return []
        if not self.model.os.is_server:
            raise SessionError("diskshadow.exe is not on this host (it ships with Windows Server only)")
        lines = ["delete shadows set %s" % braced_guid(set_id)] if set_id else []
        lines += ["delete shadows id %s" % braced_guid(shadow_id) for shadow_id in shadow_ids]
        result = run_diskshadow(self.model, "\r\n".join(lines) + "\r\n")
        after = self.set_shadow_ids(set_id, shadow_ids)
        if after:
            raise SessionError("diskshadow did not delete the shadow copies %s" % ", ".join(after),
                               hresult="0x%08X" % result.failure if result.failure else None, output=result.output,
                               exit_code=result.exit_code)
        return before

    def shadow_delete(self, args):
        set_id = args.get("shadow_set_id")
        shadow_ids = args.get("shadow_ids") or []
        if not isinstance(shadow_ids, list):
            shadow_ids = [shadow_ids]
        if not set_id and not shadow_ids:
            raise SessionError("shadow_delete needs shadow_set_id or shadow_ids")
        return {"deleted_shadow_ids": self.remove_shadows(set_id, shadow_ids)}

    def stop_task(self, run_id, timeout=10.0):
        """Stop-SessionTask: the task and the diskshadow it started are killed."""
        task = self.tasks.get(run_id)
        if task is None:
            return
        task.stop.set()
        task.wake.set()
        if task.thread is not None and task.thread is not threading.current_thread():
            task.thread.join(timeout)
        if task.timer is not None:
            task.timer.cancel()
            if task.timer.is_alive() and task.timer is not threading.current_thread():
                task.timer.join(timeout)

    def unregister(self, run_id):
        with self.lock:
            task = self.tasks.get(run_id)
            if task is not None and not task.running:
                del self.tasks[run_id]

    def cleanup(self, older_than_seconds):
        """Invoke-SessionCleanup: runs older than that (not a task still within its own time limit): stop the task,
        delete the shadows recorded in created.txt unless released ``ok``, unregister the task, remove the directory."""
        run_ids = {path[len(RUN_ROOT) + 1:].split("\\", 1)[0] for path in self.model.list_files(RUN_ROOT)}
        cleaned = []
        for run_id in sorted(run_ids):
            age = self.run_age(run_id)
            if age < older_than_seconds or not RUN_ID.match(run_id):
                continue
            task = self.tasks.get(run_id)
            if self._active(task) and age < task.time_limit:
                continue
            entry = {"run_id": run_id, "shadow_set_id": None, "deleted_shadow_ids": [], "error": None}
            try:
                self.stop_task(run_id)
                run_dir = run_dir_of(run_id)
                created = self.model.read_file(_run_file(run_dir, "created.txt"))
                record = parse_created(created.decode("ascii", errors="replace")) if created is not None else None
                if record and record.get("VSS_SHADOW_SET") and self._read_small(_run_file(run_dir, "release.txt")) != "ok":
                    entry["shadow_set_id"] = record["VSS_SHADOW_SET"]
                    entry["deleted_shadow_ids"] = self.remove_shadows(record["VSS_SHADOW_SET"])
                self.unregister(run_id)
                for path in self.model.list_files(run_dir):
                    self.model.delete_file(path)
                with self.lock:
                    self.created_at.pop(run_id, None)
            except SessionError as error:
                entry["error"] = error.message
            cleaned.append(entry)
        return cleaned

    def describe(self):
        return [task.describe() for task in list(self.tasks.values())]

    def shutdown(self, timeout=5.0):
        """The lab stops or resets: every task stopped, every thread joined."""
        with self.changed:
            self.closed = True
            run_ids = list(self.tasks)
            self.changed.notify_all()
        for run_id in run_ids:
            self.stop_task(run_id, timeout)


def run_dir_of(run_id):
    return RUN_ROOT + "\\" + run_id


def run_id_argument(args):
    run_id = str(args.get("run_id") if isinstance(args, dict) and args.get("run_id") is not None else "")
    if not RUN_ID.match(run_id):
        raise SessionError("run id '%s' is not valid (letters, digits, '.', '_' or '-', at most 64)" % run_id)
    return run_id
