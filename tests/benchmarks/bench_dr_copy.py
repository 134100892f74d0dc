"""Benchmark: a DR copy of many sets with ec2_snapshot_set_copy against the loop users write today (one
``community.aws.ec2_snapshot_copy`` task (amazon.aws has no snapshot copy module) with ``wait: true`` per snapshot), both through ansible-playbook, in the same
run, under the lab's 20-copy cap per destination Region, with copies that stay pending for ``--copy-seconds``.

A fleet of instances with data volumes gets one real set per instance (ec2_snapshot_set) and back-dated copies of
it; the module copies all of them to a second Region; the loop copies the snapshots of ``--loop-sets`` sets, given
their ids. The lab records every copy it accepts (start and end), so occupancy is measured by the lab: pending copies
in the destination, integrated over the run, divided by the cap times the span from the first start to the last end.
The table is printed and kept in docs/benchmarks/dr-copy.md.

    cd tests && ../.venv/bin/python -m benchmarks.bench_dr_copy --sets 50 --loop-sets 3
"""

import argparse
import datetime
import json
import os
import sys

from benchmarks.bench_retention import run_playbook
from benchmarks.harness import bench_lab, publish, report_path

REPORT = report_path("dr-copy.md")
CAP = 20
SOURCE_REGION = "us-east-1"
DR_REGION = "us-west-2"

BASE_SETS = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: One real set per instance
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ item }}"
        set_id: "dr-{{ item }}-000"
        volumes: data
        policy: bench
      loop: "{{ instance_ids }}"
"""

MODULE = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Copy the sets to the DR Region
      shadowsnap.ec2.ec2_snapshot_set_copy:
        set_ids: "{{ set_ids }}"
        destination_region: %s
        poll_interval: "{{ poll_interval }}"
      register: copied

    - name: Keep the result for the benchmark
      ansible.builtin.copy:
        content: "{{ copied | to_json }}"
        dest: "{{ result_path }}"
        mode: "0644"
""" % DR_REGION

LOOP = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Copy each snapshot and wait for it
      community.aws.ec2_snapshot_copy:
        region: %s
        source_region: %s
        source_snapshot_id: "{{ item }}"
        wait: true
        wait_timeout: 900
      loop: "{{ snapshot_ids }}"
""" % (DR_REGION, SOURCE_REGION)


def seed(lab, instances, sets_per_instance, volumes, work_dir):
    """{set id: [snapshot ids]}: a real set per instance and back-dated daily copies of it."""
    lab.reset(fleet={"instances": instances, "data_volumes": volumes})
    instance_ids = [instance["instance_id"] for instance in lab.state["instances"]]
    dummy, completed = run_playbook(lab, BASE_SETS, {"instance_ids": instance_ids}, work_dir)
    if completed.returncode != 0:
        raise RuntimeError("the base sets failed:\n%s" % completed.stdout[-3000:])
    today = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    sets = {}
    for instance_id in instance_ids:
        base = "dr-%s-000" % instance_id
        sets[base] = lab.backdate_set(base, today.isoformat())
        sets.update(lab.clone_set(base, [{"set_id": "dr-%s-%03d" % (instance_id, day),
                                          "created_at": (today - datetime.timedelta(days=day)).isoformat()}
                                         for day in range(1, sets_per_instance)]))
    return sets


def occupancy(copies, cap):
    """(share of the cap busy from the first start to the last end, most in flight, span in seconds)."""
    if not copies:
        return 0.0, 0, 0.0
    events = sorted([(c["started"], 1) for c in copies] + [(c["ends"], -1) for c in copies])
    begin, end = events[0][0], events[-1][0]
    busy, level, most, last = 0.0, 0, 0, begin
    for moment, step in events:
        busy += level * (moment - last)
        level += step
        most = max(most, level)
        last = moment
    span = end - begin
    return (busy / (cap * span) if span > 0 else 0.0), most, span


def measure(lab, playbook, extra_vars, work_dir, copy_seconds):
    lab.reset_counts()
    lab.copy_settings(copy_seconds=copy_seconds, max_concurrent_copies=CAP)
    elapsed, completed = run_playbook(lab, playbook, extra_vars, work_dir)
    seen = lab.copies()
    copies = [c for c in seen["copies"] if c["region"] == DR_REGION]
    share, most, span = occupancy(copies, CAP)
    calls = lab.counts()["actions"].get("CopySnapshot", {})
    return {"wall_seconds": elapsed, "rc": completed.returncode, "copies": len(copies),
            "distinct_sources": len({c["source_snapshot_id"] for c in copies}), "occupancy": share,
            "most_in_flight": most, "span": span, "refused": len(seen["refused"]),
            "copies_per_minute": 60.0 * len(copies) / span if span else 0.0,
            "attempts": calls.get("attempts", 0), "tail": completed.stdout[-2000:]}


def render(ours, theirs, options, module_result):
    ideal = options.copy_seconds * -(-ours["copies"] // CAP)
    speedup = ours["copies_per_minute"] / theirs["copies_per_minute"] if theirs["copies_per_minute"] else float("inf")
    lines = [
        "# Benchmark: DR copies of snapshot sets under the 20-copy cap",
        "",
        "Measured %s UTC with `make bench` (tests/benchmarks/bench_dr_copy.py) in the lab: moto behind the fault proxy,"
        % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "which keeps each copy `pending` for %.0f s and refuses a 21st concurrent copy per destination Region with"
        % options.copy_seconds,
        "`ResourceLimitExceeded`, as EC2 does. %d sets of %d snapshots (%d instances), copied from %s to %s; each"
        % (options.sets, options.volumes, options.instances, SOURCE_REGION, DR_REGION),
        "approach through `ansible-playbook` in the same run. Real copies take minutes to hours; the lab's are short,",
        "with the module's `poll_interval` (%.1f s) scaled down with them." % options.poll_interval,
        "",
        "- **ec2_snapshot_set_copy**: one task for all %d sets, default `max_concurrent_copies` (20)." % options.sets,
        "- **ec2_snapshot_copy loop** (what users write today): `community.aws.ec2_snapshot_copy` with `wait: true`, one",
        "  loop item per snapshot, given the ids, on %d sets (%d snapshots) - the loop copies one snapshot at a time,"
        % (options.loop_sets, theirs["copies"]),
        "  so its rate does not depend on how many there are.",
        "",
        "| | ec2_snapshot_set_copy | ec2_snapshot_copy loop |",
        "|---|---:|---:|",
        "| snapshots copied | %d | %d |" % (ours["copies"], theirs["copies"]),
        "| distinct sources copied (a second copy of one would show here) | %d | %d |" % (
            ours["distinct_sources"], theirs["distinct_sources"]),
        "| most copies in flight (the lab's count; cap %d) | %d | %d |" % (CAP, ours["most_in_flight"], theirs["most_in_flight"]),
        "| occupancy of the cap, first start to last end | %.1f %% | %.1f %% |" % (
            100 * ours["occupancy"], 100 * theirs["occupancy"]),
        "| span of the copies (s) | %.1f | %.1f |" % (ours["span"], theirs["span"]),
        "| copies per minute | %.1f | %.1f |" % (ours["copies_per_minute"], theirs["copies_per_minute"]),
        "| CopySnapshot requests | %d | %d |" % (ours["attempts"], theirs["attempts"]),
        "| refused with ResourceLimitExceeded | %d | %d |" % (ours["refused"], theirs["refused"]),
        "| wall time of the playbook (s) | %.1f | %.1f |" % (ours["wall_seconds"], theirs["wall_seconds"]),
        "| playbook exit code | %d | %d |" % (ours["rc"], theirs["rc"]),
        "",
        "The module's own figures: occupancy %.3f, most in flight %d, %.1f s (the ideal for %d copies of %.0f s, 20 at a"
        % (module_result.get("occupancy", 0.0), module_result.get("max_in_flight", 0),
           module_result.get("elapsed_seconds", 0.0), ours["copies"], options.copy_seconds),
        "time, is %.0f s). Throughput ratio: **%.1fx** the loop's copies per minute." % (ideal, speedup),
        "",
        "Goal: at least 90 %% occupancy of the 20-copy cap - %s (%.1f %%)." % (
            "met" if ours["occupancy"] >= 0.9 else "**not met**", 100 * ours["occupancy"]),
        "",
        "- Occupancy is lost only between a copy's end and the next poll (at most `poll_interval`), and in the last",
        "  round, when fewer than 20 copies are left. With real copy times (minutes) and the default 15 s poll, the poll's",
        "  share of a copy's time is about what it is here (%.1f s of %.0f s)." % (options.poll_interval, options.copy_seconds),
        "- The loop's copies per minute is one copy per copy time plus the waiter's 15 s polls: it never uses more than",
        "  1 of the 20 slots.",
        "- The machine was shared with other work (2 cores).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=50)
    parser.add_argument("--loop-sets", type=int, default=3)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--volumes", type=int, default=2, help="data volumes per instance (members per set)")
    parser.add_argument("--copy-seconds", type=float, default=20.0)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--no-save", action="store_true", help="print only; keep docs/benchmarks as it is")
    options = parser.parse_args(argv)
    if options.sets % options.instances:
        parser.error("--sets must be a multiple of --instances")
    with bench_lab() as (lab, work_dir):
        sets = seed(lab, options.instances, options.sets // options.instances, options.volumes, work_dir)
        result_path = os.path.join(work_dir, "copy.json")
        ours = measure(lab, MODULE, {"set_ids": sorted(sets), "poll_interval": options.poll_interval,
                                     "result_path": result_path}, work_dir, options.copy_seconds)
        if ours["rc"] != 0:
            raise RuntimeError("the copy playbook failed:\n%s" % ours["tail"])
        with open(result_path, encoding="utf-8") as handle:
            module_result = json.load(handle)
        sets = seed(lab, options.instances, options.sets // options.instances, options.volumes, work_dir)
        loop_ids = [snapshot_id for set_id in sorted(sets)[:options.loop_sets] for snapshot_id in sets[set_id]]
        theirs = measure(lab, LOOP, {"snapshot_ids": loop_ids}, work_dir, options.copy_seconds)
    if theirs["rc"] != 0:
        sys.stderr.write("the loop failed:\n%s\n" % theirs["tail"])
    report = render(ours, theirs, options, module_result)
    publish(report, REPORT, save=not options.no_save)
    return 0 if theirs["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
