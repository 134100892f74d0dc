"""Ansible inventories for the lab's simulated Windows hosts (from ``Lab.state()["windows_hosts"]``)."""

import json
import os
import re

import yaml

GROUP = "windows"
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_./:@+-]+$")


def inventory_hosts(windows_hosts):
    """``{inventory name: host vars}``; each host's vars reach its endpoint with the ``winrm`` connection plugin."""
    return {host["name"]: dict(host["inventory_vars"]) for host in windows_hosts}


def _ini_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return text if _BARE_VALUE.match(text) else json.dumps(text)


def render_inventory(windows_hosts, fmt="yaml", group=GROUP):
    """The inventory text, ``yaml`` or ``ini``: every host in group ``windows`` with its connection vars."""
    hosts = inventory_hosts(windows_hosts)
    if fmt == "ini":
        lines = ["[%s]" % group]
        for name, variables in hosts.items():
            lines.append(" ".join([name] + ["%s=%s" % (key, _ini_value(value)) for key, value in variables.items()]))
        return "\n".join(lines) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump({"all": {"children": {group: {"hosts": hosts}}}}, default_flow_style=False, sort_keys=False)
    raise ValueError("fmt must be yaml or ini")


def write_inventory(path, windows_hosts, fmt=None, group=GROUP):
    """Write the inventory to ``path`` (format from the extension unless given: ``.ini``/``.cfg`` INI, else YAML)."""
    if fmt is None:
        fmt = "ini" if os.path.splitext(path)[1].lower() in (".ini", ".cfg", "") else "yaml"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_inventory(windows_hosts, fmt, group))
    return path
