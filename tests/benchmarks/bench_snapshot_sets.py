"""Benchmark: ec2_snapshot_set against the per-volume loop users write today, both through ansible-playbook.

N instances with M data volumes each are seeded in the lab; emulated EC2 latency is added per API call. Each
approach runs on a freshly seeded copy of the same fleet, in the same run, and the fault proxy counts its calls.
The table is printed and kept in docs/benchmarks/snapshot-sets.md.

    cd tests && ../.venv/bin/python -m benchmarks.bench_snapshot_sets --instances 10 --volumes 4
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

from benchmarks.harness import ANSIBLE_PLAYBOOK, bench_lab, playbook_environment, publish, report_path

REPORT = report_path("snapshot-sets.md")

SNAPSHOT_SET_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: One snapshot set per instance
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ item }}"
        volumes: data
        policy: bench
        tags: {Backup: bench}
      loop: "{{ instance_ids }}"
"""

PER_VOLUME_PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Find each instance's data volumes
      amazon.aws.ec2_vol_info:
        filters:
          attachment.instance-id: "{{ item }}"
      loop: "{{ instance_ids }}"
      register: attached

    - name: Snapshot each data volume
      amazon.aws.ec2_snapshot:
        volume_id: "{{ item.id }}"
        description: "bench {{ item.attachment_set[0].instance_id }}"
        snapshot_tags: {Backup: bench, Instance: "{{ item.attachment_set[0].instance_id }}"}
        wait: false
      loop: "{{ attached.results | map(attribute='volumes') | flatten | rejectattr('attachment_set.0.device', 'equalto', '/dev/sda1') | list }}"
      loop_control:
        label: "{{ item.id }}"
"""

MUTATING = ("CreateSnapshot", "CreateSnapshots", "CreateTags", "DeleteSnapshot", "CreateVolume")


def run(lab, playbook, instance_ids, work_dir):
    path = os.path.join(work_dir, "playbook.yml")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(playbook)
    environment = playbook_environment(lab)
    command = [ANSIBLE_PLAYBOOK, path,
               "-e", json.dumps({"instance_ids": instance_ids})]
    lab.reset_counts()
    began = time.monotonic()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - began
    if completed.returncode != 0:
        raise RuntimeError("playbook failed:\n%s\n%s" % (completed.stdout[-3000:], completed.stderr[-3000:]))
    return elapsed, lab.counts()["actions"]


def count_snapshots(lab, instance_ids):
    volume_ids = [v["volume_id"] for i in lab.state["instances"] if i["instance_id"] in instance_ids for v in i["volumes"]]
    return len(lab.ec2().describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": volume_ids}])["Snapshots"])


def summarise(name, elapsed, actions, instances, snapshots):
    calls = sum(entry["attempts"] for entry in actions.values())
    mutating = sum(entry["attempts"] for action, entry in actions.items() if action in MUTATING)
    return {"name": name, "wall_seconds": elapsed, "api_calls": calls, "mutating_calls": mutating,
            "mutating_per_instance": mutating / float(instances), "snapshots": snapshots,
            "by_action": {action: entry["attempts"] for action, entry in sorted(actions.items())}}


def render(results, instances, volumes, latency_ms):
    ours, theirs = results
    lines = [
        "# Benchmark: snapshot sets vs. one snapshot per volume",
        "",
        "Measured %s UTC with `make bench` (tests/benchmarks/bench_snapshot_sets.py): %d instances x %d data volumes"
        % (datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"), instances, volumes),
        "in the lab (moto behind the fault proxy, %d ms emulated latency per EC2 call), each approach through" % latency_ms,
        "`ansible-playbook` on a freshly seeded copy of the same fleet in the same run.",
        "",
        "- **ec2_snapshot_set**: one task per instance, `volumes: data`, tags at creation.",
        "- **per-volume loop** (what users write today): `amazon.aws.ec2_vol_info` per instance to find its volumes,",
        "  then `amazon.aws.ec2_snapshot` per data volume with `snapshot_tags` and `wait: false`.",
        "",
        "| | ec2_snapshot_set | per-volume loop | ratio |",
        "|---|---:|---:|---:|",
        "| wall time (s) | %.1f | %.1f | %.1fx |" % (
            ours["wall_seconds"], theirs["wall_seconds"], theirs["wall_seconds"] / ours["wall_seconds"]),
        "| EC2 API calls | %d | %d | %.1fx |" % (ours["api_calls"], theirs["api_calls"], theirs["api_calls"] / float(ours["api_calls"])),
        "| mutating calls | %d | %d | %.1fx |" % (
            ours["mutating_calls"], theirs["mutating_calls"], theirs["mutating_calls"] / float(ours["mutating_calls"])),
        "| mutating calls per instance | %.1f | %.1f | |" % (ours["mutating_per_instance"], theirs["mutating_per_instance"]),
        "| snapshots created | %d | %d | |" % (ours["snapshots"], theirs["snapshots"]),
        "| points in time per instance | 1 | %d | |" % volumes,
        "",
        "Calls per action:",
        "",
        "| action | ec2_snapshot_set | per-volume loop |",
        "|---|---:|---:|",
    ]
    for action in sorted(set(ours["by_action"]) | set(theirs["by_action"])):
        lines.append("| %s | %d | %d |" % (action, ours["by_action"].get(action, 0), theirs["by_action"].get(action, 0)))
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--no-save", action="store_true", help="print only; keep docs/benchmarks as it is")
    options = parser.parse_args(argv)
    results = []
    with bench_lab() as (lab, work_dir):
        for name, playbook in (("ec2_snapshot_set", SNAPSHOT_SET_PLAYBOOK), ("per-volume loop", PER_VOLUME_PLAYBOOK)):
            lab.reset(fleet={"instances": options.instances, "data_volumes": options.volumes})
            lab.faults(latency_ms=options.latency_ms)
            instance_ids = [instance["instance_id"] for instance in lab.state["instances"]]
            elapsed, actions = run(lab, playbook, instance_ids, work_dir)
            results.append(summarise(name, elapsed, actions, options.instances, count_snapshots(lab, instance_ids)))
    report = render(results, options.instances, options.volumes, options.latency_ms)
    publish(report, REPORT, save=not options.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
