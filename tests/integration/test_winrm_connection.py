"""Ansible's own ``winrm`` connection plugin (pywinrm underneath) against lab WinRM endpoints, through ansible-playbook."""

import json
import os
import subprocess
import sys
import threading

import pytest
import yaml

from lab.winrm import CommandResult, WinRMServer, decode_powershell_command

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
PLAYBOOK = """
- hosts: windows
  gather_facts: false
  tasks:
    - name: say hello
      raw: Write-Output hello-{{ inventory_hostname }}
    - name: fail on purpose
      raw: Write-Output partial; exit 3
      ignore_errors: true
"""


class PowerShellEchoHost:
    """Runs the two PowerShell statements the playbook uses, ``Write-Output <text>`` and ``exit <code>``."""

    def __init__(self):
        self.commands = []

    def run_command(self, command, arguments, stdin):
        self.commands.append((command, list(arguments), stdin))
        script = decode_powershell_command(command, arguments)
        if script is None:
            return CommandResult(stderr=b"the lab host only runs powershell -EncodedCommand\r\n", exit_code=1)
        lines = []
        exit_code = 0
        for statement in script.replace("\n", ";").split(";"):
            verb, dummy, rest = statement.strip().partition(" ")
            if verb == "Write-Output":
                lines.append(rest.strip())
            elif verb == "exit":
                exit_code = int(rest)
        return CommandResult(stdout="".join(line + "\r\n" for line in lines).encode(), exit_code=exit_code)


@pytest.fixture(name="windows_hosts")
def windows_hosts_fixture():
    """Basic over HTTP, Basic over HTTPS without and with certificate validation, NTLM with message encryption over HTTP."""
    threads_before = set(threading.enumerate())
    servers = {
        "win-http": WinRMServer(PowerShellEchoHost(), name="WIN-HTTP"),
        "win-https": WinRMServer(PowerShellEchoHost(), name="WIN-HTTPS", scheme="https"),
        "win-https-ca": WinRMServer(PowerShellEchoHost(), name="WIN-HTTPS-CA", scheme="https"),
        "win-ntlm": WinRMServer(PowerShellEchoHost(), name="WIN-NTLM", auth=("ntlm",)),
    }
    try:
        for server in servers.values():
            server.start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
    assert [server.errors for server in servers.values() if server.errors] == []
    assert [thread for thread in threading.enumerate() if thread not in threads_before] == []


def inventory(servers):
    """Each endpoint's own variables (win-https-ca validates against the lab CA), win-https without validation."""
    hosts = {name: server.inventory_vars() for name, server in servers.items()}
    hosts["win-https"]["ansible_winrm_server_cert_validation"] = "ignore"
    del hosts["win-https"]["ansible_winrm_ca_trust_path"]
    return {"all": {"children": {"windows": {"hosts": hosts}}}}


def run_playbook(tmp_path, servers):
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory(servers)), encoding="utf-8")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK, encoding="utf-8")
    environment = dict(os.environ)
    environment.update(
        {
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORKS": "4",
        }
    )
    completed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "playbook.yml")],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    try:
        document = json.loads(completed.stdout)
    except ValueError as error:
        raise AssertionError("ansible-playbook printed no JSON (rc %d):\n%s\n%s" % (completed.returncode, completed.stdout, completed.stderr)) from error
    results = {}
    for play in document["plays"]:
        for task in play["tasks"]:
            results[task["task"]["name"]] = task["hosts"]
    return completed, document, results


@pytest.mark.integration
def test_raw_tasks_over_basic_http_basic_https_and_ntlm_http(tmp_path, windows_hosts):
    completed, document, results = run_playbook(tmp_path, windows_hosts)

    assert completed.returncode == 0, completed.stderr
    for name, server in windows_hosts.items():
        hello = results["say hello"][name]
        failed = results["fail on purpose"][name]
        assert (hello["rc"], hello["stdout"], hello.get("failed", False)) == (0, "hello-%s\r\n" % name, False), (name, hello)
        assert (failed["rc"], failed["stdout"], failed["failed"]) == (3, "partial\r\n", True), (name, failed)
        assert document["stats"][name]["ignored"] == 1
        assert server.counters.commands == 2
        assert server.counters.shells_created == server.counters.shells_deleted == 2, "each task runs in its own worker with its own shell"
        assert server.open_shells() == []
        command, arguments, stdin = server.host.commands[0]
        assert command == "PowerShell" and len(arguments) == 1, server.host.commands[0]
        assert arguments[0].startswith("-NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand ")
        assert stdin == b""
    assert windows_hosts["win-https"].counters.actions["Receive"] == 2
