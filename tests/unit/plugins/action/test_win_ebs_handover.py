# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""win_ebs_handover on the controller against the lab's simulated SQL Server (the agent's twin behind the connection
boundary): what it changes, in which order, in how many round trips, and what a failure leaves behind."""

from __future__ import annotations

import pytest

from ansible_collections.shadowsnap.ec2.plugins.action.win_ebs_handover import ActionModule
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.restore_windows import record_name
from lab.dataplane import BlockStore
from lab.windows import LabWindowsHost, WindowsServer
from lab.windows.testing import sample_instance
from unit.plugins.action.agent_fakes import FakeConnection, make_action

TASK_VARS = {"inventory_hostname": "win-sql-01"}
CLONES = {"D:": "vol-0c10e000000000001", "E:": "vol-0c10e000000000002"}


class TwinHost:
    """The lab host's agent twin answering what the fake connection executes (``PowerShell <arguments>``)."""

    def __init__(self, host):
        self.host = host

    def answer(self, command, stdin):
        name, arguments = command.split(" ", 1)
        result = self.host.run_command(name, [arguments], stdin)
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture(name="host")
def host_fixture():
    model = WindowsServer(sample_instance("win-sql-01"), BlockStore()).seed()
    yield LabWindowsHost(model)
    model.shutdown()


def run(host, **args):
    return make_action(ActionModule, FakeConnection(TwinHost(host)), args).run(task_vars=TASK_VARS)


def originals(host):
    return [{"volume_id": host.model.storage.find_volume(drive).volume_ids[0], "paths": [drive + "\\"]} for drive in CLONES]


def swap_in_clones(host, taken_off):
    """What an in-place swap does to the host: the originals detached, clones of them attached at other devices."""
    volumes = []
    for number, ((drive, clone), original) in enumerate(zip(CLONES.items(), [volume["volume_id"] for volume in taken_off])):
        host.model.blockstore.capture_snapshot("snap-%d" % number, original)
        host.model.volume_detached(original)
        host.model.blockstore.restore_volume(clone, "snap-%d" % number)
        host.model.volume_attached(clone, "xvd%s" % "pq"[number])
        volumes.append({"volume_id": clone, "paths": [drive + "\\"]})
    return volumes


def service(host, name="MSSQLSERVER"):
    return host.model.services[name].status


def test_released_stops_the_writers_services_then_takes_the_disks_offline_in_two_round_trips(host):
    result = run(host, state="released", volumes=originals(host))
    assert not result.get("failed"), result
    assert result["round_trips"] == 2 and result["writer_services"] == ["MSSQLSERVER"]
    assert "MSSQLSERVER" in result["were_running"] and service(host) == "Stopped"
    assert [disk["offline"] for disk in result["disks"]] == [True, True]
    assert host.counter_snapshot()["ops"] == {"batch": 1, "writers": 1, "storage": 1, "sequence": 1, "service_set": 1,
                                              "disk_offline": 1}


def test_a_failed_stop_takes_nothing_offline(host):
    host.replays.arm("service_set", error={"message": "Access is denied.", "hresult": "0x80070005"})
    result = run(host, state="released", volumes=originals(host))
    assert result["failed"] and "no volume was taken offline" in result["msg"] and result["hresult_name"] == "E_ACCESSDENIED"
    assert all(not disk["IsOffline"] for disk in host.model.describe()["disks"] if disk["VolumeId"] in
               [volume["volume_id"] for volume in originals(host)])
    assert "disk_offline" not in host.counter_snapshot()["ops"]


def test_a_failed_offline_after_the_stop_says_what_to_start_again(host):
    host.replays.arm("disk_offline", error={"message": "The disk is in use.", "hresult": "0x80070020"})
    result = run(host, state="released", volumes=originals(host))
    assert result["failed"] and "the services were stopped" in result["msg"]
    assert "MSSQLSERVER" in result["were_running"], "the rescue starts them again from this"


def test_restored_brings_the_clones_online_at_their_letters_starts_the_services_and_verifies_in_two(host):
    before = originals(host)
    released = run(host, state="released", volumes=before)
    volumes = swap_in_clones(host, before)
    host.counters.reset()
    result = run(host, state="restored", volumes=volumes, services=released["were_running"])
    assert not result.get("failed"), result
    assert result["round_trips"] == 2, "Windows brought the clones online by itself: the read, then start and verify"
    assert sorted(disk["drive_letter"] for disk in result["disks"]) == ["D", "E"]
    assert service(host) == "Running" and "consistency" not in result
    letters = {volume["drive_letter"]: volume["volume_ids"] for volume in host.model.describe()["volumes"]}
    assert letters["D"] == [CLONES["D:"]] and letters["E"] == [CLONES["E:"]]


def test_a_missing_shadow_copy_fails_before_any_service_starts(host):
    before = originals(host)
    released = run(host, state="released", volumes=before)
    volumes = swap_in_clones(host, before)
    shadows = [{"shadow_id": "{11111111-2222-3333-4444-555555555555}", "volume_id": CLONES["D:"]}]
    result = run(host, state="restored", volumes=volumes, shadows=shadows, services=released["were_running"])
    assert result["failed"] and "could not revert" in result["msg"]
    assert [shadow["outcome"] for shadow in result["shadows"]] == ["missing"]
    assert service(host) == "Stopped", "the rollback starts the services, after it put the originals back"


def test_accepting_crash_consistency_starts_the_services_and_says_crash(host):
    before = originals(host)
    released = run(host, state="released", volumes=before)
    volumes = swap_in_clones(host, before)
    shadows = [{"shadow_id": "{11111111-2222-3333-4444-555555555555}", "volume_id": CLONES["D:"]}]
    result = run(host, state="restored", volumes=volumes, shadows=shadows, services=released["were_running"],
                 fail_on_unavailable=False)
    assert not result.get("failed"), result
    assert result["consistency"] == "crash" and service(host) == "Running" and result["round_trips"] == 3


def record_file(host, record):
    return host.model.files.read("C:\\ProgramData\\shadowsnap\\restores\\" + record_name(record) + ".txt")


def test_the_record_of_released_lets_a_rerun_start_what_the_first_stop_found_running(host):
    before = originals(host)
    first = run(host, state="released", volumes=before, record="restore-1")
    assert first["recorded"] == ["MSSQLSERVER"] and record_file(host, "restore-1") == b"MSSQLSERVER\r\n"
    again = run(host, state="released", volumes=before, record="restore-1")
    assert not again.get("failed"), again
    assert again["names"] == [] and again["were_running"] == ["MSSQLSERVER"], \
        "a re-run finds it stopped (its writer gone with it); the record still says it ran"
    assert record_file(host, "restore-1") == b"MSSQLSERVER\r\n", "a stop that finds nothing running keeps the record"
    volumes = swap_in_clones(host, before)
    host.counters.reset()
    result = run(host, state="restored", volumes=volumes, services=[], record="restore-1")
    assert not result.get("failed"), result
    assert result["round_trips"] == 2 and result["changed"] and result["recorded"] == ["MSSQLSERVER"]
    assert service(host) == "Running" and record_file(host, "restore-1") is None, "started from the record, then removed"
