r"""cmd.exe running a batch file on a simulated host: the part of cmd.exe the collection's session scripts use.

:func:`run_batch` interprets the record, hold and run scripts (recognised by their ``rem shadowsnap-<kind> protocol=1``
line): ``@echo off``, ``rem``, ``setlocal``, ``set`` and ``set /a``, labels and ``goto``, ``if exist`` / ``if A LEQ B``
/ ``if errorlevel``, ``exit /b N``, parenthesised blocks with their output redirected, ``echo`` (with cmd's rule that
a digit written right before ``>`` is a handle number: ``echo 0> file`` writes nothing into the file), ``>``, ``>>``,
``2>&1``, ``>nul``, ``&&``/``||``, ``move``, ``del``, ``type``, ``cd /d``, ``findstr /x /c:"..."``, ``ping -n N``
(waits N-1 seconds, in real time; the hold's wait ends early when ``session_release`` writes the release file) and
``diskshadow /s`` (the simulated one, :mod:`lab.windows.diskshadow`). ``%VAR%`` expands as in a batch file (an
undefined variable expands to nothing) from the environment diskshadow gives the scripts it ``exec``s (its aliases
and ``VSS_SHADOW_SET``). Anything else is "not recognized as an internal or external command" (errorlevel 9009).
"""

import re
import time

from .diskshadow import DiskShadowStopped, run_diskshadow
from .locales import agent_decode, codec, console_bytes

MARKER = re.compile(r"^\s*@?rem\s+shadowsnap-(?P<kind>record|hold|run)\s+protocol=(?P<protocol>\d+)\b(?P<rest>.*)$", re.IGNORECASE)
PROTOCOL = "1"
MAX_WAIT_SECONDS = 900
MAX_STATEMENTS = 200000
ERRORLEVEL_NOT_RECOGNIZED = 9009
COMPARISONS = {"EQU": lambda a, b: a == b, "NEQ": lambda a, b: a != b, "LSS": lambda a, b: a < b,
               "LEQ": lambda a, b: a <= b, "GTR": lambda a, b: a > b, "GEQ": lambda a, b: a >= b}


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
        if mode == ">" or self.model.files.read(target) is None:
            self.model.files.write(target, b"")
        code_page = self.model.locale.oem_code_page

        def append(text):
            if text:
                current = self.model.files.read(target) or b""
                self.model.files.write(target, current + console_bytes(text, code_page))

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
            condition = self.model.files.exists(self.absolute(target))
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
            data = self.model.files.read(self.absolute(name))
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
        data = self.model.files.read(source)
        if data is None:
            err("The system cannot find the file specified.\n")
            return 1
        self.model.files.write(target, data)
        self.model.files.delete(source)
        out("        1 file(s) moved.\n")
        return 0

    def _del(self, arguments, out, err):
        del out
        for name in [token for token in re.findall(r'"[^"]*"|\S+', arguments) if not token.startswith("/")]:
            if not self.model.files.delete(self.absolute(name)):
                err("Could Not Find %s\n" % self.absolute(name))
        return 0

    def _type(self, arguments, out, err):
        data = self.model.files.read(self.absolute(arguments))
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
        data = self.model.files.read(script_path)
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
