"""``make demo``: start the lab, report the fleet's health, back it up, show the sets from their tags, stop the lab."""

import json
import os
import subprocess
import sys

from lab.control import LabClient, start_detached, stop_detached

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORK_DIR = os.path.join(REPO_ROOT, "build", "demo")
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


def run_playbook(state, playbook, extra_vars, inventory=None):
    environment = dict(os.environ, **state["environment"])
    environment["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO_ROOT, "build", "collections")
    environment["ANSIBLE_LOCALHOST_WARNING"] = "False"
    environment["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "False"
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook, "-e", json.dumps(extra_vars)]
    if inventory:
        command += ["-i", inventory]
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
            print_sets(json.load(handle), state["instances"])
    finally:
        stop_detached(state_file)
        sys.stdout.write("\nLab stopped.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
