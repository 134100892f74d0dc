"""The Windows hosts wired into the whole lab (moto, fault proxy, data plane) and driven like the collection will:
pywinrm against the endpoints the Lab starts, the control API through LabClient, EBS snapshots through the lab's AWS
endpoint, and Ansible's winrm connection with the inventory the lab writes.

One Lab per process (its EBS behaviour patches moto process-wide): the ``lab`` fixture of tests/unit/lab/conftest.py.
"""

import json
import os
import subprocess
import sys

import pytest
import winrm
from winrm.exceptions import WinRMTransportError

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.vss_parse import parse_diskshadow_writers, parse_vssadmin_writers
from lab.topology import sql_default_install_topology
from lab.windows import Journal
from lab.windows.testing import call_agent_over_winrm

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import agent_transport

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def collection_wire():
    """The bootstrap as the shell plugin encodes it (lines stripped, blank ones dropped) and the collection's agent."""
    bootstrap = "\n".join(line.strip() for line in agent_transport.BOOTSTRAP.splitlines() if line.strip())
    return {"bootstrap": bootstrap, "script": agent_transport.agent_script()}


def agent_round_trip(host, op, args=None):
    """One agent request the way the transport sends it, through the real pywinrm client."""
    return call_agent_over_winrm(host, op, args, **collection_wire())


def test_state_lists_one_endpoint_per_instance_with_inventory_vars(client):
    hosts = client.state["windows_hosts"]
    instances = {instance["name"]: instance for instance in client.state["instances"]}
    assert [host["name"] for host in hosts] == list(instances)
    for host in hosts:
        assert host["instance_id"] == instances[host["name"]]["instance_id"]
        assert host["endpoint"] == "http://127.0.0.1:%d/wsman" % host["port"] and host["scheme"] == "http"
        variables = host["inventory_vars"]
        assert variables["ansible_connection"] == "winrm" and variables["ansible_winrm_transport"] == "basic"
        assert variables["ansible_winrm_message_encryption"] == "never"
        assert (variables["ansible_host"], variables["ansible_port"]) == ("127.0.0.1", host["port"])
        assert variables["ec2_instance_id"] == host["instance_id"]
    by_name = {host["name"]: host for host in hosts}
    assert by_name["win-web-01"]["locale"] == "ja-JP" and by_name["win-xen-01"]["style"] == "xen"
    assert "SqlServerWriter" in [w["name"] for w in client.host_state("win-sql-01")["writers"]]


@pytest.mark.parametrize("name", ["win-sql-01", "win-web-01", "win-xen-01"])
def test_pywinrm_storage_ties_disks_to_the_instances_ec2_volumes(client, name):
    """Nitro: serial -> volume id. Xen: SCSI target id -> device name -> the EC2 block-device mapping."""
    host = client.windows_host(name)
    answer = agent_round_trip(host, "storage")
    assert answer["ok"] and answer["op"] == "storage"
    reservations = client.ec2().describe_instances(InstanceIds=[host["instance_id"]])["Reservations"]
    mapping = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in reservations[0]["Instances"][0]["BlockDeviceMappings"]}
    found = set()
    if client.instance(name)["style"] == "nitro":
        for disk in answer["result"]["disks"]:
            found.add("vol-" + disk["SerialNumber"][3:20])
    else:
        for drive in answer["result"]["disk_drives"]:
            target = drive["SCSITargetId"]
            found.add(mapping["/dev/sda1" if target == 0 else "xvd" + chr(ord("a") + target)])
    assert found == set(mapping.values())


def test_writer_state_changes_show_through_winrm(client):
    host = client.windows_host("win-sql-01")
    client.set_writer_state("win-sql-01", "SqlServerWriter", "failed_at_freeze", error="retryable")
    text = agent_round_trip(host, "writers", {"sources": ["vssadmin"]})["result"]["outputs"]["vssadmin"]["text"]
    sql = next(w for w in parse_vssadmin_writers(text) if w["name"] == "SqlServerWriter")
    assert (sql["state"], sql["state_name"], sql["last_error"]) == (9, "FAILED_AT_FREEZE", "Retryable error")
    client.set_writer_state("win-sql-01", "*", "missing")
    document = agent_round_trip(host, "writers")
    assert "Writer name" not in document["result"]["outputs"]["vssadmin"]["text"]
    client.set_service_state("win-sql-01", "EventSystem", "Restart")
    text = agent_round_trip(host, "writers")["result"]["outputs"]["vssadmin"]["text"]
    assert len(parse_vssadmin_writers(text)) == 11


def test_replay_through_the_control_api(client):
    host = client.windows_host("win-xen-01")
    client.replay("win-xen-01", "facts", result={"hostname": "FROM-A-CAPTURE"})
    client.replay("win-xen-01", "writers", source="vssadmin", text="Writer name: 'X'\n   Writer Id: {e8132975-6f93-4464-a53e-1050253ae220}\n"
                  "   Writer Instance Id: {e8132975-6f93-4464-a53e-1050253ae221}\n   State: [12] Failed\n   Last error: Retryable error\n")
    assert agent_round_trip(host, "facts")["result"] == {"hostname": "FROM-A-CAPTURE"}
    parsed = parse_vssadmin_writers(agent_round_trip(host, "writers")["result"]["outputs"]["vssadmin"]["text"])
    assert [(w["name"], w["state"]) for w in parsed] == [("X", 12)]
    assert client.host_counters("win-xen-01")["agent"]["replays_served"] == 2
    client.replay("win-xen-01", "facts", result={"hostname": "AGAIN"}, times=None)
    client.clear_replay("win-xen-01")
    assert agent_round_trip(host, "facts")["result"]["hostname"] == "WIN-XEN-01"


def test_host_faults_and_counters_through_the_control_api(client):
    host = client.windows_host("win-web-01")
    client.reset_host_counters()
    armed = client.host_fault("win-web-01", "http_error", status=500, action="Command")
    assert armed[0]["kind"] == "http_error" and armed[0]["fired"] == 0
    with pytest.raises(WinRMTransportError):
        agent_round_trip(host, "facts")
    assert agent_round_trip(host, "facts")["ok"], "the fault fires once by default"
    client.host_fault("win-web-01", "reject_auth")
    with pytest.raises(winrm.exceptions.InvalidCredentialsError):
        agent_round_trip(host, "facts")
    client.clear_host_faults("win-web-01")
    counters = client.host_counters("win-web-01")
    assert counters["winrm"]["faults_injected"] >= 2 and counters["winrm"]["auth_failures"] >= 1
    assert counters["agent"]["round_trips"] == 1 and counters["agent"]["ops"] == {"facts": 1}
    assert set(client.host_counters()) == {"win-sql-01", "win-web-01", "win-xen-01"}
    with pytest.raises(RuntimeError, match="no lab Windows host"):
        client.host_state("no-such-host")
    with pytest.raises(RuntimeError, match="fault kind"):
        client.host_fault("win-web-01", "meteor")


def test_reset_rebuilds_models_for_new_volumes_and_keeps_ports(client):
    before = {host["name"]: host for host in client.state["windows_hosts"]}
    client.set_writer_state("win-sql-01", "SqlServerWriter", 8)
    client.host_fault("win-sql-01", "latency", seconds=5)
    client.reset()
    after = {host["name"]: host for host in client.state["windows_hosts"]}
    assert {name: host["port"] for name, host in after.items()} == {name: host["port"] for name, host in before.items()}
    assert after["win-sql-01"]["instance_id"] != before["win-sql-01"]["instance_id"]
    state = client.host_state("win-sql-01")
    assert state["faults"] == [] and state["counters"]["agent"]["round_trips"] == 0
    assert next(w for w in state["writers"] if w["name"] == "SqlServerWriter")["state"] == 1
    volume_ids = {v["volume_id"] for v in client.instance("win-sql-01")["volumes"]}
    disks = agent_round_trip(after["win-sql-01"], "storage")["result"]["disks"]
    assert {"vol-" + disk["SerialNumber"][3:20] for disk in disks} == volume_ids


def test_an_ebs_snapshot_captures_the_volume_content_of_that_moment(client, lab):
    """CreateSnapshots through the lab's AWS endpoint freezes what the model wrote: the journal at that LSN."""
    instance = client.instance("win-sql-01")
    devices = {volume["drive"]: volume["volume_id"] for volume in instance["volumes"]}
    assert client.write_transactions("win-sql-01", count=3)["lsns"] == [1, 2, 3]
    client.write_file("win-sql-01", "D:\\exports\\today.csv", "id,total\n1,10\n")
    snapshots = client.ec2().create_snapshots(InstanceSpecification={"InstanceId": instance["instance_id"]})["Snapshots"]
    by_volume = {snapshot["VolumeId"]: snapshot["SnapshotId"] for snapshot in snapshots}
    client.write_transactions("win-sql-01", count=2)
    data = lab.blockstore.snapshot(by_volume[devices["D:"]]).files
    log = lab.blockstore.snapshot(by_volume[devices["E:"]]).files
    frozen = Journal.read(data, log)
    assert frozen.applied_lsn == frozen.last_log_lsn == 3 and frozen.rows == frozen.log_rows
    assert data["exports\\today.csv"] == b"id,total\n1,10\n"
    assert client.host_state("win-sql-01")["journal"] == {"applied_lsn": 5, "last_log_lsn": 5, "rows": 5}
    assert client.read_file("win-sql-01", "D:\\exports\\today.csv")["text"] == "id,total\n1,10\n"


def test_separate_snapshots_of_data_and_log_can_tear_the_journal(client, lab):
    """What the backup flow must avoid: the log volume snapshotted before transactions the data volume has."""
    instance = client.instance("win-sql-01")
    devices = {volume["drive"]: volume["volume_id"] for volume in instance["volumes"]}
    client.write_transactions("win-sql-01", count=2)
    log_snapshot = client.ec2().create_snapshot(VolumeId=devices["E:"])["SnapshotId"]
    client.write_transactions("win-sql-01", count=2)
    data_snapshot = client.ec2().create_snapshot(VolumeId=devices["D:"])["SnapshotId"]
    torn = Journal.read(lab.blockstore.snapshot(data_snapshot).files, lab.blockstore.snapshot(log_snapshot).files)
    assert torn.applied_lsn == 4 and torn.last_log_lsn == 2


@pytest.mark.parametrize("fmt", ["ini", "yaml"])
def test_ansible_reaches_every_host_with_the_written_inventory(client, tmp_path, fmt):
    inventory = client.write_inventory(str(tmp_path / ("inventory." + ("ini" if fmt == "ini" else "yml"))))
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(
        "- hosts: windows\n  gather_facts: false\n  tasks:\n"
        "    - raw: Write-Output hello-{{ ec2_instance_id }}\n      register: hello\n"
        "    - assert:\n        that: hello.stdout_lines == ['hello-' + ec2_instance_id]\n      delegate_to: localhost\n",
        encoding="utf-8",
    )
    environment = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    run = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, str(playbook)], capture_output=True, text=True, env=environment,
                         timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    stats = json.loads(run.stdout)["stats"]
    assert set(stats) == {"win-sql-01", "win-web-01", "win-xen-01"}
    assert all(host["failures"] == 0 and host["unreachable"] == 0 and host["ok"] == 2 for host in stats.values())
    counters = client.host_counters()
    assert all(c["agent"]["raw_commands"] == 1 for c in counters.values())


def test_the_sql_default_install_topology_puts_the_system_databases_on_c(client):
    client.reset(topology=sql_default_install_topology())
    assert client.host_state("win-sql-01")["sql_system_databases"] == "C:"
    host = client.windows_host("win-sql-01")
    text = agent_round_trip(host, "writers", {"sources": ["diskshadow_detailed"]})["result"]["outputs"]["diskshadow_detailed"]["text"]
    sql = next(w for w in parse_diskshadow_writers(text) if w["name"] == "SqlServerWriter")
    volumes = {c["full_path"]: [v["display_name"] for v in c["volumes"]] for c in sql["components"]}
    assert volumes["\\WIN-SQL-01\\master"] == ["C:\\"] and volumes["\\WIN-SQL-01\\shop"] == ["D:\\", "E:\\"]
    client.reset()
    assert client.host_state("win-sql-01")["sql_system_databases"] == "D:", "a reset goes back to the default topology"
