"""A Windows host booting on an instance the lab did not seed: what its restored root volume says it is, its disks."""

import pytest

from lab.dataplane import BlockStore
from lab.windows import WindowsFleet
from lab.windows.restored import computer_name, loopback_address, restored_server
from lab.windows.testing import sample_instance


@pytest.fixture(name="fleet")
def fleet_fixture():
    fleet = WindowsFleet(BlockStore(), "us-east-1")
    fleet.sync([sample_instance("win-sql-01")])
    yield fleet
    fleet.stop()


def restored_event(fleet, event="running", devices=None, instance_id="i-0restored000000001"):
    """Every volume of the seeded SQL host cloned through a snapshot (as a restore creates them), attached to a new
    instance at the original devices."""
    original = fleet.model("win-sql-01")
    volumes = {}
    for disk in original.storage.disks:
        if devices is None or disk.device in devices:
            fleet.blockstore.capture_snapshot("snap-" + disk.volume_id, disk.volume_id)
            fleet.blockstore.restore_volume("vol-clone-" + disk.device.replace("/", ""), "snap-" + disk.volume_id)
            volumes[disk.device] = "vol-clone-" + disk.device.replace("/", "")
    return {"event": event, "instance_id": instance_id, "instance_type": "m5.2xlarge", "availability_zone": "us-east-1b",
            "private_ip": "172.31.200.10", "root_device_name": "/dev/sda1", "volumes": volumes}


def test_a_restored_root_boots_as_the_original_computer_with_its_disks_at_their_letters(fleet):
    original = fleet.model("win-sql-01")
    event = restored_event(fleet)
    server = restored_server(event, fleet.blockstore, "us-east-1", fleet.seeded)
    assert server.hostname == original.hostname == "WIN-SQL-01" and server.instance_id == event["instance_id"]
    assert server.os.caption == original.os.caption and server.applications == ["sql"]
    letters = {v.drive_letter: v.volume_ids[0] for v in server.storage.volumes}
    assert letters == {"C": "vol-clone-devsda1", "D": "vol-clone-xvdb", "E": "vol-clone-xvdc", "F": "vol-clone-xvdd"}
    assert server.storage.disk_of("vol-clone-devsda1").disk_guid == original.storage.disks[0].disk_guid
    assert server.files.read("D:\\README.txt") == original.files.read("D:\\README.txt")


def test_a_root_without_windows_boots_nothing_and_the_host_goes_with_the_instance(fleet):
    event = restored_event(fleet, devices=("xvdb",))
    event["volumes"]["/dev/sda1"] = "vol-blank-root"
    assert computer_name(fleet.blockstore, "vol-blank-root") is None
    fleet.instance_event(event)
    assert event["instance_id"] not in fleet.hosts

    booted = restored_event(fleet, instance_id="i-0restored000000002")
    fleet.instance_event(booted)
    state = next(h for h in fleet.state() if h["name"] == booted["instance_id"])
    assert state["address"] == loopback_address("172.31.200.10") == "127.31.200.10"
    assert state["port"] == fleet.servers["win-sql-01"].port, "the original's connection variables reach it"
    fleet.instance_event(dict(booted, event="stopped"))
    assert booted["instance_id"] not in fleet.hosts and "win-sql-01" in fleet.hosts, "a seeded host is never affected"
    fleet.instance_event(dict(event, instance_id=fleet.model("win-sql-01").instance_id, event="stopped"))
    assert "win-sql-01" in fleet.hosts
