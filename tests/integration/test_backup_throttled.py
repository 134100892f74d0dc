"""A fleet backup under EC2 token buckets scaled down until most calls are throttled: every host still ends ``ok``.

The lab's buckets at 2 % of EC2's: 2 CreateSnapshots at once, then one every 10 s; 2 Describe calls, then 0.4 a second.
Every host's shadow set is held while its CreateSnapshots waits its turn, which the plugin retries for as long as the
hold allows (not a number of attempts), with full-jitter waits that spread the fleet out.
"""

import json

import pytest

pytestmark = pytest.mark.integration

BACKUP = "- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n"
HOSTS = 8
RATE_LIMITS = 0.02
THROTTLING_CODES = ("RequestLimitExceeded", "Throttling")


@pytest.fixture
def fleet(lab_session, tmp_path):
    lab_session.reset(fleet={"instances": HOSTS, "data_volumes": 2,
                             "windows": {"os": "2022", "edition": "Datacenter", "locale": "en-US",
                                         "applications": ["sql"], "aws_vss_components": None}})
    inventory = tmp_path / "fleet.ini"
    lab_session.write_inventory(str(inventory))
    try:
        yield lab_session, str(inventory)
    finally:
        lab_session.reset()


def test_a_fleet_under_heavy_throttling_ends_with_every_host_backed_up(fleet, ansible_playbook, tmp_path):
    lab, inventory = fleet
    lab.faults(rate_limits=RATE_LIMITS)
    report_path = tmp_path / "report.json"
    run = ansible_playbook(lab, BACKUP, {"target_hosts": "windows", "backup_volumes": ["D:", "E:"],
                                         "backup_report_path": str(report_path)},
                           inventory=inventory, environment={"ANSIBLE_FORKS": str(HOSTS)}, timeout=1200)
    assert run.rc == 0, run.stdout[-4000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["counts"] == {"ok": HOSTS, "fallback": 0, "failed": 0}
    counts = lab.counts()["actions"]
    throttled = sum(entry["throttled"] for entry in counts.values())
    attempts = sum(entry["attempts"] for entry in counts.values())
    assert throttled > attempts / 2, f"most calls are throttled: {throttled} of {attempts} ({counts})"
    assert counts["CreateSnapshots"]["throttled"] > 0 and counts["CreateSnapshots"]["ok"] == HOSTS
    for result in report["hosts"]:
        assert (result["status"], result["consistency"]) == ("ok", "application"), result
        assert "retries" in result and isinstance(result["retries"], list), result
        said = json.dumps({key: value for key, value in result.items() if key != "retries"})
        assert not any(code in said for code in THROTTLING_CODES), result
    in_session = [retry["error"] for result in report["hosts"] for retry in result["retries"]]
    assert in_session and set(in_session) <= {"RequestLimitExceeded"}, in_session
    snapshots = lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": "volume-id", "Values": [v["volume_id"] for i in lab.state["instances"] for v in i["volumes"]]}])["Snapshots"]
    sets = {}
    for snapshot in snapshots:
        tags = {tag["Key"]: tag["Value"] for tag in snapshot.get("Tags", [])}
        assert tags["shadowsnap:consistency"] == "application", tags
        sets.setdefault(tags["shadowsnap:instance-id"], set()).add(tags["shadowsnap:set-id"])
    assert len(sets) == HOSTS and all(len(ids) == 1 for ids in sets.values()), sets
    for host in lab.state["windows_hosts"]:
        assert lab.host_state(host["name"])["shadows"] == 0, host["name"]
