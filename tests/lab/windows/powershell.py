"""powershell.exe on a simulated host, apart from the agent: what the process prints when it cannot run a script.

A host cannot run PowerShell. Besides the collection's agent (lab.windows.agent_twin) it answers a few harmless
statements minimally so that Ansible's ``raw`` works for smoke tests: ``Write-Output``/``echo``/``Write-Host`` of
literal text, ``exit N``, ``hostname``, ``$env:COMPUTERNAME``, ``$PSVersionTable`` (and ``.PSVersion``), and the
boilerplate Ansible wraps around them. Anything else is refused as PowerShell refuses a command it does not know: a
CLIXML error record on stderr, exit code 1 (the shape PowerShell writes when its output is redirected).
"""

import re
from xml.sax.saxutils import escape

CLIXML_HEADER = "#< CLIXML\r\n"
CLIXML_NAMESPACE = "http://schemas.microsoft.com/powershell/2004/04"


def text_lines(text):
    """Lines as PowerShell reads them from a stream (CRLF or LF), no empty line for the last line end."""
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def stdin_lines(stdin):
    """What ``$input`` gives a script: the lines of standard input."""
    return text_lines(stdin.decode("utf-8", errors="replace").lstrip("\ufeff"))


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
