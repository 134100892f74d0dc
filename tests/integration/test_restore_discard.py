"""Discarding a restore's temporary volumes: roles/restore/tasks/discard.yml and ec2_snapshot_set_volumes state=absent
through real ansible-playbook runs against the lab.

Proven on the lab's state, not assumed: after the cleanup the exposures are given back, the worker has no attachment
of the restore left, its volumes are gone, and every other volume - the originals of both servers - is still there;
a second run (a cleanup that stopped halfway, run again) changes nothing and still reports ok.
"""

import pytest

from test_backup import SQL, inventory  # noqa: F401 pylint: disable=unused-import
from test_restore_volumes import run_restore, volumes_of
from test_restore_windows import WEB, restore, shadow_backup

pytestmark = pytest.mark.integration

DISCARD = """
- hosts: %s
  gather_facts: false
  tasks:
    - name: Discard
      ansible.builtin.include_role:
        name: shadowsnap.ec2.restore
        tasks_from: discard
    - name: Result
      ansible.builtin.debug:
        var: restore_discard_result
"""


def discard(lab, ansible_playbook, inventory, result, exposures=None):
    variables = {"restore_discard_id": result["restore_id"], "restore_discard_instance": lab.instance(WEB)["instance_id"],
                 "restore_discard_volume_ids": [v["volume_id"] for v in result["volumes"]],
                 "restore_discard_exposures": exposures if exposures is not None else [
                     {"shadow_id": s["shadow_id"], "expose_path": s["expose_path"]} for s in result["shadows"]]}
    run = ansible_playbook(lab, DISCARD % WEB, variables, inventory=inventory)
    assert run.rc == 0, run.stdout
    return run.result("Result", host=WEB)["restore_discard_result"]


def test_a_restore_alongside_on_a_worker_is_discarded_completely_and_a_re_run_changes_nothing(
        lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    lab.volumes(creating_seconds=0.2, attaching_seconds=0.2, detaching_seconds=0.2)
    before = set(volumes_of(lab))
    run, report = restore(lab, ansible_playbook, inventory, tmp_path, target_hosts=WEB, restore_mode="alongside",
                          restore_source_instance_id=lab.instance(SQL)["instance_id"],
                          restore_mount_paths={"D:": "S:", "E:": "T:"})
    assert run.rc == 0, run.stdout
    (result,) = report["hosts"]
    restored = {v["volume_id"] for v in result["volumes"]}
    assert [s["outcome"] for s in result["shadows"]] == ["exposed", "exposed"]

    outcome = discard(lab, ansible_playbook, inventory, result)
    assert (outcome["status"], outcome["errors"], outcome["kept_volume_ids"]) == ("ok", [], {}), outcome
    assert set(outcome["deleted_volume_ids"]) == restored
    assert set(volumes_of(lab)) == before, "exactly the restore's volumes are gone; the originals are all there"
    instance_id = lab.instance(WEB)["instance_id"]
    assert not restored & {a["volume_id"] for a in lab.attachments(instance_id)[instance_id]}
    state = lab.host_state(WEB)
    assert not {"S", "T"} & {v["drive_letter"] for v in state["volumes"]}, "the restored disks are gone"
    assert state["exposures"] == {}, "the exposures are given back"
    assert lab.vss_events(WEB, event="disk_removed_online") == [], "the disks went offline before the detach"

    again = discard(lab, ansible_playbook, inventory, result)
    assert (again["status"], again["deleted_volume_ids"], again["errors"]) == ("ok", [], []), again


def test_state_absent_refuses_an_attached_volume_deletes_the_rest_and_never_an_original(
        lab, ansible_playbook, inventory, tmp_path):
    shadow_backup(lab, ansible_playbook, inventory, tmp_path)
    web = lab.instance(WEB)["instance_id"]
    run, restored = run_restore(lab, ansible_playbook, set_id="sql-backup", instance_id=web, restore_id="r-absent")
    assert run.rc == 0, run.stdout
    volume_ids = [v["volume_id"] for v in restored["volumes"]]
    lab.ec2().attach_volume(VolumeId=volume_ids[0], InstanceId=web, Device="xvdp")
    lab.ec2().get_waiter("volume_in_use").wait(VolumeIds=[volume_ids[0]])
    others = set(volumes_of(lab)) - set(volume_ids)

    run, planned = run_restore(lab, ansible_playbook, check=True, state="absent", restore_id="r-absent", expect_failure=True)
    assert planned["deleted_volume_ids"] == volume_ids[1:] and set(volumes_of(lab)) >= set(volume_ids), "check mode"
    run, absent = run_restore(lab, ansible_playbook, state="absent", restore_id="r-absent", expect_failure=True)
    assert absent["failed"] and "attached to %s at xvdp" % web in absent["msg"], absent
    assert absent["deleted_volume_ids"] == volume_ids[1:] and list(absent["kept_volume_ids"]) == volume_ids[:1]
    assert set(volumes_of(lab)) == others | {volume_ids[0]}, "the originals and the attached one are kept"
