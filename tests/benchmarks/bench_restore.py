"""Benchmark: the restore role's in-place restore against the restore a user writes by hand today, in the same run.

The lab seeds Windows Server hosts with the SQL "application" (SqlServerWriter, data on D:, logs on E:) and takes a
shadow set of D:+E: of every host with ``ansible-playbook shadowsnap.ec2.backup`` (no latency: the backup is not what
is measured). Then every EC2 call and every WinRM request of every host get emulated latency, and each row restores
D:+E: of one host, then of the whole fleet, on a freshly seeded and backed-up fleet:

- ``in place`` (ours): ``ansible-playbook shadowsnap.ec2.restore`` with ``restore_mode: in_place``;
- ``stop, swap, start`` (the baseline): AWS's sample approach written with boto3 against the same lab: stop the
  instance, create a volume from each snapshot of the set, detach every original, attach each new volume at its
  original's device, start the instance; one thread per instance, as many at once as the playbook has forks.

Then, at 1 host each (``SINGLE_HOST_ROWS``): ``restore_mode: files`` of a folder deleted after the backup beside the
EC2 half of doing it by hand (attach a volume from the snapshot, detach, delete; the copy in Windows is not scripted),
and ``restore_mode: instance`` into another zone's subnet beside AWS's documented approach with boto3 (launch from the
AMI, stop, swap volumes, start).

A row is a function ``measure_<name>(lab, hosts, work_dir, options) -> dict`` listed in ``ROWS`` or
``SINGLE_HOST_ROWS``. The lab's EBS transitions (creating, attaching, detaching) and
instance stop/start are instant here, so every second measured is the controller's work plus the emulated latency:
that is the controller-side time apart from EBS's own waits. The table is printed and kept in
docs/benchmarks/restore.md.

    cd tests && ../.venv/bin/python -m benchmarks.bench_restore --instances 20
"""

import argparse
import base64
import concurrent.futures
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import time

from benchmarks.bench_backup import VOLUMES, WINDOWS, goal, run_backup, run_playbook
from benchmarks.harness import bench_lab, publish, report_path

REPORT = report_path("restore.md")
RESTORE = "- ansible.builtin.import_playbook: shadowsnap.ec2.restore\n"
SET_ID_TAG = "tag:shadowsnap:set-id"
GOAL_MUTATING_PER_VOLUME = 3
GOAL_ROUND_TRIPS = 5
# EC2 actions that only read; every other action the fault proxy counts changes something.
READ_PREFIXES = ("Describe", "Get", "List")


def is_mutating(action):
    return not action.startswith(READ_PREFIXES)


def seed_backed_up_fleet(lab, hosts, work_dir, forks, before_backup=None, **backup_variables):
    """A freshly seeded fleet of ``hosts`` SQL-like servers, each with a shadow set (of D:+E: unless
    ``backup_variables`` say otherwise) taken while its application was idle, ``before_backup(lab)`` run on the fleet
    first; returns the inventory path. Latency is switched on afterwards (``with_latency``)."""
    lab.reset(fleet={"instances": hosts, "data_volumes": len(VOLUMES), "windows": dict(WINDOWS)})
    inventory = os.path.join(work_dir, "windows.ini")
    lab.write_inventory(inventory)
    if before_backup:
        before_backup(lab)
    run_backup(lab, inventory, work_dir, min(forks, hosts), **backup_variables)
    return inventory


def with_latency(lab, options):
    lab.faults(latency_ms=options.ec2_latency_ms)
    for host in lab.state["windows_hosts"]:
        lab.host_fault(host["name"], "latency", seconds=options.winrm_latency_ms / 1000.0)


def ec2_figures(lab, hosts):
    """Counts of the run from the fault proxy: EC2 calls per host, mutating calls per restored volume, per action."""
    actions = {action: entry["attempts"] for action, entry in sorted(lab.counts()["actions"].items())}
    mutating = sum(count for action, count in actions.items() if is_mutating(action))
    return {"api_calls_per_host": sum(actions.values()) / float(hosts), "mutating_per_host": mutating / float(hosts),
            "mutating_per_volume": mutating / float(hosts * len(VOLUMES)), "by_action": actions}


def winrm_figures(lab, hosts):
    """Round trips and WinRM requests of every endpoint (a restored instance's included) per restored host; the max is
    that of the busiest endpoint."""
    counters = lab.host_counters().values()
    round_trips = [counter["agent"]["round_trips"] for counter in counters]
    requests = [counter["winrm"].get("requests", 0) for counter in counters]
    return {"round_trips_max": max(round_trips), "round_trips_mean": sum(round_trips) / float(hosts),
            "winrm_requests_mean": sum(requests) / float(hosts)}


def now_utc():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_restore(lab, hosts, inventory, work_dir, options, instance_stopped="no", **variables):
    """``ansible-playbook shadowsnap.ec2.restore`` on every host with ``variables``, each host from its newest set;
    (the row's figures, the JSON report). A run that does not restore every host raises."""
    report_path = os.path.join(work_dir, "restore-report.json")
    if os.path.exists(report_path):
        os.remove(report_path)
    extra = {"target_hosts": "windows", "restore_point_in_time": now_utc(), "restore_report_path": report_path}
    extra.update(variables)
    elapsed, cpu, completed, per_host = run_playbook(lab, RESTORE, inventory, work_dir, min(options.forks, hosts), extra)
    report = None
    if os.path.exists(report_path):
        with open(report_path, encoding="utf-8") as handle:
            report = json.load(handle)
    if completed.returncode != 0 or report is None or int(report["counts"]["ok"]) != hosts:
        raise RuntimeError("the %s restore failed (rc %d, report %s):\n%s\n%s" % (
            variables["restore_mode"], completed.returncode, report and report["counts"], completed.stdout[-4000:],
            completed.stderr[-4000:]))
    result = {"hosts": hosts, "wall_seconds": elapsed, "cpu_seconds_per_host": cpu / hosts,
              "consistency": "/".join(sorted({host["consistency"] for host in report["hosts"]})),
              "instance_stopped": instance_stopped,
              "tasks_per_host": statistics.mean(entry["tasks"] for entry in per_host.values())}
    result.update(ec2_figures(lab, hosts))
    result.update(winrm_figures(lab, hosts))
    return result, report


def measure_in_place(lab, hosts, work_dir, options):
    """``ansible-playbook shadowsnap.ec2.restore`` in place, D:+E: of every host from its newest set."""
    inventory = seed_backed_up_fleet(lab, hosts, work_dir, options.forks)
    with_latency(lab, options)
    result, dummy_report = run_restore(lab, hosts, inventory, work_dir, options, restore_mode="in_place",
                                       restore_volumes=VOLUMES)
    return result


WAITER_CONFIG = {"Delay": 1, "MaxAttempts": 600}


def volumes_from(ec2, snapshots, zone):
    """A gp3 volume from each snapshot in ``zone``, waited for: ``{the snapshot's source volume id: new volume id}``."""
    created = {}
    for snapshot in snapshots:
        volume = ec2.create_volume(SnapshotId=snapshot["SnapshotId"], AvailabilityZone=zone, VolumeType="gp3")
        created[snapshot["VolumeId"]] = volume["VolumeId"]
    ec2.get_waiter("volume_available").wait(VolumeIds=list(created.values()), WaiterConfig=WAITER_CONFIG)
    return created


def attach_and_start(ec2, instance_id, created, devices):
    """Each new volume attached at its source's device (``devices``), then the stopped instance started."""
    for source, volume_id in created.items():
        ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device=devices[source])
    ec2.get_waiter("volume_in_use").wait(VolumeIds=list(created.values()), WaiterConfig=WAITER_CONFIG)
    ec2.start_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig=WAITER_CONFIG)


def hand_written_restore(ec2, instance_id, set_id):
    """AWS's sample approach, as a user writes it with boto3: stop, create the volumes, detach every original, attach
    each new volume at its original's device, start. The embedded shadow copies stay where they are: not reverted."""
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": SET_ID_TAG, "Values": [set_id]}])["Snapshots"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    zone = instance["Placement"]["AvailabilityZone"]
    devices = {mapping["Ebs"]["VolumeId"]: mapping["DeviceName"] for mapping in instance["BlockDeviceMappings"]}
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[instance_id], WaiterConfig=WAITER_CONFIG)
    created = volumes_from(ec2, snapshots, zone)
    for original in created:
        ec2.detach_volume(VolumeId=original, InstanceId=instance_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=list(created), WaiterConfig=WAITER_CONFIG)
    attach_and_start(ec2, instance_id, created, devices)
    return created


def proxied_ec2_client(lab):
    """boto3's EC2 client as a user's script has it: through the fault proxy (its latency, its counts)."""
    import boto3  # pylint: disable=import-outside-toplevel

    environment = lab.state["environment"]
    return boto3.client("ec2", region_name=lab.state["region"], endpoint_url=lab.state["aws_endpoint_url"],
                        aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])


def set_ids(ec2, lab):
    """``{instance id: the id of its shadow set}``, looked up before the counters are reset."""
    sets = {}
    for instance in lab.state["instances"]:
        found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
            {"Name": "volume-id", "Values": [volume["volume_id"] for volume in instance["volumes"]]}])["Snapshots"]
        sets[instance["instance_id"]] = {tag["Value"] for snapshot in found for tag in snapshot.get("Tags", [])
                                         if tag["Key"] == SET_ID_TAG[len("tag:"):]}.pop()
    return sets


def timed_threads(lab, options, work, items):
    """``work(item)`` for every item, as many at once as the playbook has forks, the counters reset first:
    (the results, seconds, the benchmark process's CPU seconds)."""
    lab.reset_counts()
    lab.reset_host_counters()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(options.forks, len(items))) as pool:
        done = list(pool.map(work, items))
    elapsed = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_SELF)
    return done, elapsed, (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)


def by_hand_figures(lab, hosts, elapsed, cpu, consistency, instance_stopped):
    """The figures of a row written with boto3 by hand: no playbook, so no tasks."""
    result = {"hosts": hosts, "wall_seconds": elapsed, "cpu_seconds_per_host": cpu / hosts,
              "consistency": consistency, "instance_stopped": instance_stopped, "tasks_per_host": 0.0}
    result.update(ec2_figures(lab, hosts))
    result.update(winrm_figures(lab, hosts))
    return result


def measure_stop_swap_start(lab, hosts, work_dir, options):
    """The baseline on the same lab: boto3 through the fault proxy, one thread per instance."""
    seed_backed_up_fleet(lab, hosts, work_dir, options.forks)
    with_latency(lab, options)
    ec2 = proxied_ec2_client(lab)
    sets = set_ids(ec2, lab)
    created, elapsed, cpu = timed_threads(lab, options, lambda item: hand_written_restore(ec2, *item), list(sets.items()))
    if sum(len(volumes) for volumes in created) != hosts * len(VOLUMES):
        raise RuntimeError("the hand-written restore did not restore every volume: %s" % created)
    return by_hand_figures(lab, hosts, elapsed, cpu, "crash", "yes")


FINANCE = "D:\\Shares\\Finance"
FINANCE_FILES = {"\\q1.xlsx": "q1-figures", "\\2025\\q4.xlsx": "q4-figures" * 40, "\\2025\\audit\\notes.txt": "notes" * 200}
CLERK = "S-1-5-21-1-2-3-1104"
RESTORED_SUBNET = "172.31.200.0/24"
# The new instance of a restore: at its private IP, reached by the lab at 127.x.y.z of it (lab.windows.restored).
RESTORED_IP, BY_HAND_IP = "172.31.200.10", "172.31.200.11"


def seed_finance(lab):
    """D:\\Shares\\Finance on every host: files of their own size, an owner, a protected folder, their own times."""
    for host in lab.state["windows_hosts"]:
        for relative, text in FINANCE_FILES.items():
            lab.write_file(host["name"], FINANCE + relative, text)
        lab.set_file_info(host["name"], FINANCE, owner=CLERK, protected=True,
                          aces=[{"identity": CLERK, "rights": "Modify", "type": "Allow",
                                 "inheritance": "ContainerInherit, ObjectInherit"}],
                          created="2024-01-02T03:04:05Z", modified="2025-06-01T00:00:00Z")
        lab.set_file_info(host["name"], FINANCE + "\\q1.xlsx", created="2025-01-05T10:00:00Z",
                          modified="2025-04-01T09:30:00Z")


def measure_files(lab, hosts, work_dir, options):
    """``restore_mode: files`` of D:\\Shares\\Finance, deleted after the shadow backup, on every host itself."""
    inventory = seed_backed_up_fleet(lab, hosts, work_dir, options.forks, before_backup=seed_finance)
    for host in lab.state["windows_hosts"]:
        lab.remove_files(host["name"], FINANCE)
    with_latency(lab, options)
    result, report = run_restore(lab, hosts, inventory, work_dir, options, restore_mode="files",
                                 restore_files=[FINANCE], restore_volumes=[], restore_allow_resign=True)
    wanted = (len(FINANCE_FILES), sum(len(text) for text in FINANCE_FILES.values()))
    for host in report["hosts"]:
        (copied,) = host["files"]
        if (copied["status"], copied["files_copied"], copied["bytes_copied"]) != ("copied",) + wanted:
            raise RuntimeError("the files restore did not copy Finance back: %s" % host)
        if host["cleanup"]["left_volume_ids"]:
            raise RuntimeError("the files restore left volumes behind: %s" % host["cleanup"])
        landed = {relative: base64.b64decode(lab.read_file(host["worker"], copied["destination"] + relative)["base64"])
                  for relative in FINANCE_FILES}
        if landed != {relative: text.encode() for relative, text in FINANCE_FILES.items()} or lab.file_info(
                host["worker"], copied["destination"])["owner"] != CLERK:
            raise RuntimeError("Finance did not land byte for byte with its owner in %s" % copied["destination"])
    return result


def hand_written_attach(ec2, instance_id, set_id, volume_id, device="xvdp"):
    """The EC2 half of a file restore by hand: a volume from the snapshot of the volume holding the folder, attached to
    the instance, and after the copy detached and deleted. The copy itself (disk online, its signature collision,
    the shadow copy exposed, robocopy) is a user's work in Windows and is not scripted here."""
    (snapshot,) = ec2.describe_snapshots(OwnerIds=["self"], Filters=[
        {"Name": SET_ID_TAG, "Values": [set_id]}, {"Name": "volume-id", "Values": [volume_id]}])["Snapshots"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    volume = volumes_from(ec2, [snapshot], instance["Placement"]["AvailabilityZone"])[snapshot["VolumeId"]]
    ec2.attach_volume(VolumeId=volume, InstanceId=instance_id, Device=device)
    ec2.get_waiter("volume_in_use").wait(VolumeIds=[volume], WaiterConfig=WAITER_CONFIG)
    ec2.detach_volume(VolumeId=volume, InstanceId=instance_id)
    ec2.get_waiter("volume_available").wait(VolumeIds=[volume], WaiterConfig=WAITER_CONFIG)
    ec2.delete_volume(VolumeId=volume)
    return volume


def measure_files_by_hand(lab, hosts, work_dir, options):
    """The EC2 half of the by-hand file restore (``hand_written_attach``), one thread per instance; no copy."""
    seed_backed_up_fleet(lab, hosts, work_dir, options.forks, before_backup=seed_finance)
    with_latency(lab, options)
    ec2 = proxied_ec2_client(lab)
    sets = set_ids(ec2, lab)
    d_volumes = {instance["instance_id"]: next(v["volume_id"] for v in instance["volumes"] if v.get("drive") == "D:")
                 for instance in lab.state["instances"]}
    created, elapsed, cpu = timed_threads(
        lab, options, lambda item: hand_written_attach(ec2, item[0], item[1], d_volumes[item[0]]), list(sets.items()))
    if len(set(created)) != hosts:
        raise RuntimeError("the by-hand attach did not run on every instance: %s" % created)
    return by_hand_figures(lab, hosts, elapsed, cpu, "none (no copy)", "no")


def restored_subnet(lab):
    """A subnet of the default VPC for the new instance, in a zone the fleet is not in."""
    ec2 = lab.ec2()
    zone = lab.state["instances"][0]["availability_zone"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    return ec2.create_subnet(VpcId=vpc, CidrBlock=RESTORED_SUBNET,
                             AvailabilityZone="us-east-1b" if zone != "us-east-1b" else "us-east-1c")["Subnet"]


def loopback_of(private_ip):
    return "127." + private_ip.split(".", 1)[1]


def seed_whole_set(lab, work_dir, options):
    """One host with a shadow set of every volume (C: included) and a subnet elsewhere: (inventory, subnet)."""
    inventory = seed_backed_up_fleet(lab, 1, work_dir, options.forks, backup_include_boot=True)
    return inventory, restored_subnet(lab)


def measure_instance(lab, hosts, work_dir, options):
    """``restore_mode: instance`` of the host's whole set into another zone's subnet with another instance type."""
    inventory, subnet = seed_whole_set(lab, work_dir, options)
    with_latency(lab, options)
    result, report = run_restore(
        lab, hosts, inventory, work_dir, options, instance_stopped="the new one, once", restore_mode="instance",
        restore_volumes=[],
        restore_instance_subnet_id=subnet["SubnetId"], restore_instance_type="m5.2xlarge",
        restore_instance_private_ip=RESTORED_IP, restore_instance_boot_timeout=120,
        restore_instance_host_vars={"ansible_host": loopback_of(RESTORED_IP)})
    (host,) = report["hosts"]
    if (host["consistency"], host["root_consistency"]) != ("application", "crash"):
        raise RuntimeError("the instance restore did not revert the data volumes: %s" % host)
    return result


def hand_written_instance(ec2, instance_id, set_id, subnet):
    """AWS's documented approach for a Windows root, as a user writes it with boto3: launch from the original's AMI,
    stop, create the set's volumes in the new zone, detach the launch's volumes (and delete them), attach the set's
    at the original's devices, start. No revert of the embedded shadow copies: crash-consistent."""
    snapshots = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": SET_ID_TAG, "Values": [set_id]}])["Snapshots"]
    original = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    devices = {mapping["Ebs"]["VolumeId"]: mapping["DeviceName"] for mapping in original["BlockDeviceMappings"]}
    new = ec2.run_instances(ImageId=original["ImageId"], InstanceType="m5.2xlarge", SubnetId=subnet["SubnetId"],
                            PrivateIpAddress=BY_HAND_IP, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    ec2.get_waiter("instance_running").wait(InstanceIds=[new], WaiterConfig=WAITER_CONFIG)
    ec2.stop_instances(InstanceIds=[new])
    ec2.get_waiter("instance_stopped").wait(InstanceIds=[new], WaiterConfig=WAITER_CONFIG)
    created = volumes_from(ec2, snapshots, subnet["AvailabilityZone"])
    launched = [mapping["Ebs"]["VolumeId"] for mapping in ec2.describe_instances(
        InstanceIds=[new])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]]
    for volume_id in launched:
        ec2.detach_volume(VolumeId=volume_id, InstanceId=new)
    if launched:
        ec2.get_waiter("volume_available").wait(VolumeIds=launched, WaiterConfig=WAITER_CONFIG)
    for volume_id in launched:
        ec2.delete_volume(VolumeId=volume_id)
    attach_and_start(ec2, new, created, devices)
    return created


def measure_instance_by_hand(lab, hosts, work_dir, options):
    """The by-hand instance restore (``hand_written_instance``) of the same kind of set into the same kind of subnet."""
    dummy_inventory, subnet = seed_whole_set(lab, work_dir, options)
    with_latency(lab, options)
    ec2 = proxied_ec2_client(lab)
    sets = set_ids(ec2, lab)
    created, elapsed, cpu = timed_threads(
        lab, options, lambda item: hand_written_instance(ec2, item[0], item[1], subnet), list(sets.items()))
    if len(created[0]) != len(lab.state["instances"][0]["volumes"]):
        raise RuntimeError("the by-hand instance restore did not restore every volume: %s" % created)
    return by_hand_figures(lab, hosts, elapsed, cpu, "crash", "the new one, once")


# (label, function) per row; the table has each at 1 host and at the fleet's size.
ROWS = [
    ("in place (ours)", measure_in_place),
    ("stop, swap, start (boto3, by hand)", measure_stop_swap_start),
]
# (label, function) per row measured at 1 host only (see SINGLE_HOST_WHY).
SINGLE_HOST_ROWS = [
    ("files (ours)", measure_files),
    ("files: attach, detach by hand (boto3, no copy)", measure_files_by_hand),
    ("instance (ours)", measure_instance),
    ("instance: launch, stop, swap, start (boto3, by hand)", measure_instance_by_hand),
]


def why_mutating_misses(result, hosts):
    """The paragraph that says, with the run's figures, why the mutating calls per volume exceed the goal."""
    by_action = result["by_action"]
    volumes = hosts * len(VOLUMES)
    per_volume = sum(by_action.get(action, 0) for action in ("CreateVolume", "DetachVolume", "AttachVolume")) / float(volumes)
    tags = by_action.get("CreateTags", 0)
    return [
        "Why the mutating calls per volume miss the goal: of the %.1f per volume of the %d-host run, %.1f are" % (
            result["mutating_per_volume"], hosts, per_volume),
        "`CreateVolume`, `DetachVolume` and `AttachVolume` (one each per volume: EC2 has no call that swaps or moves",
        "several volumes, and the restored volumes are tagged in their `CreateVolume`). The rest is `CreateTags`, %d calls"
        % tags,
        "for %d hosts (%.1f per host): the two records the restore keeps, each one call for every volume of the host - the"
        % (hosts, tags / float(hosts)),
        "originals tagged with what replaces them *before* they are detached (so that a rollback, or a re-run after a",
        "killed controller, finds them whatever happens next), and the restored volumes tagged `application` *after* the",
        "revert (only then is it true). Neither can be written earlier or merged with the other without giving up one of",
        "those guarantees, so the floor is 3 + 2/n calls per volume for n volumes per host: 4.0 for this run's 2 volumes",
        "(3.5 for 4). The hand-written restore needs 3 per volume plus StopInstances and StartInstances per instance,",
        "and keeps no record at all.",
        "",
    ]


def figures_table(columns, per_volume):
    """The figures of ``columns`` ((label, size, result) each): (the main table, the EC2 calls per action); the
    mutating calls also per restored volume when every column restores D:+E:."""
    header = " | ".join("%d host%s: %s" % (size, "" if size == 1 else "s", label) for label, size, dummy in columns)

    def row(name, cell):
        return "| %s | " % name + " | ".join(cell(result) for dummy, dummy_size, result in columns) + " |"

    main = [
        "| | " + header + " |",
        "|---|" + "---:|" * len(columns),
        row("consistency reached", lambda r: r["consistency"]),
        row("instance stopped", lambda r: r["instance_stopped"]),
        row("wall time (s)", lambda r: "%.1f" % r["wall_seconds"]),
        row("controller CPU seconds per host", lambda r: "%.2f" % r["cpu_seconds_per_host"]),
        row("tasks run per host (mean)", lambda r: "%.1f" % r["tasks_per_host"]),
        row("mutating EC2 calls per host", lambda r: "%.1f" % r["mutating_per_host"]),
    ] + ([row("mutating EC2 calls per volume", lambda r: "%.1f" % r["mutating_per_volume"])] if per_volume else []) + [
        row("EC2 API calls per host", lambda r: "%.1f" % r["api_calls_per_host"]),
        row("WinRM round trips per host (agent requests, max)", lambda r: "%d" % r["round_trips_max"]),
        row("WinRM round trips per host (mean)", lambda r: "%.1f" % r["round_trips_mean"]),
        row("WinRM HTTP requests per host (mean)", lambda r: "%.1f" % r["winrm_requests_mean"]),
        "",
    ]
    by_action = ["| action | " + header + " |", "|---|" + "---:|" * len(columns)]
    for action in sorted(set().union(*(result["by_action"] for dummy, dummy_size, result in columns))):
        by_action.append("| %s%s | " % (action, "" if not is_mutating(action) else " (mutating)") + " | ".join(
            "%d" % result["by_action"].get(action, 0) for dummy, dummy_size, result in columns) + " |")
    by_action.append("")
    return main, by_action


def single_host_section(options):
    """What the files and instance rows restore, beside what a user does by hand, and why at 1 host only."""
    return [
        "## Files and instance restore",
        "",
        "Same run, same lab and latency; each column on a freshly seeded host (the SQL-like fleet's first), at **1 host**:",
        "a restored instance is a whole simulated Windows Server of its own in the lab, and the new instances of a fleet",
        "would each need their own private IP (and so their own inventory entry), which this benchmark does not model;",
        "the file restore at fleet size was not run either, to keep the run small on the loaded machine. The WinRM",
        "latency is on the seeded host's endpoint; the new instance's endpoint (lab.windows.restored) answers without it.",
        "",
        "- **files** (ours): `restore_mode: files`, `restore_files: [\"%s\"]`, on the host itself" % FINANCE.replace("\\", "\\\\"),
        "  (`restore_allow_resign: true`: the clone's disk ids collide with the live D:'s), the folder (%d files, an owner,"
        % len(FINANCE_FILES),
        "  a protected ACL and its own times) deleted after the shadow backup of D:+E:: D:'s volume restored and attached,",
        "  its embedded shadow copy exposed read-only, the folder copied with its ACLs and times into",
        "  `C:\\shadowsnap-restore\\files\\...`, the volume detached and deleted. Checked: every file and byte copied, no",
        "  volume left.",
        "- **files: attach, detach by hand** (boto3, no copy; `hand_written_attach`): the EC2 half of what a user does by",
        "  hand: CreateVolume from D:'s snapshot, AttachVolume, then DetachVolume and DeleteVolume, with waiters. There",
        "  is no scripted by-hand copy: in Windows it is the disk brought online with its signature collision resolved,",
        "  the shadow copy inside it exposed with diskshadow, `robocopy /COPYALL` and the disk taken offline again - an",
        "  interactive admin's work this benchmark does not write for them, so that column has no WinRM figures and",
        "  reaches no consistency (nothing is copied).",
        "- **instance** (ours): `restore_mode: instance` of a shadow set of every volume (C:, D:, E:) into a subnet of",
        "  another zone with another instance type: launched from the original's AMI, stopped, the set's volumes swapped",
        "  in, started, Windows on the new instance reached, D: and E: online and reverted to their embedded shadow copies",
        "  (C: stays crash-consistent: it is the system volume). Checked: data volumes `application`, root `crash`.",
        "- **instance: launch, stop, swap, start** (boto3, by hand; `hand_written_instance`): AWS's documented approach for",
        "  a Windows root volume, as a user writes it: RunInstances from the original's AMI, StopInstances, CreateVolume",
        "  per snapshot in the new zone, DetachVolume and DeleteVolume of the launch's volumes, AttachVolume of the set's",
        "  at the original's devices, StartInstances, with waiters. No revert: crash-consistent only.",
        "",
    ]


def render(results, options, command, total_seconds):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    columns = [(label, size, results[(label, size)]) for label, dummy in ROWS for size in (1, options.instances)]
    main_table, by_action_table = figures_table(columns, per_volume=True)
    single_table, single_by_action = figures_table(
        [(label, 1, results[(label, 1)]) for label, dummy in SINGLE_HOST_ROWS], per_volume=False)

    ours_single = results[(ROWS[0][0], 1)]
    ours_fleet = results[(ROWS[0][0], options.instances)]
    mutating = max(ours_single["mutating_per_volume"], ours_fleet["mutating_per_volume"])
    round_trips = max(ours_single["round_trips_max"], ours_fleet["round_trips_max"])
    lines = [
        "# Benchmark: restores (restore role) vs. what a user does by hand",
        "",
        "## In-place restore",
        "",
        "Measured %s UTC on %s (%d cores, Python %s) by `%s` (in `make bench`), %.0f s in all." % (
            now, platform.machine(), os.cpu_count() or 0, platform.python_version(), command, total_seconds),
        "Every figure of this page was measured on a loaded 2-core machine (other test runs sharing its cores): the wall",
        "and CPU times carry that load, the counts of EC2 calls, tasks and WinRM round trips do not.",
        "",
        "Lab (docs/lab.md, docs/lab-windows.md): moto behind the fault proxy with **%d ms** emulated latency per EC2 call;"
        % options.ec2_latency_ms,
        "simulated Windows Server 2022 hosts (SQL \"application\": SqlServerWriter, data on D:, logs on E:) behind real WinRM",
        "endpoints with **%d ms** emulated latency on every WinRM HTTP request. Each column restores D:+E: of every host from"
        % options.winrm_latency_ms,
        "a shadow set of D:+E: taken just before by `ansible-playbook shadowsnap.ec2.backup`, on a freshly seeded fleet, in",
        "the same run (`-f %d` / %d threads for the fleet). The lab's EBS transitions and instance stop/start are instant, so"
        % (options.forks, options.forks),
        "wall time is controller-side time plus the emulated latency, apart from EBS's own waits (in AWS: seconds to",
        "minutes per volume; a Windows instance's stop and start: minutes).",
        "",
        "- **in place** (ours): `ansible-playbook shadowsnap.ec2.restore` with `restore_mode: in_place`,",
        "  `restore_volumes: [\"D:\", \"E:\"]`: services stopped, originals offline, swapped (kept, tagged), restored disks",
        "  online, reverted to the shadow copies stored in them, services started, verified. The instance keeps running.",
        "- **stop, swap, start** (the baseline): AWS's sample approach written with boto3 (`hand_written_restore` in",
        "  tests/benchmarks/bench_restore.py): StopInstances, CreateVolume per snapshot, DetachVolume of every original,",
        "  AttachVolume at its device, StartInstances, with waiters (1 s delay). It never talks to Windows: the volumes hold",
        "  the EBS crash image, the shadow copies inside them are not reverted, so a `shadow` set restored this way is",
        "  crash-consistent only, and the instance is down for the whole restore.",
        "",
    ] + main_table + [
        "Goals, judged on the in-place rows (the worse of 1 host and %d hosts):" % options.instances,
        "",
        "| goal | measured | |",
        "|---|---:|---|",
        "| mutating EC2 calls per volume <= %d | %.1f | %s |" % (
            GOAL_MUTATING_PER_VOLUME, mutating, goal(mutating <= GOAL_MUTATING_PER_VOLUME)),
        "| WinRM round trips per host <= %d | %d | %s |" % (GOAL_ROUND_TRIPS, round_trips, goal(round_trips <= GOAL_ROUND_TRIPS)),
        "",
    ]
    if mutating > GOAL_MUTATING_PER_VOLUME:
        lines += why_mutating_misses(ours_fleet, options.instances)
    lines += [
        "How it is measured:",
        "",
        "- *Mutating EC2 calls*: every call the fault proxy counted in the run (`LabClient.counts()`, reset before it) whose",
        "  action is not a Describe/Get/List, per host and (in-place rows) per restored volume (2 per host).",
        "- *WinRM round trips*: the agent requests each endpoint answered (`LabClient.host_counters()[host][\"agent\"]",
        "  [\"round_trips\"]`, reset before the run), summed over every endpoint (a restored instance's included) per",
        "  restored host; the max is the busiest endpoint's. One round trip is several WinRM HTTP requests.",
        "- *Wall time*: ours, the whole `ansible-playbook` process, start-up included; the baseline, from the first call to",
        "  the last instance running.",
        "- *Controller CPU seconds*: ours, user plus system time of `ansible-playbook` and every process it started",
        "  (`getrusage(RUSAGE_CHILDREN)`); the baseline, the benchmark process's own (`RUSAGE_SELF`) while its threads ran.",
        "- *Tasks run per host*: `tests/benchmarks/callback_plugins/bench_counts.py` (skipped tasks not counted).",
        "",
        "EC2 calls per action:",
        "",
    ] + by_action_table + single_host_section(options) + single_table + [
        "EC2 calls per action (files and instance):",
        "",
    ] + single_by_action
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--ec2-latency-ms", type=int, default=50)
    parser.add_argument("--winrm-latency-ms", type=int, default=50)
    parser.add_argument("--no-save", action="store_true", help="print only; keep docs/benchmarks as it is")
    options = parser.parse_args(argv)
    command = " ".join(["cd tests && ../.venv/bin/python -m benchmarks.bench_restore"] + list(sys.argv[1:] if argv is None else argv))
    began = time.monotonic()
    results = {}
    with bench_lab("shadowsnap-bench-restore-") as (lab, work_dir):
        for label, measure in ROWS:
            for size in (1, options.instances):
                results[(label, size)] = measure(lab, size, work_dir, options)
                sys.stderr.write("%s, %d hosts: %.1f s\n" % (label, size, results[(label, size)]["wall_seconds"]))
        for label, measure in SINGLE_HOST_ROWS:
            results[(label, 1)] = measure(lab, 1, work_dir, options)
            sys.stderr.write("%s, 1 host: %.1f s\n" % (label, results[(label, 1)]["wall_seconds"]))
    report = render(results, options, command, time.monotonic() - began)
    publish(report, REPORT, save=not options.no_save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
