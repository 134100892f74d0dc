"""win_vss_writer_info and win_ebs_disk_info through real ansible-playbook runs over WinRM against the lab's hosts."""

import json
import time

import pytest

pytestmark = pytest.mark.integration

DISCOVERY = """
- hosts: windows
  gather_facts: false
  tasks:
    - name: writers
      shadowsnap.ec2.win_vss_writer_info:
        expected_writers: [System Writer, Registry Writer]
      register: writers
      ignore_errors: true
    - name: disks
      shadowsnap.ec2.win_ebs_disk_info: {}
      register: disks
      ignore_errors: true
"""


@pytest.fixture
def inventory(lab, tmp_path):
    path = tmp_path / "windows.ini"
    lab.write_inventory(str(path))
    return str(path)


def writer(result, name):
    return next(w for w in result["writers"] if w["name"] == name)


def by_letter(result):
    return {v["drive_letter"]: v for v in result["volumes"] if v.get("drive_letter")}


def test_three_hosts_report_their_writers_and_volume_mapping(lab, ansible_playbook, inventory):
    lab.set_writer_state("win-sql-01", "SqlServerWriter", 9)
    lab.reset_host_counters()
    run = ansible_playbook(lab, DISCOVERY, inventory=inventory)
    assert run.rc == 0, run.stdout

    sql = run.result("writers", "win-sql-01")
    failed = writer(sql, "SqlServerWriter")
    assert (failed["state"], failed["state_name"], failed["healthy"], failed["service"]) == (9, "FAILED_AT_FREEZE", False, "SQLWriter")
    assert sql["failed_writers"] == ["SqlServerWriter"]
    assert writer(sql, "System Writer")["healthy"] is True
    assert sql["missing_writers"] == []

    japanese = run.result("writers", "win-web-01")
    assert japanese["oem_code_page"] == 932
    assert writer(japanese, "IIS Config Writer")["state_name"] == "STABLE"
    assert all(w["healthy"] for w in japanese["writers"])

    for name in ("win-sql-01", "win-web-01", "win-xen-01"):
        instance = lab.instance(name)
        disks = run.result("disks", name)
        assert "failed" not in disks or disks["failed"] is False, disks.get("msg")
        letters = by_letter(disks)
        for volume in instance["volumes"]:
            mapped = letters[volume["drive"][0]]
            assert mapped["ebs_volume_ids"] == [volume["volume_id"]], (name, volume)
        assert disks["instance"]["instance_id"] == instance["instance_id"]
    xen = run.result("disks", "win-xen-01")
    assert xen["platform"] == "xen"
    assert by_letter(xen)["D"]["devices"] == ["xvdf"]

    counters = lab.host_counters()
    for name in ("win-sql-01", "win-web-01", "win-xen-01"):
        assert counters[name]["agent"]["round_trips"] == 2, "one agent round trip per plugin call"


def test_required_writer_failure_fails_the_task_naming_writer_state_and_service(lab, ansible_playbook, inventory):
    lab.set_writer_state("win-sql-01", "SqlServerWriter", 9)
    playbook = """
- hosts: win-sql-01
  gather_facts: false
  tasks:
    - name: writers
      shadowsnap.ec2.win_vss_writer_info:
        required_writers: [SqlServerWriter]
      register: writers
      ignore_errors: true
"""
    result = ansible_playbook(lab, playbook, inventory=inventory).result("writers", "win-sql-01")
    assert result["failed"] is True
    for expected in ("SqlServerWriter", "FAILED_AT_FREEZE", "SQLWriter"):
        assert expected in result["msg"]


@pytest.mark.parametrize("side", ["attached in EC2, not seen by Windows", "seen by Windows, not attached in EC2"])
def test_cross_check_fails_loudly_on_a_mismatch(lab, ansible_playbook, inventory, side):
    instance = lab.instance("win-web-01")
    client = lab.ec2()
    lab.configure_host("win-web-01", follow_attachments=False)  # Windows has not rescanned its disks yet
    if side.startswith("attached"):
        volume = client.create_volume(AvailabilityZone=instance["availability_zone"], Size=10, VolumeType="gp3")
        client.attach_volume(VolumeId=volume["VolumeId"], InstanceId=instance["instance_id"], Device="xvdk")
        culprit = volume["VolumeId"]
    else:
        culprit = next(v["volume_id"] for v in instance["volumes"] if v["device"] == "xvdb")
        client.detach_volume(VolumeId=culprit, InstanceId=instance["instance_id"], Force=True)
    playbook = DISCOVERY.replace("hosts: windows", "hosts: win-web-01")
    result = ansible_playbook(lab, playbook, inventory=inventory).result("disks", "win-web-01")
    assert result["failed"] is True
    assert culprit in result["msg"]


def test_a_connection_dropped_during_a_read_is_retried(lab, ansible_playbook, inventory):
    lab.host_fault("win-xen-01", "drop_connection", action="Receive", times=1)
    lab.reset_host_counters("win-xen-01")
    playbook = DISCOVERY.replace("hosts: windows", "hosts: win-xen-01")
    run = ansible_playbook(lab, playbook, inventory=inventory)
    assert run.rc == 0, run.stdout
    result = run.result("writers", "win-xen-01")
    assert result.get("failed") is not True, result.get("msg")
    assert result["round_trips"] == 2
    assert writer(result, "System Writer")["healthy"] is True


def test_fifty_hosts_with_forks_25(lab_session, ansible_playbook, tmp_path):
    lab_session.reset(fleet={"instances": 50, "data_volumes": 2})
    try:
        inventory = tmp_path / "fleet.ini"
        lab_session.write_inventory(str(inventory))
        began = time.monotonic()
        run = ansible_playbook(lab_session, DISCOVERY, inventory=str(inventory),
                               environment={"ANSIBLE_FORKS": "25"})
        elapsed = time.monotonic() - began
        print("50 hosts, forks 25: discovery in %.1f s" % elapsed)
        assert run.rc == 0, run.stdout
        hosts = {task_host for task in run.tasks if task["task"]["name"] == "disks" for task_host in task["hosts"]}
        assert len(hosts) == 50
        for task in run.tasks:
            for name, result in task["hosts"].items():
                assert result.get("failed") is not True, (name, task["task"]["name"], result.get("msg"))
    finally:
        lab_session.reset()


def test_fleet_health_playbook_reports_every_host(lab, ansible_playbook, inventory, tmp_path):
    lab.set_writer_state("win-sql-01", "SqlServerWriter", 9)
    report_path = tmp_path / "health.json"
    playbook = "- ansible.builtin.import_playbook: shadowsnap.ec2.fleet_health\n"
    run = ansible_playbook(lab, playbook, {"report_path": str(report_path)}, inventory=inventory)
    assert run.rc == 0, run.stdout
    report = {entry["host"]: entry for entry in json.loads(report_path.read_text(encoding="utf-8"))["hosts"]}
    assert sorted(report) == ["win-sql-01", "win-web-01", "win-xen-01"]
    assert report["win-sql-01"]["failed_writers"] == ["SqlServerWriter"]
    assert report["win-web-01"]["failed_writers"] == []
    xen = lab.instance("win-xen-01")
    assert report["win-xen-01"]["volumes"]["D"] == [next(v["volume_id"] for v in xen["volumes"] if v["drive"] == "D:")]
    assert all(entry["cross_check"]["ok"] for entry in report.values())
    assert [host for host, entry in report.items() if not entry["healthy"]] == ["win-sql-01"]


def test_fleet_health_fails_the_unhealthy_hosts_when_asked_after_publishing_the_report(lab, ansible_playbook, inventory,
                                                                                       tmp_path):
    lab.set_writer_state("win-sql-01", "SqlServerWriter", 9)
    report_path = tmp_path / "health.json"
    playbook = "- ansible.builtin.import_playbook: shadowsnap.ec2.fleet_health\n"
    run = ansible_playbook(lab, playbook, {"report_path": str(report_path), "fail_on_unhealthy": "true"},
                           inventory=inventory, environment={"ANSIBLE_SHOW_CUSTOM_STATS": "true"})
    assert run.rc != 0
    stats = json.loads(run.stdout)["global_custom_stats"]
    assert stats["shadowsnap_fleet_health_counts"] == {"healthy": 2, "unhealthy": 1}
    assert sorted(entry["host"] for entry in stats["shadowsnap_fleet_health"]) == ["win-sql-01", "win-web-01", "win-xen-01"]
    failed = run.result("Fail the unhealthy hosts", host="win-sql-01")
    assert failed["failed"] is True and "SqlServerWriter" in failed["msg"]
    assert json.loads(report_path.read_text(encoding="utf-8"))["hosts"], "the report was written before failing"
