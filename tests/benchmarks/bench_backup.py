"""Benchmark: the backup role's shadow engine against the crash-consistent baseline, through ansible-playbook.

The lab seeds Windows Server hosts with the SQL "application" (SqlServerWriter, data on D:, logs on E:); every WinRM
request of every host and every EC2 call get emulated latency. ``ansible-playbook shadowsnap.ec2.backup`` runs on one
host (copy and full, per-host figures) and on the whole fleet (copy), then the same fleet with ``backup_engine: crash``
(what AWS Backup and DLM give: CreateSnapshots, no VSS) in the same run. The table is printed and kept in
docs/benchmarks/backup.md.

    cd tests && ../.venv/bin/python -m benchmarks.bench_backup --instances 200
"""

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from benchmarks.harness import ANSIBLE_PLAYBOOK, bench_lab, playbook_environment, publish, report_path

REPORT = report_path("backup.md")
BACKUP = "- ansible.builtin.import_playbook: shadowsnap.ec2.backup\n"
WINDOWS = {"os": "2022", "edition": "Datacenter", "locale": "en-US", "applications": ["sql"], "aws_vss_components": None}
VOLUMES = ["D:", "E:"]
GOAL_ROUND_TRIPS = 8
GOAL_HOLD_P95 = 3.0
GOAL_WALL_RATIO = 1.2
CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


def parse_time(value):
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def percentile(values, fraction):
    """Nearest-rank percentile (p95 of 50 values is the 48th smallest)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def ec2_client(lab):
    import boto3  # pylint: disable=import-outside-toplevel

    environment = lab.state["environment"]
    return boto3.client("ec2", region_name=lab.state["region"], endpoint_url=lab.state["moto_endpoint_url"],
                        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"], aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])


def prepare(lab, instances, work_dir, ec2_latency_ms, winrm_latency_ms):
    """A freshly seeded fleet with latency on every EC2 call and every WinRM request; returns the inventory path."""
    lab.reset(fleet={"instances": instances, "data_volumes": len(VOLUMES), "windows": dict(WINDOWS)})
    lab.faults(latency_ms=ec2_latency_ms)
    for host in lab.state["windows_hosts"]:
        lab.host_fault(host["name"], "latency", seconds=winrm_latency_ms / 1000.0)
    inventory = os.path.join(work_dir, "windows.ini")
    lab.write_inventory(inventory)
    return inventory


def run_playbook(lab, text, inventory, work_dir, forks, extra):
    """``ansible-playbook`` of ``text`` on the inventory with the lab's credentials, the per-host counting callback and
    the counters of the lab reset first: (seconds, controller CPU seconds, the completed process, per-host counts)."""
    playbook = os.path.join(work_dir, "playbook.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        handle.write(text)
    environment = playbook_environment(lab, **{
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_LOCAL_TEMP": os.path.join(work_dir, "ansible-local"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CALLBACK_PLUGINS": CALLBACKS,
        "ANSIBLE_CALLBACKS_ENABLED": "bench_counts",
        "SHADOWSNAP_BENCH_COUNTS": os.path.join(work_dir, "counts.json"),
    })
    if os.path.exists(environment["SHADOWSNAP_BENCH_COUNTS"]):
        os.remove(environment["SHADOWSNAP_BENCH_COUNTS"])
    command = [ANSIBLE_PLAYBOOK, playbook, "-i", inventory,
               "-f", str(forks), "-e", json.dumps(extra)]
    lab.reset_counts()
    lab.reset_host_counters()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    per_host = {}
    if os.path.exists(environment["SHADOWSNAP_BENCH_COUNTS"]):
        with open(environment["SHADOWSNAP_BENCH_COUNTS"], encoding="utf-8") as handle:
            per_host = json.load(handle)
    return elapsed, cpu, completed, {name: per_host.get(name, {"tasks": 0, "modules": 0})
                                     for name in (h["name"] for h in lab.state["windows_hosts"])}


def run_backup(lab, inventory, work_dir, forks, **variables):
    report_file = os.path.join(work_dir, "report.json")
    if os.path.exists(report_file):
        os.remove(report_file)
    extra = {"target_hosts": "windows", "backup_volumes": VOLUMES, "backup_report_path": report_file}
    extra.update(variables)
    elapsed, cpu, completed, per_host = run_playbook(lab, BACKUP, inventory, work_dir, forks, extra)
    report = None
    if os.path.exists(report_file):
        with open(report_file, encoding="utf-8") as handle:
            report = json.load(handle)
    hosts = len(lab.state["windows_hosts"])
    if completed.returncode != 0 or report is None or report["counts"]["ok"] != hosts:
        raise RuntimeError("backup failed (rc %d, report %s):\n%s\n%s" % (
            completed.returncode, report and report["counts"], completed.stdout[-4000:], completed.stderr[-4000:]))
    return elapsed, cpu, report, per_host


def hold_windows(lab):
    """Per host: seconds from the shadow set's creation on the host to the EBS point in time (earliest StartTime)."""
    volume_owner = {v["volume_id"]: i["name"] for i in lab.state["instances"] for v in i["volumes"]}
    snapshots = ec2_client(lab).describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "volume-id", "Values": list(volume_owner)}])
    start = {}
    for snapshot in snapshots["Snapshots"]:
        name = volume_owner[snapshot["VolumeId"]]
        start[name] = min(start.get(name, snapshot["StartTime"]), snapshot["StartTime"])
    windows = {}
    for host in lab.state["windows_hosts"]:
        created = lab.vss_events(host["name"], event="SnapshotSetCreated")
        if created and host["name"] in start:
            windows[host["name"]] = (parse_time(start[host["name"]]) - parse_time(created[-1]["time"])).total_seconds()
    return windows


def measure(lab, name, instances, work_dir, options, **variables):
    inventory = prepare(lab, instances, work_dir, options.ec2_latency_ms, options.winrm_latency_ms)
    elapsed, cpu, report, per_host = run_backup(lab, inventory, work_dir, min(options.forks, instances), **variables)
    counters = lab.host_counters()
    round_trips = [counters[h["name"]]["agent"]["round_trips"] for h in lab.state["windows_hosts"]]
    requests = [counters[h["name"]]["winrm"].get("requests", 0) for h in lab.state["windows_hosts"]]
    actions = lab.counts()["actions"]
    calls = sum(entry["attempts"] for entry in actions.values())
    hold = list(hold_windows(lab).values())
    consistency = sorted({h["consistency"] for h in report["hosts"]})
    result = {"name": name, "hosts": instances, "wall_seconds": elapsed, "consistency": "/".join(consistency),
              "cpu_seconds_per_host": cpu / instances,
              "tasks_per_host": statistics.mean(entry["tasks"] for entry in per_host.values()),
              "modules_per_host": statistics.mean(entry["modules"] for entry in per_host.values()),
              "round_trips_max": max(round_trips), "round_trips_mean": statistics.mean(round_trips),
              "winrm_requests_mean": statistics.mean(requests), "api_calls": calls, "api_calls_per_host": calls / float(instances),
              "by_action": {action: entry["attempts"] for action, entry in sorted(actions.items())},
              "hold": hold}
    sys.stderr.write("%s: %.1f s, %d hosts %s\n" % (name, elapsed, instances, result["consistency"]))
    return result


def hold_cell(result, key):
    if not result["hold"]:
        return "n/a"
    values = result["hold"]
    figure = {"min": min(values), "p50": statistics.median(values), "p95": percentile(values, 0.95), "max": max(values)}[key]
    return "%.1f" % figure


def goal(passed):
    return "**PASS**" if passed else "**MISS**"


def hold_goal(p95):
    """PASS only when the window is under the goal even if every StartTime was truncated by almost a second."""
    if p95 + 1 <= GOAL_HOLD_P95:
        return goal(True)
    if p95 > GOAL_HOLD_P95:
        return goal(False)
    return goal(False) + " (within the 1 s StartTime resolution of the goal)"


def render(results, options, command, total_seconds):
    single_copy, single_full, single_crash, fleet_copy, fleet_crash = results
    columns = [single_copy, single_full, single_crash, fleet_copy, fleet_crash]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    fleet_rt = fleet_copy["round_trips_max"]
    fleet_p95 = percentile(fleet_copy["hold"], 0.95)
    ratio = fleet_copy["wall_seconds"] / fleet_crash["wall_seconds"]
    single = "1 host: copy %s s, full %s s" % (hold_cell(single_copy, "max"), hold_cell(single_full, "max"))
    lines = [
        "# Benchmark: the backup role (shadow engine) vs. crash-consistent snapshots",
        "",
        "Measured %s UTC on %s (%d cores, Python %s) by `%s` (the second command of `make bench`), %.0f s in all." % (
            now, platform.machine(), os.cpu_count() or 0, platform.python_version(), command, total_seconds),
        "",
        "Lab (docs/lab.md, docs/lab-windows.md): moto behind the fault proxy with **%d ms** emulated latency per EC2 call; simulated"
        % options.ec2_latency_ms,
        "Windows Server 2022 hosts (SQL \"application\": SqlServerWriter, data on D:, logs on E:) behind real WinRM endpoints with",
        "**%d ms** emulated latency on every WinRM HTTP request of every host. Each column is `ansible-playbook shadowsnap.ec2.backup`"
        % options.winrm_latency_ms,
        "(`backup_volumes: [\"D:\", \"E:\"]`, `-f %d` for the fleet, `backup_max_concurrent` at its default 10) on a freshly seeded"
        % options.forks,
        "copy of the same fleet, in the same run. Every host's backup ended `ok` in every column.",
        "",
        "- **shadow copy / shadow full** (ours): `backup_engine: shadow` (default), `backup_type: copy` (default) or `full`.",
        "- **crash** (the baseline): `backup_engine: crash`, one `CreateSnapshots` per instance and no VSS: what AWS Backup and",
        "  DLM give (crash-consistent, no writer involved).",
        "- Not measured: a hand-written `win_shell` (diskshadow/PowerShell) + `amazon.aws.ec2_snapshot` playbook and AWS's",
        "  SSM agent (`AWSEC2-CreateVssSnapshot`) cannot run in the lab: it has no PowerShell and no SSM agent.",
        "",
        "| | 1 host: shadow copy | 1 host: shadow full | 1 host: crash | %d hosts: shadow copy | %d hosts: crash |" % (
            fleet_copy["hosts"], fleet_crash["hosts"]),
        "|---|---:|---:|---:|---:|---:|",
        "| consistency of the sets | " + " | ".join(r["consistency"] for r in columns) + " |",
        "| wall time (s) | " + " | ".join("%.1f" % r["wall_seconds"] for r in columns) + " |",
        "| controller CPU seconds per host | " + " | ".join("%.2f" % r["cpu_seconds_per_host"] for r in columns) + " |",
        "| tasks run per host (mean) | " + " | ".join("%.1f" % r["tasks_per_host"] for r in columns) + " |",
        "| module executions per host (mean) | " + " | ".join("%.1f" % r["modules_per_host"] for r in columns) + " |",
        "| WinRM round trips per backup (agent requests, max over hosts) | "
        + " | ".join("%d" % r["round_trips_max"] for r in columns) + " |",
        "| WinRM HTTP requests per host (mean) | " + " | ".join("%.1f" % r["winrm_requests_mean"] for r in columns) + " |",
        "| shadow-hold window min (s) | " + " | ".join(hold_cell(r, "min") for r in columns) + " |",
        "| shadow-hold window p50 (s) | " + " | ".join(hold_cell(r, "p50") for r in columns) + " |",
        "| shadow-hold window p95 (s) | " + " | ".join(hold_cell(r, "p95") for r in columns) + " |",
        "| shadow-hold window max (s) | " + " | ".join(hold_cell(r, "max") for r in columns) + " |",
        "| EC2 API calls per host | " + " | ".join("%.1f" % r["api_calls_per_host"] for r in columns) + " |",
        "",
        "Goals, judged on the %d-host shadow copy run:" % fleet_copy["hosts"],
        "",
        "| goal | measured | |",
        "|---|---:|---|",
        "| WinRM round trips per backup <= %d | %d (1 host full: %d) | %s |" % (
            GOAL_ROUND_TRIPS, fleet_rt, single_full["round_trips_max"],
            goal(fleet_rt <= GOAL_ROUND_TRIPS and single_full["round_trips_max"] <= GOAL_ROUND_TRIPS)),
        "| shadow-hold window p95 <= %.0f s at %d ms WinRM latency | %.1f s (%s) | %s |" % (
            GOAL_HOLD_P95, options.winrm_latency_ms, fleet_p95, single, hold_goal(fleet_p95)),
        "| fleet wall time <= %.1fx the crash engine's | %.2fx (%.1f s / %.1f s) | %s |" % (
            GOAL_WALL_RATIO, ratio, fleet_copy["wall_seconds"], fleet_crash["wall_seconds"], goal(ratio <= GOAL_WALL_RATIO)),
        "",
    ]
    if fleet_p95 > GOAL_HOLD_P95:
        lines += [
            "Why the fleet misses the hold goal: the window lies inside one task (the shadow set reported, then one",
            "`CreateSnapshots`), so what lengthens it is the controller's load - %d workers sharing %d cores, each task of"
            % (options.forks, os.cpu_count() or 0),
            "every host a Python process - and EC2's answer time, not other hosts' tasks. With `backup_type: copy` the",
            "writers are thawed once the shadow set exists, so a long window costs shadow-storage space and copy-on-write",
            "I/O, not frozen applications; with `full` the writers wait for BackupComplete that long.",
            "",
        ]
    lines += [
        "How it is measured:",
        "",
        "- *WinRM round trips*: the agent requests each host answered (`LabClient.host_counters()[host][\"agent\"][\"round_trips\"]`,",
        "  counters reset before each run); one round trip is several WinRM HTTP requests (shell, command, receive...), each",
        "  paying the emulated latency.",
        "- *Shadow-hold window*: per host, from the time the host recorded `SnapshotSetCreated` (`vss_events`) to the EBS point",
        "  in time, the earliest `StartTime` of the set's snapshots read from moto. moto reports `StartTime` **truncated to the",
        "  second**, so each figure may be up to 1 s short: the goal is judged on p95 + 1 s. It is the time the shadow copies",
        "  exist before the EBS snapshot captures them, not an I/O freeze: writers are thawed when the shadow set exists.",
        "- *EC2 API calls*: every call the fault proxy counted in the run (`LabClient.counts()`), divided by the hosts.",
        "- *Wall time*: the whole `ansible-playbook` process, start-up included.",
        "- *Controller CPU seconds*: user plus system time of `ansible-playbook` and every process it started (its",
        "  workers, the module runs delegated to localhost), from `getrusage(RUSAGE_CHILDREN)`; the lab runs apart and is",
        "  not counted.",
        "- *Tasks run* and *module executions* per host: counted by `tests/benchmarks/callback_plugins/bench_counts.py`;",
        "  a task that ran (skipped ones are not counted) is a module execution when its result carries `invocation`",
        "  (a module process ran: the EC2 modules); `set_fact`, `assert` and the Windows action plugins start none.",
        "",
        "EC2 calls per action:",
        "",
        "| action | 1 host: shadow copy | 1 host: shadow full | 1 host: crash | %d hosts: shadow copy | %d hosts: crash |" % (
            fleet_copy["hosts"], fleet_crash["hosts"]),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for action in sorted(set().union(*(r["by_action"] for r in columns))):
        lines.append("| %s | " % action + " | ".join("%d" % r["by_action"].get(action, 0) for r in columns) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--forks", type=int, default=25)
    parser.add_argument("--ec2-latency-ms", type=int, default=50)
    parser.add_argument("--winrm-latency-ms", type=int, default=50)
    parser.add_argument("--no-save", action="store_true", help="print only; keep docs/benchmarks as it is")
    options = parser.parse_args(argv)
    command = " ".join(["cd tests && ../.venv/bin/python -m benchmarks.bench_backup"] + list(sys.argv[1:] if argv is None else argv))
    began = time.monotonic()
    results = []
    with bench_lab("shadowsnap-bench-backup-") as (lab, work_dir):
        results.append(measure(lab, "1 host shadow copy", 1, work_dir, options))
        results.append(measure(lab, "1 host shadow full", 1, work_dir, options, backup_type="full"))
        results.append(measure(lab, "1 host crash", 1, work_dir, options, backup_engine="crash"))
        results.append(measure(lab, "fleet shadow copy", options.instances, work_dir, options))
        results.append(measure(lab, "fleet crash", options.instances, work_dir, options, backup_engine="crash"))
    report = render(results, options, command, time.monotonic() - began)
    publish(report, REPORT, save=not options.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
