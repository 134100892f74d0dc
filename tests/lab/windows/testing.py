"""Helpers for tests that use simulated Windows hosts without a whole lab (no moto, no endpoints).

:func:`sample_instance` makes a seeded-instance dict like ``Lab.state()["instances"]`` entries, with made-up but
well-formed ids; :func:`agent_command` makes the ``(command, arguments, stdin)`` the collection's transport sends
(PowerShell with an encoded bootstrap, the request line and an agent script on stdin).
"""

import base64
import hashlib
import json

from lab.topology import DEFAULT_TOPOLOGY

# A stand-in for the transport's bootstrap: reads stdin, splits at the first line feed, runs the rest.
BOOTSTRAP = (
    "$text = [Console]::In.ReadToEnd(); $nl = $text.IndexOf(\"`n\"); "
    "& ([scriptblock]::Create($text.Substring($nl + 1))) $text.Substring(0, $nl)"
)
AGENT_SCRIPT = "# shadowsnap-agent protocol=1\nparam([string]$RequestJson)\n# (the lab answers from its model)\n"


def fake_id(prefix, *parts):
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).hexdigest()
    return "%s-0%s" % (prefix, digest[:16])


def sample_instance(name="win-sql-01", style=None, volumes=None, windows=None, region="us-east-1"):
    """A seeded instance: the default topology's host ``name`` (or the given volumes/windows) with fake ids."""
    template = next((host for host in DEFAULT_TOPOLOGY if host["name"] == name), None)
    if template is None and volumes is None:
        raise ValueError("no default topology host %r: give volumes" % name)
    volumes = volumes if volumes is not None else template["volumes"]
    seeded = []
    for volume in volumes:
        entry = dict(volume)
        entry.setdefault("volume_id", fake_id("vol", name, volume["device"]))
        seeded.append(entry)
    return {
        "name": name,
        "instance_id": fake_id("i", name),
        "instance_type": template["instance_type"] if template else "m5.large",
        "style": style or (template["style"] if template else "nitro"),
        "availability_zone": region + "a",
        "root_device_name": "/dev/sda1",
        "volumes": seeded,
        "windows": dict(windows if windows is not None else (template or {}).get("windows", {})),
    }


def bootstrap_arguments(bootstrap=BOOTSTRAP):
    """The one ``rsp:Arguments`` element Ansible and pywinrm send."""
    encoded = base64.b64encode(bootstrap.encode("utf-16-le")).decode("ascii")
    return ["-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand %s" % encoded]


def agent_stdin(op, args=None, protocol=1, script=AGENT_SCRIPT):
    request = {"protocol": protocol, "op": op, "args": args or {}}
    return (json.dumps(request) + "\n" + script).encode("utf-8")


def agent_command(op, args=None, **options):
    """``(command, arguments, stdin)`` of one agent round trip."""
    return "PowerShell", bootstrap_arguments(), agent_stdin(op, args, **options)


def call_agent_over_winrm(host_info, op, args=None, bootstrap=BOOTSTRAP, script=AGENT_SCRIPT):
    """One agent round trip through the real pywinrm client to a lab endpoint (``Lab.state()["windows_hosts"]`` entry),
    the way the collection's transport sends it: PowerShell -EncodedCommand <bootstrap>, request + agent on stdin."""
    import winrm  # pylint: disable=import-outside-toplevel

    protocol = winrm.Protocol(endpoint=host_info["endpoint"], transport="basic", username=host_info["username"],
                              password=host_info["password"], message_encryption="never")
    shell = protocol.open_shell()
    try:
        encoded = base64.b64encode(bootstrap.encode("utf-16-le")).decode()
        command = protocol.run_command(shell, "PowerShell", ["-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand " + encoded])
        protocol.send_command_input(shell, command, agent_stdin(op, args, script=script), end=True)
        stdout, stderr, exit_code = protocol.get_command_output(shell, command)
        protocol.cleanup_command(shell, command)
    finally:
        protocol.close_shell(shell)
    if exit_code != 0:
        raise AssertionError("agent round trip failed: exit %s, stderr %r" % (exit_code, stderr))
    return json.loads(stdout.decode("utf-8"))


def call_agent(host, op, args=None, **options):
    """Run one agent request on a :class:`lab.windows.LabWindowsHost` and return the answer document."""
    result = host.run_command(*agent_command(op, args, **options))
    if result.exit_code != 0:
        raise AssertionError("agent round trip failed: exit %s, stderr %r" % (result.exit_code, result.stderr))
    return json.loads(result.stdout.decode("utf-8"))
