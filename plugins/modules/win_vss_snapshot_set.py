#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# This file only documents the action plugin plugins/action/win_vss_snapshot_set.py, which does the work on the
# controller (as ansible.windows documents its action plugins).

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: win_vss_snapshot_set
short_description: Hold an application-consistent VSS shadow copy set on Windows while EBS snapshots are taken
version_added: 0.1.0
description:
  - The C(shadow) consistency engine of the collection. Creates a persistent VSS shadow copy set with writers on a
    Windows Server host (C(diskshadow), the built-in system provider), so that the EBS snapshots taken afterwards
    carry an application-consistent shadow copy inside each volume; then releases the session and deletes the shadow
    copies.
  - A backup is O(state=present) with O(ebs_snapshot_set) - the shadow set, the EBS snapshot set of exactly its
    volumes and the proof that the EBS set holds it (RV(verified)) in one task - then O(state=completed), which
    releases the session (a V(full) backup sends BackupComplete only now, after the proof) and deletes the shadow
    copies. Without O(ebs_snapshot_set), O(state=present) returns RV(run_id), RV(ebs_volume_ids) and
    RV(ec2_volume_metadata) for M(shadowsnap.ec2.ec2_snapshot_set), and the release's RV(shadows_verified) is the proof.
    On failure in between, O(state=aborted) releases without BackupComplete and deletes the shadow copies.
  - The pre-flight is one round trip - the host (Windows Server with diskshadow), the disks and their EBS volumes, the
    VSS writers with the volumes their components touch, the existing shadow copies. It checks that every volume is
    NTFS and on EBS, that each volume's shadow storage (diff area) is on the volume itself (or in the set) and has
    O(min_diff_area_free) left, that the set splits no disk (a dynamic or Storage Spaces volume, or a second
    partition, sharing an EBS volume is added), that no writer component is cut in two by the set, and that the
    required writers are listed and V(STABLE). Every problem is reported with its fix; nothing changes on the host.
  - A required writer must be V(STABLE) before the freeze. One in a V(WAITING_FOR_*) state (another backup is running,
    or a requester left its session open) is never restarted; the writers are listed again after
    O(in_progress_delay), up to O(in_progress_retries) times, and the task fails if it still waits. A failed one fails
    the task, or has its service restarted with O(restart_failed_writers=true).
  - diskshadow runs detached as SYSTEM through a scheduled task, with C(writer verify) for the required writers, so
    it fails rather than silently dropping one - a writer required per component (the default) is verified by its
    components on the set, so SQL Server's C(master) on V(C:) does not fail a backup of V(D:) and V(E:). SYSTEM runs
    what is written to C(%ProgramData%\shadowsnap), where any local user may create folders, so no session starts, and
    check mode fails as the run would, while a folder of that tree is owned by another account than SYSTEM or
    Administrators, is a reparse point, or gives another account an explicit access entry; the message names each
    folder and how to fix it. Every wait is bounded (O(session_timeout), O(hold_timeout), the task's execution time
    limit); a controller that dies leaves a session that ends by itself, and the next run cleans it up
    (O(cleanup_leftovers)). Once C(session_start) was sent, any failure (a lost answer too) aborts the session and the
    result carries RV(run_id).
  - No AWS call and no AWS credentials are needed on the host; with O(ebs_snapshot_set) the controller takes the EBS
    snapshots itself.
  - See the collection's C(docs/engines.md) for the guarantees and limits, and C(docs/troubleshooting.md) for every
    HRESULT and writer state.
options:
  state:
    description:
      - V(present) creates a shadow copy set and holds it (V(full)) or leaves it (V(copy)) for the EBS snapshots.
      - V(completed) releases the session of O(run_id) with C(ok) - a V(full) backup sends BackupComplete now - and
        deletes its shadow copies unless O(keep_shadows=true). It also proves that every shadow copy still existed
        at the release, so every EBS snapshot taken in between holds it (RV(shadows_verified)); a task that took the
        EBS set itself (O(ebs_snapshot_set)) has proven that already (RV(verified)).
      - V(aborted) releases the session of O(run_id) with C(abort) (no BackupComplete) and deletes its shadow copies.
      - V(absent) deletes the shadow copies of O(shadow_set_id) and/or of the session O(run_id).
    type: str
    choices: [present, completed, aborted, absent]
    default: present
  volumes:
    description:
      - Volumes to put in the set, as drive letters (V(D), V(D:), V(D:\\)), mount point paths (V(C:\\mnt\\logs)) or
        volume GUID paths. May be combined with O(writers) and O(all_data_volumes).
    type: list
    elements: str
    default: []
  writers:
    description:
      - Writers (names as VSS lists them, or writer ids) whose volumes are put in the set - every volume any of their
        components touches. These writers are required as a whole.
    type: list
    elements: str
    default: []
  all_data_volumes:
    description:
      - Put every data volume in the set - fixed, NTFS, on EBS, with a drive letter or a mount point, not the boot or
        system volume. What is left out is returned in RV(skipped_volumes) with the reason.
    type: bool
    default: false
  backup_type:
    description:
      - V(copy) (a VSS copy backup) leaves the applications' backup history alone - SQL Server's differential and log
        chain is untouched; diskshadow ends right after C(create).
      - V(full) keeps the session open (writers wait in V(WAITING_FOR_BACKUP_COMPLETE)) until O(state=completed), and
        then sends BackupComplete (SQL Server records a full backup; Exchange truncates its logs).
    type: str
    choices: [copy, full]
    default: copy
  required_writers:
    description:
      - Writers that must take part (names or writer ids). They must be listed and V(STABLE), every volume they touch
        must be in the set, and diskshadow gets C(writer verify) for each.
      - When not given, the application writers (every writer but the operating system's own, such as System Writer,
        Registry Writer, ASR Writer, WMI Writer) with a component on the set are required, per component - a component
        that touches the set must have all its volumes in it; components wholly outside the set are left out of this
        backup and reported in RV(excluded_components). An application writer that is not healthy and lists no
        components (V(FAILED_AT_IDENTIFY) - its metadata is missing) is required too, since the volumes it needs are
        unknown - the set cannot be application-consistent until it identifies again (O(restart_failed_writers)) or
        is left out with O(exclude_writers).
      - V([]) requires no writer (no C(writer verify)).
    type: list
    elements: str
  exclude_writers:
    description:
      - Writers to leave out (C(writer exclude)); they are never required.
    type: list
    elements: str
    default: []
  restart_failed_writers:
    description:
      - When a required writer is failed, restart its service (from the collection's writer-to-service table) and list
        the writers again, instead of failing. Costs two more round trips.
    type: bool
    default: false
  add_storage_volumes:
    description:
      - When a volume's shadow storage (diff area) is on another volume, add that volume to the set. Otherwise the
        task fails and says how to move the diff area onto the volume itself.
    type: bool
    default: false
  add_companion_volumes:
    description:
      - Add the volumes that share an EBS volume with a volume of the set (the other members of a dynamic or Storage
        Spaces volume, a second partition of a disk). The EBS snapshot of that disk captures them, so they must be in
        the shadow set. V(false) fails naming them instead. Partitions without a drive letter or mount point (EFI,
        recovery) are never added; they are listed in RV(unshadowed_volumes).
    type: bool
    default: true
  min_diff_area_free:
    description:
      - The shadow storage space each volume must have left - bytes, a size with a binary unit (V(500MB), V(2GB)), or
        a percentage of the volume (V(10%)).
    type: str
    default: 1GB
  run_id:
    description:
      - The session to act on (RV(run_id) of O(state=present)). Required with O(state=completed) and O(state=aborted).
    type: str
  shadow_set_id:
    description:
      - The shadow copy set whose shadow copies O(state=absent) deletes.
    type: str
  keep_shadows:
    description:
      - With O(state=completed) (or O(release_when_proven)), keep the shadow copies on the host. They are then yours to
        delete (O(state=absent)), and the leftover clean-up leaves them alone.
    type: bool
    default: false
  release_when_proven:
    description:
      - With O(state=present) and O(ebs_snapshot_set), finish the backup in the same task once the EBS snapshot set is
        proven to hold the shadow set (RV(verified)) - what O(state=completed) and then
        M(shadowsnap.ec2.ec2_snapshot_set) with O(shadowsnap.ec2.ec2_snapshot_set#module:consistency=application)
        would do, without two more tasks and a module run per host - release the session with C(ok) (BackupComplete
        for a V(full) backup; shadow copies deleted unless O(keep_shadows)), then record the set V(application) with
        one C(CreateTags) call (RV(ebs_set.consistency)).
      - A release that fails fails the task with RV(session_state) other than V(completed), the set left
        V(unverified) - abort it with O(state=aborted). A release that succeeds followed by a record that fails
        fails the task with RV(session_state=completed); the set stays V(unverified) until a later run settles it.
    type: bool
    default: false
    version_added: 0.1.0
  session_timeout:
    description:
      - Seconds diskshadow may take to create the set, and to end after a release. The session is aborted when
        creation takes longer.
    type: int
    default: 300
  hold_timeout:
    description:
      - Seconds a V(full) backup's session waits for O(state=completed); after that diskshadow quits without
        BackupComplete. The scheduled task's execution time limit is this plus O(session_timeout) plus 300 seconds.
      - With O(ebs_snapshot_set), for either backup type, the retries of C(CreateSnapshots) end within this time of
        the session start, less 60 seconds kept for the proof and the release; the first attempt is always made.
    type: int
    default: 600
  in_progress_retries:
    description:
      - How often to try again when another shadow copy set is being created on the host
        (C(VSS_E_SNAPSHOT_SET_IN_PROGRESS), or another session of this collection is running), and how often to list
        the writers again while a required writer is in a V(WAITING_FOR_*) state.
    type: int
    default: 10
  in_progress_delay:
    description:
      - Seconds between those tries.
    type: int
    default: 60
  writer_error_retries:
    description:
      - How often to try again after a transient writer failure (C(VSS_E_WRITERERROR_OUTOFRESOURCES),
        C(VSS_E_WRITERERROR_TIMEOUT), C(VSS_E_WRITERERROR_RETRYABLE), flush or hold timeouts). Microsoft advises up
        to 3 tries about 10 minutes apart.
    type: int
    default: 0
  writer_error_delay:
    description:
      - Seconds between those tries.
    type: int
    default: 600
  cleanup_leftovers:
    description:
      - Before starting, remove the sessions of earlier runs older than O(leftover_age) - stop their task, delete
        their shadow copies unless they were released V(ok), remove their run directory. Costs no extra round trip.
        RV(cleaned) lists them.
    type: bool
    default: true
  leftover_age:
    description:
      - Age in seconds from which an earlier run counts as left over (at least 60; the host also spares a run whose
        task is still running within its time limit).
      - Defaults to this run's task time limit plus 600 seconds, which never touches a live session of another
        controller; lower it only when no other controller backs up the host.
    type: int
  fetch_metadata:
    description:
      - A controller path to save the backup components document (C(backup.cab), the writers' metadata that
        application-level restores need). A directory (existing, or ending with a slash) gets C(<run_id>.cab).
        Fetched right after the set is created; one more round trip. When it fails, the session is aborted.
    type: path
  block_device_mappings:
    description:
      - The instance's block-device mapping (M(amazon.aws.ec2_instance_info)'s C(block_device_mappings), boto3's
        C(BlockDeviceMappings), or C(device)/C(volume_id) items). Needed on Xen instances to tell the EBS volume ids;
        without it Xen volumes are keyed by device name in RV(ec2_volume_metadata).
    type: list
    elements: dict
  ebs_snapshot_set:
    description:
      - With O(state=present), take the EBS snapshot set of the shadow set's volumes from inside this task, right
        after the shadow set exists, with one C(CreateSnapshots) call tagged with the collection's schema
        (consistency V(unverified), engine V(shadow), the shadow set id and each volume's shadow id), and prove that
        it holds the shadow set before the task returns - so before any BackupComplete (RV(verified),
        RV(verification)). The shadow set then waits for the EBS set inside one task, not until a later task runs,
        which matters across a fleet.
      - Before any freeze - EC2's answer to C(DescribeInstances) names the volume of each Xen device; a volume whose
        EBS volume id is still unknown, or a set whose tags would not fit, fails the task; a set id that already
        exists stops the task with nothing made (RV(existing_set), that set in RV(ebs_set)).
      - The set is exactly the shadow set's EBS volumes, never a default selection. Same tags, retries and
        lost-answer reconciliation as M(shadowsnap.ec2.ec2_snapshot_set), with the retries bounded by
        O(hold_timeout); the set is returned in RV(ebs_set). When the snapshot set cannot be taken or is not proven,
        the session is aborted (no BackupComplete, shadow copies deleted) and the task fails.
      - The AWS connection options (O(region), O(profile), O(endpoint_url)...) apply; the instance is the one the host
        reports (IMDSv2), which O(ebs_snapshot_set.instance_id) must agree with, and the Region follows O(region).
    type: dict
    suboptions:
      set_id:
        description:
          - The snapshot set id (idempotent, as in M(shadowsnap.ec2.ec2_snapshot_set)).
          - Defaults to the collection's one rule, the instance id and the UTC time to the second
            (C(i-0123456789abcdef0-20261125T013700Z)); RV(ebs_set_id) returns it.
        type: str
      instance_id:
        description:
          - The host's instance id, when its IMDS does not answer (else the host variable C(instance_id) is used).
        type: str
      include_boot:
        description:
          - Also put the boot volume (V(C:)) in the set. It is shadowed like any other member (its partitions without a
            drive letter are listed in RV(unshadowed_volumes)), so every member of the set holds its shadow copy.
        type: bool
        default: false
      policy:
        description: The retention policy name recorded on the set.
        type: str
        default: default
      awx_job_id:
        description:
          - The id of the AWX / Automation Controller job that runs the backup, recorded in the tags
            (C(shadowsnap:awx-job-id)). Omitted or empty, no tag is written.
        type: str
        version_added: 0.1.0
      tags:
        description: User tags added to every snapshot.
        type: dict
        default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.conn
  - ansible.builtin.action_common_attributes.flow
  - shadowsnap.ec2.windows_agent
  - shadowsnap.ec2.windows_agent.region
  - amazon.aws.common.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    details:
      - O(state=present) runs the pre-flight and returns the plan (volumes, writers, the generated diskshadow script,
        with O(ebs_snapshot_set) the EBS volumes and the set id after a read of EC2) without changing anything; the
        other states read the session or the shadow copies and say what would change.
  diff_mode:
    support: none
    details: The plan and the script in check mode take the place of a diff.
  platform:
    support: full
    platforms: windows
    details: Windows Server 2016 and later (diskshadow); client Windows is refused.
notes:
  - Round trips to the host - O(state=present) 2 (the pre-flight batch and C(session_start), which also waits for the
    set); +1 with O(ebs_snapshot_set) (the listing of the shadow copies after C(CreateSnapshots), for the proof); +1
    with O(fetch_metadata); +2 when O(restart_failed_writers) restarts a service; +1 per writers listing while a
    required writer waits for another backup; +1 per retry and per status poll when creation takes longer than 120
    seconds. O(state=completed), O(state=aborted) and O(state=absent) 1 each. A whole backup (present with
    O(ebs_snapshot_set), then completed) is 4, or 5 with the backup components document. RV(round_trips) counts them.
  - The proof (RV(verified)) rests on the order of the plugin's own calls and on the host's clock against EC2's,
    never on the controller's clock - no snapshot may start, by EC2's clock, more than 5 seconds (6 when EC2 gives
    whole seconds) before its shadow copy was created, by the host's. A host whose clock is further ahead fails the
    proof; resynchronise it (C(w32tm /resync)).
  - The shadow copies are persistent, not client-accessible, in the diff area of each volume - they travel inside the
    EBS snapshots. The restore reverts a restored volume to its shadow copy (or exposes it).
  - One shadow copy set is created at a time per host; another session of the collection that is still creating
    its set (or holding a V(full) backup) makes this one wait and retry (O(in_progress_retries)). Copy sessions can
    overlap once a set exists - diskshadow has ended, its shadow copies wait for their release.
  - Verified against the collection's lab only (a model of Windows Server and moto) - no real Windows Server or EC2
    yet; see the collection's C(docs/engines.md).
  - The writer-to-service table comes from vendor documentation; verify it for your product versions.
seealso:
  - module: shadowsnap.ec2.ec2_snapshot_set
  - module: shadowsnap.ec2.win_vss_writer_info
  - module: shadowsnap.ec2.win_ebs_disk_info
author:
  - shadowsnap.ec2 maintainers (@shadowsnap)
"""

EXAMPLES = r"""
- name: Create a shadow copy set of the SQL Server data and log volumes
  shadowsnap.ec2.win_vss_snapshot_set:
    volumes: ['D:', 'L:']
  register: shadow

- name: Snapshot exactly those EBS volumes while the shadow copies exist
  shadowsnap.ec2.ec2_snapshot_set:
    instance_id: "{{ shadow.instance_id }}"
    volume_ids: "{{ shadow.ebs_volume_ids }}"
    engine: shadow
    consistency: unverified
    backup_type: "{{ shadow.backup_type }}"
    shadow_set_id: "{{ shadow.shadow_set_id }}"
    volume_metadata: "{{ shadow.ec2_volume_metadata }}"
  delegate_to: localhost
  register: snapshots

- name: Release the session and delete the shadow copies
  shadowsnap.ec2.win_vss_snapshot_set:
    state: completed
    run_id: "{{ shadow.run_id }}"
  register: released

- name: A full backup of everything SQL Server touches, saving the writers' metadata
  block:
    - name: Create and hold the set
      shadowsnap.ec2.win_vss_snapshot_set:
        writers: [SqlServerWriter]
        backup_type: full
        restart_failed_writers: true
        fetch_metadata: "/var/backups/{{ inventory_hostname }}/"
      register: shadow

    - name: Snapshot the volumes
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ shadow.instance_id }}"
        volume_ids: "{{ shadow.ebs_volume_ids }}"
        engine: shadow
        consistency: unverified
        backup_type: full
        shadow_set_id: "{{ shadow.shadow_set_id }}"
        volume_metadata: "{{ shadow.ec2_volume_metadata }}"
      delegate_to: localhost

    - name: BackupComplete now that the snapshots exist
      shadowsnap.ec2.win_vss_snapshot_set:
        state: completed
        run_id: "{{ shadow.run_id }}"
  rescue:
    - name: Abort the session - no BackupComplete, shadow copies deleted
      shadowsnap.ec2.win_vss_snapshot_set:
        state: aborted
        run_id: "{{ shadow.run_id }}"
      when: shadow.run_id is defined

- name: Show the plan without changing anything
  shadowsnap.ec2.win_vss_snapshot_set:
    all_data_volumes: true
  check_mode: true
  register: plan

- name: Delete kept shadow copies
  shadowsnap.ec2.win_vss_snapshot_set:
    state: absent
    shadow_set_id: "{1f2e3d4c-0000-4000-8000-000000000001}"
"""

RETURN = r"""
run_id:
  description: The session id (C(ss-<UTC time>-<8 hex>)); pass it to O(state=completed) or O(state=aborted).
  returned: when a session was started or named
  type: str
  sample: ss-20261125T013700-0a1b2c3d
session_state:
  description:
    - V(starting), V(created) (a V(full) backup holding), V(completed) (diskshadow ended successfully), V(failed),
      V(missing) (no such session on the host), V(planned) in check mode, V(aborted) after a failure once the set
      existed (the EBS set, its proof, the metadata fetch).
  returned: always, except when the pre-flight fails
  type: str
  sample: created
backup_type:
  description: V(copy) or V(full).
  returned: success
  type: str
shadow_set_id:
  description: The VSS shadow copy set id.
  returned: when a set exists or was named
  type: str
  sample: "{1f2e3d4c-0000-4000-8000-000000000001}"
shadows_created_at:
  description:
    - When the controller learned that the shadow copy set exists, by the controller's clock (UTC, ISO 8601 with
      microseconds). For the record only - no proof rests on the controller's clock (see RV(verification)).
  returned: O(state=present)
  type: str
  sample: "2026-11-25T01:37:02.123456+00:00"
verified:
  description:
    - Whether the EBS snapshot set taken by this task (O(ebs_snapshot_set)) is proven to hold the shadow copy set -
      every check of RV(verification) holds. False with the reason when there was nothing to prove (no
      O(ebs_snapshot_set), check mode, an existing set id) or the proof failed (the task then fails).
  returned: O(state=present)
  type: bool
verification:
  description: The proof behind RV(verified).
  returned: O(state=present)
  type: dict
  contains:
    failures:
      description: Why the set is not verified, one line each; empty when it is.
      type: list
      elements: str
    checks:
      description:
        - Each check with C(name), C(ok) and C(detail) - V(members) (the set's snapshots are exactly the shadow set's
          EBS volumes, at least one), V(shadow_ids) (the set's shadow set id and each snapshot's shadow id),
          V(states) (no snapshot in C(error)), V(order) (C(CreateSnapshots) sent after the host reported the shadow
          set, the shadow copies listed after it returned), V(shadows_present) (every shadow copy still existed after
          every EBS point in time was fixed), V(host_clock) (no snapshot started, by EC2's clock, before its shadow
          copy was created, by the host's, within the tolerance).
      type: list
      elements: dict
    timeline:
      description:
        - Seconds since C(session_start) was sent, on the controller's monotonic clock, to the microsecond -
          C(session_started), C(set_reported), C(snapshots_requested), C(snapshots_returned), C(shadows_listed).
      type: dict
    clock_tolerance_seconds:
      description: How far the host's clock and EC2's may disagree.
      type: float
  sample: {"failures": [], "checks": [{"name": "members", "ok": true, "detail": "the set holds exactly the shadow set's
    EBS volumes: vol-0123456789abcdef0"}], "timeline": {"session_started": 0.0, "set_reported": 9.81234,
    "snapshots_requested": 9.812401, "snapshots_returned": 10.2, "shadows_listed": 10.2}, "clock_tolerance_seconds": 5.0}
ebs_set_id:
  description: The snapshot set id of O(ebs_snapshot_set) - the one given, or the default.
  returned: O(state=present) with O(ebs_snapshot_set), once EC2 was asked
  type: str
  sample: i-0123456789abcdef0-20261125T013700Z
existing_set:
  description: The snapshot set id already existed, so nothing was made; RV(ebs_set) is that set.
  returned: O(state=present) with O(ebs_snapshot_set) after the pre-flight
  type: bool
shadows:
  description: The shadow copy id of each volume, keyed by the volume's diskshadow path (V(D:), V(C:\\mnt\\logs)).
  returned: O(state=present)
  type: dict
  sample: {"D:": "{aaaaaaaa-0000-4000-8000-000000000002}"}
instance_id:
  description: The EC2 instance id the host reports (IMDSv2), null when IMDS does not answer.
  returned: O(state=present)
  type: str
  sample: i-0123456789abcdef0
ebs_set:
  description:
    - The EBS snapshot set taken with O(ebs_snapshot_set), in the shape M(shadowsnap.ec2.ec2_snapshot_set) returns
      (set id, snapshots with volume id, device, paths, shadow id and state, C(volume_snapshot_map), C(start_time));
      the set that already had the id with RV(existing_set).
  returned: O(state=present) with O(ebs_snapshot_set), once the set was taken or found
  type: dict
  contains:
    consistency:
      description:
        - What the set's tags say - V(unverified) until it is recorded, V(application) once O(release_when_proven)
          recorded it.
      type: str
ebs_volume_ids:
  description: The EBS volumes under the set's volumes - pass them to M(shadowsnap.ec2.ec2_snapshot_set) as C(volume_ids).
  returned: O(state=present)
  type: list
  elements: str
device_names:
  description: The EC2 device names of those volumes, where known.
  returned: O(state=present)
  type: list
  elements: str
ec2_volume_metadata:
  description:
    - Ready for M(shadowsnap.ec2.ec2_snapshot_set)'s C(volume_metadata) - keyed by EBS volume id (or by device name
      when the id is unknown), each with C(paths) (the Windows volumes on it) and C(shadow_id).
    - An EBS volume that holds several Windows volumes lists all their paths and the shadow id of the first; the shadow
      set id finds the others.
  returned: O(state=present)
  type: dict
  sample: {"vol-0123456789abcdef0": {"paths": ["D:\\"], "shadow_id": "{aaaaaaaa-0000-4000-8000-000000000002}"}}
volumes:
  description: The volumes of the set and why each is in it.
  returned: O(state=present) after the pre-flight
  type: list
  elements: dict
  contains:
    path:
      description: How diskshadow names the volume (V(D:) or a mount point).
      type: str
    unique_id:
      description: The volume GUID path.
      type: str
    paths:
      description: Drive root and mount points as the tag schema records them.
      type: list
      elements: str
    reasons:
      description: Why the volume is in the set (V(selected), V(touched by writer X), V(shares vol-... with D:), ...).
      type: list
      elements: str
    ebs_volume_ids:
      description: The EBS volumes under the volume.
      type: list
      elements: str
    diff_area:
      description: Its shadow storage - C(storage_path), C(same_volume), C(free_bytes), C(required_bytes), ...
      type: dict
    alias:
      description: The diskshadow alias.
      type: str
    shadow_id:
      description: Its shadow copy id.
      type: str
writers:
  description: Per writer that matters to this set - C(name), C(writer_id), C(required), C(rule) (V(writer),
    V(component) or V(unidentified)), C(included) (true, false, or null when unknown), C(reason) (diskshadow's own line when it left the
    writer out), C(excluded_components).
  returned: O(state=present) after the pre-flight
  type: list
  elements: dict
required_writers:
  description: The names of the writers diskshadow verifies.
  returned: O(state=present) after the pre-flight
  type: list
  elements: str
excluded_components:
  description: Components of writers on the set that are wholly outside it, so not part of this backup.
  returned: O(state=present) after the pre-flight
  type: list
  elements: dict
unshadowed_volumes:
  description: Partitions without a drive letter or mount point on the set's disks (EFI, recovery).
  returned: O(state=present) after the pre-flight
  type: list
  elements: dict
skipped_volumes:
  description: With O(all_data_volumes), the volumes left out and why.
  returned: O(state=present) after the pre-flight
  type: list
  elements: dict
preflight_problems:
  description: Every reason the set cannot be made, each with its fix.
  returned: when the pre-flight fails
  type: list
  elements: str
preflight_warnings:
  description: What did not stop the backup but deserves a look (waiting or failed writers that are not required...).
  returned: O(state=present) after the pre-flight
  type: list
  elements: str
script:
  description: The generated diskshadow script.
  returned: O(state=present)
  type: str
metadata:
  description: The backup components document - C(remote_path) on the host, and C(path), C(size), C(sha256) on the
    controller with O(fetch_metadata).
  returned: O(state=present)
  type: dict
release_deadline:
  description: With O(backup_type=full), when the session gives up waiting for O(state=completed) (UTC, ISO 8601).
  returned: O(state=present) with O(backup_type=full)
  type: str
failed_writers:
  description: The names of the required writers that were not V(STABLE) when the task gave up.
  returned: when writers are not ready
  type: list
  elements: str
would_restart_services:
  description: In check mode, the services O(restart_failed_writers) would restart.
  returned: in check mode, when a required writer is failed
  type: list
  elements: str
restarted_services:
  description: The services restarted for failed writers.
  returned: when O(restart_failed_writers) restarted one
  type: list
  elements: dict
attempts:
  description: Each session start - C(run_id), C(outcome), and for a retry the HRESULT and the delay.
  returned: O(state=present)
  type: list
  elements: dict
cleaned:
  description: Leftover sessions removed before starting (C(run_id), C(shadow_set_id), C(deleted_shadow_ids), C(error)).
  returned: O(state=present)
  type: list
  elements: dict
shadows_verified:
  description: Every shadow copy recorded at creation still existed at the release, so every EBS snapshot taken in
    between holds it. Null when it cannot be told (released before).
  returned: O(state=completed) and O(state=aborted)
  type: bool
missing_shadow_ids:
  description: Shadow copies that were gone at the release.
  returned: O(state=completed) and O(state=aborted)
  type: list
  elements: str
backup_complete_sent:
  description:
    - For a V(full) backup, whether diskshadow completed C(end backup) (BackupComplete) - also when O(state=aborted)
      finds a session an earlier O(state=completed) released; null for V(copy).
  returned: O(state=completed) and O(state=aborted)
  type: bool
decision:
  description: The release decision in effect on the host (V(ok) or V(abort); the first release stands).
  returned: O(state=completed) and O(state=aborted)
  type: str
present_shadow_ids:
  description: The set's shadow copies that existed at the release.
  returned: O(state=completed) and O(state=aborted)
  type: list
  elements: str
deleted_shadow_ids:
  description: The shadow copies deleted.
  returned: O(state=completed), O(state=aborted) and O(state=absent)
  type: list
  elements: str
diskshadow_log:
  description: diskshadow's output (verbose), when it failed.
  returned: on a diskshadow failure
  type: str
failure:
  description: The failure diskshadow printed - C(hresult), C(name), C(hresult_text), C(error_text), C(meaning), C(advice).
  returned: on a diskshadow failure with an HRESULT
  type: dict
hresult:
  description: The HRESULT of the failure, when there is one.
  returned: on failure
  type: int
hresult_name:
  description: Its symbolic name, such as V(VSS_E_PROVIDER_VETO).
  returned: on failure with a known HRESULT
  type: str
round_trips:
  description: Commands sent to the host by this task.
  returned: always
  type: int
  sample: 2
timings:
  description:
    - Seconds spent per phase (C(preflight), C(restart), C(wait) for waiting writers, C(create), C(ebs), C(verify),
      C(fetch), C(release), C(settle), C(delete), C(total)).
  returned: always
  type: dict
  sample: {"preflight": 4.2, "create": 11.9, "total": 16.3}
elapsed:
  description: Seconds the task took.
  returned: always
  type: float
"""
