"""``make demo``: start the lab, report the fleet's health, back it up, show the sets from their tags, let the SQL-like
host write more, restore its D: and E: in place from the backup, show them back at the backup's point and passing the
consistency check, plan the sets' retention (check mode, with every reason), stop the lab."""

import datetime
import json
import os
import subprocess
import sys

from lab.control import LabClient, start_detached, stop_detached

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK_DIR = os.path.join(REPO_ROOT, "build", "demo")
SQL_HOST = "win-sql-01"
LIST_SETS = """
- name: Read the sets back from their tags
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: List the sets of the lab's instances
      shadowsnap.ec2.ec2_snapshot_set_info:
        instance_ids: "{{ instance_ids }}"
      register: sets
    - name: Keep them
      ansible.builtin.copy:
        content: "{{ {'sets': sets.sets} | to_nice_json }}"
        dest: "{{ report_path }}"
        mode: "0644"
"""


def run_playbook(state, playbook, extra_vars, inventory=None, check=False):
    environment = dict(os.environ, **state["environment"])
    environment["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO_ROOT, "build", "collections")
    environment["ANSIBLE_LOCALHOST_WARNING"] = "False"
    environment["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "False"
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    if inventory:
        command += ["-i", inventory]
    if check:
        command.append("--check")
    subprocess.run(command, env=environment, check=True)


def print_sets(report, instances):
    names = {instance["instance_id"]: instance["name"] for instance in instances}
    sys.stdout.write("\nSnapshot sets created (read back from their tags):\n")
    for found in report["sets"]:
        sys.stdout.write("\n  set %s  instance %s (%s)  %s, %s, %d volumes\n" % (
            found["set_id"], found["instance_id"], names.get(found["instance_id"], "?"), found["consistency"],
            found["status"], found["volume_count"]))
        sys.stdout.write("    %-24s %-10s %-8s %-24s %s\n" % ("volume", "device", "paths", "snapshot", "state"))
        for member in found["snapshots"]:
            sys.stdout.write("    %-24s %-10s %-8s %-24s %s\n" % (
                member["volume_id"], member["device"], ",".join(member["paths"]) or "-", member["snapshot_id"], member["state"]))
        first = found["snapshots"][0]["tags"]
        schema = {key: value for key, value in sorted(first.items()) if not key.startswith("shadowsnap:volume:")}
        sys.stdout.write("    tags: %s\n" % json.dumps(schema, sort_keys=True))


def print_fleet_health(report, windows_hosts):
    hosts = {host["name"]: host for host in windows_hosts}
    sys.stdout.write("\nFleet health (VSS writers and EBS mapping, read over WinRM):\n\n")
    sys.stdout.write("  %-12s %-21s %-30s %-6s %-9s %s\n" % ("host", "instance", "os", "locale", "writers", "volumes"))
    for entry in report["hosts"]:
        host = hosts.get(entry["host"], {})
        volumes = " ".join("%s:=%s" % (letter, ",".join(ids) or "?") for letter, ids in sorted(entry["volumes"].items()))
        sys.stdout.write("  %-12s %-21s %-30s %-6s %-9s %s\n" % (
            entry["host"], entry["instance_id"], host.get("os_caption", "?").replace("Microsoft Windows ", ""), host.get("locale", "?"),
            "%s/%s ok" % (entry["writers_healthy"], entry["writers_total"]), volumes))
        if entry["failed_writers"]:
            sys.stdout.write("  %-12s failed writers: %s\n" % ("", ", ".join(entry["failed_writers"])))
        if not entry["cross_check"]["ok"]:
            sys.stdout.write("  %-12s EC2 cross-check: %s\n" % ("", "; ".join(entry["cross_check"]["errors"])))


# The demo's retention policy, and how many nights of history the lab adds before tonight's backup.
DEMO_POLICY = {"retention_keep_daily": 7, "retention_keep_weekly": 4, "retention_keep_monthly": 3}
DEMO_HISTORY_NIGHTS = 45


def add_history(lab, sets):
    """Earlier nightly sets of every instance, as if the backup had run each night at 01:00 UTC: the lab clones
    tonight's set with back-dated created-at tags (the lab's seeding, docs/lab.md)."""
    tonight = datetime.datetime.now(datetime.timezone.utc).replace(hour=1, minute=0, second=0, microsecond=0)
    for found in sets:
        lab.clone_set(found["set_id"], [
            {"set_id": "%s-night-%02d" % (found["instance_id"], night),
             "created_at": (tonight - datetime.timedelta(days=night)).isoformat()}
            for night in range(1, DEMO_HISTORY_NIGHTS + 1)])


def print_retention_plan(report, instances):
    """One line per kept or skipped set, one per run of consecutive sets deleted for the same reasons."""
    counts = report["counts"]
    policy = ", ".join("%s %s" % (key[len("retention_"):], value) for key, value in sorted(DEMO_POLICY.items()))
    sys.stdout.write("\nRetention plan (check mode: nothing deleted), %s: %d sets kept, %d to delete, %d skipped\n"
                     % (policy, counts["kept"], counts["deleted"], counts["skipped"]))
    decisions = [("keep", entry) for entry in report["kept_sets"]] + [("delete", entry) for entry in report["deleted_sets"]]
    decisions += [("skip", entry) for entry in report["skipped_sets"]]
    for instance in instances:
        sys.stdout.write("\n  %s (%s)\n" % (instance["name"], instance["instance_id"]))
        mine = sorted((pair for pair in decisions if pair[1]["instance_id"] == instance["instance_id"]),
                      key=lambda pair: pair[1]["created_at"] or "", reverse=True)
        runs = []
        for decision, entry in mine:
            if runs and decision == "delete" == runs[-1][0] and entry["reasons"] == runs[-1][1][-1]["reasons"]:
                runs[-1][1].append(entry)
            else:
                runs.append((decision, [entry]))
        for decision, entries in runs:
            when = entries[0]["created_at"] if len(entries) == 1 else "%s .. %s (%d sets)" % (
                entries[-1]["created_at"], entries[0]["created_at"], len(entries))
            sys.stdout.write("    %-6s %-44s %s\n" % (decision, when, "; ".join(entries[0]["reasons"])))


def plan_retention(state, sets):
    """The retention step: a history of nightly sets, then the retention playbook in check mode, printed."""
    add_history(LabClient(state), sets)
    report_path = os.path.join(WORK_DIR, "retention.json")
    extra_vars = dict(DEMO_POLICY, retention_report_path=report_path)
    run_playbook(state, "shadowsnap.ec2.retention", extra_vars, check=True)
    with open(report_path, encoding="utf-8") as handle:
        print_retention_plan(json.load(handle), state["instances"])


def restore_in_place(state, inventory, backup):
    """The SQL-like host writes more after its backup; an in-place restore brings D: and E: back to the backup."""
    client = LabClient(state)
    result = next(entry for entry in backup["hosts"] if entry["host"] == SQL_HOST)
    before = client.journal_check(SQL_HOST)
    client.application_transactions(SQL_HOST, count=25)
    after = client.journal_check(SQL_HOST)
    sys.stdout.write("\n%s wrote more after its backup (at LSN %d): its journal is at LSN %d now.\n"
                     % (SQL_HOST, before["last_log_lsn"], after["last_log_lsn"]))
    restore_path = os.path.join(WORK_DIR, "restore.json")
    run_playbook(state, "shadowsnap.ec2.restore", {"target_hosts": SQL_HOST, "restore_set_id": result["set_id"],
                                                   "restore_volumes": ["D:", "E:"], "restore_report_path": restore_path},
                 inventory)
    with open(restore_path, encoding="utf-8") as handle:
        (restored,) = json.load(handle)["hosts"]
    check = client.check_consistency({"host": SQL_HOST, "volume": "D:"}, {"host": SQL_HOST, "volume": "E:"})
    sys.stdout.write("\nIn-place restore of %s from set %s: %s, consistency %s, in %.1f s\n" % (
        SQL_HOST, restored["set_id"], restored["status"], restored["consistency"], restored.get("seconds", 0)))
    for volume in restored["volumes"]:
        sys.stdout.write("  %s  %-24s <- %-24s (snapshot %s, shadow copy %s)\n" % (
            ",".join(volume["paths"]), volume["volume_id"], volume["source_volume_id"], volume["snapshot_id"],
            volume["shadow_id"] or "-"))
    sys.stdout.write("  live D: and E: back at the backup's point: journal at LSN %d, %s\n" % (
        check["last_log_lsn"], "passes the consistency check" if check["consistent"] else "FAILS: " + "; ".join(check["reasons"])))
    sys.stdout.write("  the original volumes are kept (tagged shadowsnap:replaced-by:*); ec2_volume_swap state=cleaned "
                     "with confirm_delete deletes them, or state=rolled_back puts them back.\n")


def main():
    os.makedirs(WORK_DIR, exist_ok=True)
    state_file = os.path.join(WORK_DIR, "state.json")
    report_path = os.path.join(WORK_DIR, "sets.json")
    state = start_detached(state_file, os.path.join(WORK_DIR, "lab.log"))
    try:
        sys.stdout.write("Lab running: AWS endpoint %s, %d Windows instances\n" % (state["aws_endpoint_url"], len(state["instances"])))
        inventory = os.path.join(WORK_DIR, "windows.ini")
        LabClient(state).write_inventory(inventory)
        health_path = os.path.join(WORK_DIR, "fleet_health.json")
        run_playbook(state, "shadowsnap.ec2.fleet_health", {"report_path": health_path}, inventory)
        with open(health_path, encoding="utf-8") as handle:
            print_fleet_health(json.load(handle), state["windows_hosts"])
        LabClient(state).application_transactions(SQL_HOST, count=10)
        backup_path = os.path.join(WORK_DIR, "backup.json")
        run_playbook(state, "shadowsnap.ec2.backup", {"target_hosts": "windows", "backup_all_data_volumes": True,
                                                      "backup_report_path": backup_path}, inventory)
        with open(backup_path, encoding="utf-8") as handle:
            backup = json.load(handle)
        sys.stdout.write("\nBackup: %s\n" % ", ".join("%d %s" % (count, status) for status, count in sorted(backup["counts"].items())))
        list_sets = os.path.join(WORK_DIR, "list_sets.yml")
        with open(list_sets, "w", encoding="utf-8") as handle:
            handle.write(LIST_SETS)
        instance_ids = [instance["instance_id"] for instance in state["instances"]]
        run_playbook(state, list_sets, {"instance_ids": instance_ids, "report_path": report_path})
        with open(report_path, encoding="utf-8") as handle:
            listed = json.load(handle)
        print_sets(listed, state["instances"])
        restore_in_place(state, inventory, backup)
        plan_retention(state, listed["sets"])
    finally:
        stop_detached(state_file)
        sys.stdout.write("\nLab stopped.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
