"""Starting, resyncing and stopping many simulated Windows hosts: fleet start time, HTTPS and NTLM endpoints."""

import json
import threading
import time

import pytest
import winrm

from lab.dataplane import BlockStore
from lab.topology import fleet_topology
from lab.windows import WindowsFleet
from lab.windows.testing import agent_command, call_agent, sample_instance

FLEET_START_SECONDS = 10.0


def fleet_instances(count, data_volumes, **windows):
    return [sample_instance(host["name"], volumes=host["volumes"], windows=dict(host["windows"], **windows))
            for host in fleet_topology(count, data_volumes)]


@pytest.fixture(name="fleets")
def fleets_fixture():
    """Fleets a test starts; stopped at teardown, and no thread may be left behind."""
    before = set(threading.enumerate())
    started = []

    def make(**options):
        fleet = WindowsFleet(BlockStore(), "us-east-1", **options)
        started.append(fleet)
        return fleet

    yield make
    for fleet in started:
        fleet.stop()
    time.sleep(0.1)
    assert {thread for thread in threading.enumerate() if thread.is_alive()} - before == set()


def run_ps_agent(host, op):
    command, arguments, stdin = agent_command(op)
    protocol = winrm.Protocol(endpoint=host["endpoint"], transport="basic", username=host["username"], password=host["password"],
                              message_encryption="never" if host["scheme"] == "http" else "auto",
                              server_cert_validation="validate", ca_trust_path=host["ca_file"] or "")
    shell = protocol.open_shell()
    command_id = protocol.run_command(shell, command, arguments)
    protocol.send_command_input(shell, command_id, stdin, end=True)
    stdout, dummy, exit_code = protocol.get_command_output(shell, command_id)
    protocol.close_shell(shell)
    assert exit_code == 0
    return stdout


def test_fifty_hosts_start_quickly_and_all_answer(fleets):
    instances = fleet_instances(50, 4)
    fleet = fleets()
    started = time.monotonic()
    fleet.sync(instances)
    elapsed = time.monotonic() - started
    assert elapsed < FLEET_START_SECONDS, "50 hosts took %.1f s to start" % elapsed
    state = fleet.state()
    assert len(state) == 50 and len({host["port"] for host in state}) == 50
    for host in state[::10]:
        assert json.loads(run_ps_agent(host, "storage"))["ok"]
    for name in ("win-fleet-001", "win-fleet-050"):
        assert len(call_agent(fleet.host(name), "storage")["result"]["volumes"]) == 5


def test_sync_keeps_surviving_endpoints_and_drops_the_others(fleets):
    fleet = fleets()
    fleet.sync(fleet_instances(3, 1))
    ports = {host["name"]: host["port"] for host in fleet.state()}
    fleet.model("win-fleet-001").writers.set_state("System Writer", 9)
    fleet.arm_fault("win-fleet-001", "latency", seconds=1)
    fleet.sync(fleet_instances(2, 2))
    state = {host["name"]: host for host in fleet.state()}
    assert set(state) == {"win-fleet-001", "win-fleet-002"}
    assert {name: host["port"] for name, host in state.items()} == {name: ports[name] for name in state}
    assert fleet.model("win-fleet-001").writers.get("System Writer").state == 1
    assert fleet.server("win-fleet-001").faults.rules == []
    assert len(fleet.model("win-fleet-001").storage.volumes) == 3


def test_https_and_ntlm_endpoints_per_host(fleets):
    fleet = fleets(scheme="https")
    ntlm = sample_instance("win-sql-01", windows={"applications": ["sql"], "winrm": {"scheme": "http", "auth": ["basic", "ntlm"]}})
    fleet.sync([sample_instance("win-web-01"), ntlm])
    state = {host["name"]: host for host in fleet.state()}
    https = state["win-web-01"]
    assert https["scheme"] == "https" and https["ca_file"]
    assert https["inventory_vars"]["ansible_winrm_ca_trust_path"] == https["ca_file"]
    assert json.loads(run_ps_agent(https, "facts"))["result"]["hostname"] == "WIN-WEB-01"
    assert state["win-sql-01"]["auth"] == ["basic", "ntlm"] and state["win-sql-01"]["scheme"] == "http"
    session = winrm.Protocol(endpoint=state["win-sql-01"]["endpoint"], transport="ntlm", username="Administrator",
                             password=state["win-sql-01"]["password"])
    shell = session.open_shell()
    command, arguments, stdin = agent_command("facts")
    command_id = session.run_command(shell, command, arguments)
    session.send_command_input(shell, command_id, stdin, end=True)
    stdout, dummy, exit_code = session.get_command_output(shell, command_id)
    session.close_shell(shell)
    assert exit_code == 0 and b"WIN-SQL-01" in stdout


def test_control_routes_of_the_fleet(fleets):
    fleet = fleets()
    fleet.sync([sample_instance("win-sql-01")])
    status, document = fleet.handle_control("PUT", "/_lab/windows/win-sql-01/writers", b'{"writer": "SqlServerWriter", "state": 7}')
    assert status == 200 and document[0]["state_name"] == "FAILED_AT_PREPARE_BACKUP"
    status, document = fleet.handle_control("PUT", "/_lab/windows/win-sql-01/settings", b'{"imds": false}')
    assert status == 200 and document["imds"] is False
    status, document = fleet.handle_control("PUT", "/_lab/windows/win-sql-01/shadow_storage", b'{"volume": "D:", "storage_volume": "F:"}')
    assert status == 200 and len(document) == 4
    assert fleet.handle_control("PUT", "/_lab/windows/win-sql-01/writers", b'{"writer": "SqlServerWriter", "state": 99}')[0] == 400
    assert fleet.handle_control("PUT", "/_lab/windows/win-sql-01/writers", b'{"writer": "Nope", "state": 1}')[0] == 404
    assert fleet.handle_control("GET", "/_lab/windows/win-sql-01/nothing", b"")[0] == 404
    assert fleet.handle_control("PUT", "/_lab/windows/win-sql-01/settings", b"[1]")[0] == 400
    status, document = fleet.handle_control("GET", "/_lab/windows/win-sql-01/services", b"")
    assert {"Name": "SQLWriter", "DisplayName": "SQL Server VSS Writer", "Status": "Running", "StartType": "Automatic"} in document
