# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent script read from its text, as the transport sends it (there is no PowerShell here to run it).

tree-sitter-powershell parses it (a syntax error shows as an ERROR or MISSING node) and finds its functions; the
generated ``$Shadowsnap`` block is read back into Python values; module-level assignments, ``[ordered]@{...}`` keys and
``$answer['key'] =`` additions are read from the text. test_agent_script.py and tests/unit/lab/test_agent_twin_parity.py
check the script with it.
"""

from __future__ import annotations

import re

import tree_sitter
import tree_sitter_powershell

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
PROGRAM_DATA = "C:\\ProgramData"

_TOKEN = re.compile(r"\s*(?:(?P<text>'(?:[^']|'')*')|(?P<number>-?\d+)|(?P<bool>\$true|\$false)|(?P<array>@\()"
                    r"|(?P<dict>\[ordered\]@\{)|(?P<close>[)}])|(?P<separator>[,;])|(?P<key>[A-Za-z_]\w*)\s*=)")


def nodes(node):
    yield node
    for child in node.children:
        yield from nodes(child)


def parse_literal(text: str):
    """The Python value of a PowerShell literal as agent_transport.powershell_literal writes it."""
    tokens, position = [], 0
    while position < len(text.rstrip()):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ValueError(f"not a literal the transport writes: {text!r} (at {position})")
        tokens.append((match.lastgroup, match.group(match.lastgroup)))
        position = match.end()
    value, rest = _value(tokens)
    if rest:
        raise ValueError(f"trailing tokens after {text!r}")
    return value


def _value(tokens):
    kind, token = tokens[0]
    rest = tokens[1:]
    if kind == "text":
        return token[1:-1].replace("''", "'"), rest
    if kind == "number":
        return int(token), rest
    if kind == "bool":
        return token == "$true", rest
    if kind == "array":
        items = []
        while rest[0][0] != "close":
            item, rest = _value(rest)
            items.append(item)
            if rest[0][0] == "separator":
                rest = rest[1:]
        return items, rest[1:]
    if kind == "dict":
        entries = {}
        while rest[0][0] != "close":
            key = re.match(r"\w+", rest[0][1]).group(0)
            entries[key], rest = _value(rest[1:])
            if rest[0][0] == "separator":
                rest = rest[1:]
        return entries, rest[1:]
    raise ValueError(f"unexpected {token!r}")


class AgentScript:
    """What one agent script says, read from its text."""

    def __init__(self, source: str):
        self.source = source
        self.data = source.encode("utf-8")
        self.tree = PARSER.parse(self.data)
        self.functions = {}
        for node in nodes(self.tree.root_node):
            if node.type == "function_statement":
                name = next(self.text(child) for child in node.children if child.type == "function_name")
                self.functions[name] = node
        self.assignments = dict(re.findall(r"^\$(\w+) = (.+?)\s*$", source, flags=re.MULTILINE))

    def text(self, node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8")

    def body(self, function: str) -> str:
        return self.text(self.functions[function]) if function in self.functions else ""

    def syntax_errors(self) -> list[str]:
        return [f"line {node.start_point[0] + 1}: {'missing ' + node.type if node.is_missing else 'syntax error near'} "
                f"{self.text(node)[:60]!r}" for node in nodes(self.tree.root_node) if node.type == "ERROR" or node.is_missing]

    def constants(self) -> dict:
        """The ``$Shadowsnap`` block, read back into Python values (empty when the script has none)."""
        match = re.search(r"^\$Shadowsnap = \[pscustomobject\]\[ordered\]@\{\n(?P<body>.*?)\n\}$", self.source,
                          flags=re.MULTILINE | re.DOTALL)
        if not match:
            return {}
        return {name: parse_literal(value) for name, value in
                re.findall(r"^    (\w+) = (.+)$", match.group("body"), flags=re.MULTILINE)}

    def value(self, token: str):
        """A literal, a module-level variable, a ``$Shadowsnap.Name``, an array of those, ``Join-Path <base> <name>``."""
        token = token.strip()
        if token == "$null":
            return None
        shared = re.fullmatch(r"\$Shadowsnap\.(\w+)", token)
        if shared:
            return self.constants()[shared.group(1)]
        if token == "$env:ProgramData":
            return PROGRAM_DATA
        if token.startswith("$"):
            return self.value(self.assignments[token[1:]])
        items = re.fullmatch(r"@\((?P<items>[^()]*\$[^()]*)\)", token)
        if items:
            return [self.value(item) for item in items.group("items").split(",")]
        join = re.fullmatch(r"Join-Path (\S+) (\S+)", token)
        if join:
            return self.value(join.group(1)) + "\\" + self.value(join.group(2))
        return parse_literal(token)

    def hash_keys(self, function: str, opening: str) -> list[str]:
        """The keys of the ``[ordered]@{...}`` that follows ``opening`` in a function, in order (nested ones skipped)."""
        body = self.body(function)
        start = body.index(opening) + len(opening)
        keys, depth = [], 0
        for line in body[start:].split("\n"):
            if depth == 0:
                match = re.match(r"\s*(\w+) = ", line)
                if match:
                    keys.append(match.group(1))
            depth += line.count("@{") - line.count("}")
            if depth < 0:
                break
        return keys

    def added_keys(self, function: str, variable: str = "answer") -> list[str]:
        """The keys a function adds to a dictionary (``$answer['key'] = ...``), in order."""
        return re.findall(r"\$" + variable + r"\['(\w+)'\] = ", self.body(function))

    def int_arguments(self, function: str) -> dict:
        """``{argument: (default, minimum, maximum)}`` of the Get-IntArgument calls of a function."""
        calls = re.findall(r"Get-IntArgument\s+\$OpArgs\s+'(\w+)'\s+([^\s)]+)\s+([^\s)]+)\s+([^\s)]+)", self.body(function))
        return {name: tuple(self.value(token) for token in bounds) for name, *bounds in calls}
