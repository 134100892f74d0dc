# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Attaching, detaching and swapping restored volumes on an instance, and rolling a swap back, from the tags.

A move is a list of :class:`Move` (a device, the volume to take off it, the volume to put on it). Every move is
planned from what EC2 says now - the instance's block-device mapping, the volumes' states and tags - so a re-run
resumes where an interrupted one stopped. A swap first tags each volume it will take off with what replaces it
(``shadowsnap:replaced-by:<volume-id>``, docs/tag-schema.md), then detaches, then attaches: at any moment the tags say
how to put the instance back. Nothing here deletes a volume but :func:`delete_replaced`, which only the explicit
cleanup calls. A request that cannot be carried out as asked raises :class:`SwapError` before any change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.ec2 import AnsibleEC2Error
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible_collections.shadowsnap.ec2.plugins.module_utils import ec2_api
from ansible_collections.shadowsnap.ec2.plugins.module_utils import snapshot_tags
from ansible_collections.shadowsnap.ec2.plugins.module_utils.snapshot_sets import normalise_device

# AWS's recommended device names for EBS data volumes on Windows instances.
FREE_DEVICES = tuple("xvd%s" % letter for letter in "fghijklmnopqrstuvwxyz")
SETTLED_INSTANCE_STATES = ("running", "stopped")
# How often an attach or detach is sent again when its answer was lost and the volume shows it was not carried out.
RESEND_ATTEMPTS = 3


class SwapError(Exception):
    """A request that cannot be carried out as asked; nothing was changed. The message says what to change."""


class MoveFailed(Exception):
    """A move failed after it changed something; ``undone`` says whether the changes were put back."""

    def __init__(self, error, undone, undo_error=None):
        super().__init__(str(error))
        self.error = error
        self.undone = undone
        self.undo_error = undo_error


class Move:
    """On ``device``: take ``out_id`` off (None: the device is free) and put ``in_id`` on (None: leave it free)."""

    def __init__(self, device, out_id, in_id, action):
        self.device = device
        self.out_id = out_id
        self.in_id = in_id
        self.action = action

    def describe(self):
        return {"device": self.device, "detach": self.out_id, "attach": self.in_id, "action": self.action}


# ------------------------------------------------------------------------------------------------ reading EC2
def tags_of(volume):
    return boto3_tag_list_to_ansible_dict(volume.get("Tags", []))


def read_instance(client, instance_id):
    """The instance, or SwapError when it does not exist or is between states (its volumes cannot be moved then)."""
    instances = ec2_api.describe_instances(client, [instance_id])
    if not instances:
        raise SwapError("instance %s does not exist in this account and Region" % instance_id)
    state = instances[0].get("State", {}).get("Name")
    if state not in SETTLED_INSTANCE_STATES:
        raise SwapError("instance %s is %s; volumes can be moved only while it is running or stopped" % (instance_id, state))
    return instances[0]


def attachments_of(instance):
    """{normalised device: {device, volume_id, status}} of the instance's EBS volumes."""
    return dict(
        (normalise_device(mapping["DeviceName"]),
         {"device": mapping["DeviceName"], "volume_id": mapping["Ebs"]["VolumeId"],
          "status": mapping["Ebs"].get("Status", "attached")})
        for mapping in instance.get("BlockDeviceMappings", []) if "Ebs" in mapping
    )


def existing_volumes(client, volume_ids):
    """{volume id: volume} of those of the volumes that exist (a filter: an unknown id is left out, not an error)."""
    if not volume_ids:
        return {}
    filters = [{"Name": "volume-id", "Values": sorted(set(volume_ids))}]
    return dict((volume["VolumeId"], volume) for volume in ec2_api.describe_volumes(client, filters=filters))


def read_volumes(client, volume_ids):
    """{volume id: volume} in the order given; SwapError naming the volumes EC2 does not know."""
    found = existing_volumes(client, volume_ids)
    missing = sorted(set(volume_ids) - set(found))
    if missing:
        raise SwapError("volumes %s do not exist in this account and Region" % ", ".join(missing))
    return dict((volume_id, found[volume_id]) for volume_id in volume_ids)


def restored_data(volume):
    """The restore tags of a volume, or SwapError: only volumes restored from a set are moved by this module."""
    restored = snapshot_tags.decode_restored_volume(tags_of(volume))
    if restored is None:
        raise SwapError("volume %s was not restored from a snapshot set by this collection (it has no %s tag); only "
                        "restored volumes are attached, detached or swapped in"
                        % (volume["VolumeId"], snapshot_tags.KEY_RESTORE_ID))
    return restored


def replaced_on(client, instance_id):
    """Every volume a swap on this instance took off, with its entry: [{volume, volume_id (what replaced it), device,
    at}], newest swap first."""
    filters = [{"Name": "tag:" + snapshot_tags.KEY_REPLACED_ON, "Values": [instance_id]}]
    entries = []
    for volume in ec2_api.describe_volumes(client, filters=filters):
        entry = snapshot_tags.decode_replaced(tags_of(volume), volume["VolumeId"])
        if entry and entry["instance_id"] == instance_id:
            entries.append(dict(entry, volume=volume))
    return sorted(entries, key=lambda entry: entry["at"] or "", reverse=True)


def _attachment(volume):
    attachments = volume.get("Attachments") or []
    return attachments[0] if attachments else None


def _check_zone(volume, instance):
    zone = instance["Placement"]["AvailabilityZone"]
    if volume["AvailabilityZone"] != zone:
        raise SwapError("volume %s is in %s, instance %s in %s: a volume attaches only in its own zone (restore it "
                        "again to %s)" % (volume["VolumeId"], volume["AvailabilityZone"], instance["InstanceId"], zone, zone))


def _check_movable(instance, device):
    root = normalise_device(instance.get("RootDeviceName"))
    if normalise_device(device) == root and instance["State"]["Name"] == "running":
        raise SwapError("%s is the root device of running instance %s: EC2 detaches a root volume only from a stopped "
                        "instance" % (device, instance["InstanceId"]))


def _check_available(volume, instance_id):
    attachment = _attachment(volume)
    if attachment is not None:
        raise SwapError("volume %s is attached to %s at %s; detach it there first"
                        % (volume["VolumeId"], attachment["InstanceId"], attachment["Device"]))
    if volume["State"] != "available":
        raise SwapError("volume %s is %s, not available; run again once it is available (for %s)"
                        % (volume["VolumeId"], volume["State"], instance_id))


# ------------------------------------------------------------------------------------------------ planning
def plan_attach(instance, volumes, devices):
    """Moves that attach each restored volume at its given device or the next free one; ([moves], [unchanged])."""
    attached = attachments_of(instance)
    to_attach, unchanged = [], []
    for volume_id, volume in volumes.items():
        restored_data(volume)
        attachment = _attachment(volume)
        wanted = devices.get(volume_id)
        if attachment and attachment["InstanceId"] == instance["InstanceId"]:
            if wanted and normalise_device(wanted) != normalise_device(attachment["Device"]):
                raise SwapError("volume %s is attached to %s at %s, not %s"
                                % (volume_id, instance["InstanceId"], attachment["Device"], wanted))
            unchanged.append({"device": attachment["Device"], "volume_id": volume_id})
            continue
        _check_zone(volume, instance)
        _check_available(volume, instance["InstanceId"])
        to_attach.append(volume_id)
    used = set(attached)
    for volume_id in to_attach:
        wanted = devices.get(volume_id)
        if not wanted:
            continue
        if normalise_device(wanted) in used:
            holder = attached.get(normalise_device(wanted), {}).get("volume_id", "another volume of this run")
            raise SwapError("device %s of %s is in use by %s; choose a free device or leave it to the module"
                            % (wanted, instance["InstanceId"], holder))
        used.add(normalise_device(wanted))
    moves = []
    for volume_id in to_attach:
        device = devices.get(volume_id)
        if not device:
            free = [name for name in FREE_DEVICES if name not in used]
            if not free:
                raise SwapError("instance %s has no free device among %s-%s"
                                % (instance["InstanceId"], FREE_DEVICES[0], FREE_DEVICES[-1]))
            device = free[0]
            used.add(device)
        moves.append(Move(device, None, volume_id, "attach"))
    return moves, unchanged


def plan_detach(instance, volumes, gone=()):
    """Moves that detach each restored volume from the instance; ([moves], [unchanged]). The volumes ``gone`` (deleted
    already, by a cleanup that stopped halfway) are unchanged: nothing is attached of them."""
    moves, unchanged = [], [{"device": None, "volume_id": volume_id, "gone": True} for volume_id in gone]
    for volume_id, volume in volumes.items():
        restored_data(volume)
        attachment = _attachment(volume)
        if attachment is None:
            unchanged.append({"device": None, "volume_id": volume_id})
            continue
        if attachment["InstanceId"] != instance["InstanceId"]:
            raise SwapError("volume %s is attached to %s, not %s" % (volume_id, attachment["InstanceId"],
                                                                     instance["InstanceId"]))
        _check_movable(instance, attachment["Device"])
        moves.append(Move(attachment["Device"], volume_id, None, "detach"))
    return moves, unchanged


def plan_swap(instance, volumes, devices, allow_other_source=False):
    """Moves that put each restored volume where its original was (its recorded device, or the one given), taking off
    whatever is attached there; ([moves], [unchanged])."""
    instance_id = instance["InstanceId"]
    attached = attachments_of(instance)
    moves, unchanged, taken = [], [], set()
    for volume_id, volume in volumes.items():
        restored = restored_data(volume)
        if restored["source_instance_id"] != instance_id and not allow_other_source:
            raise SwapError("volume %s was restored from a set of %s, not of %s; swapping it in would give this "
                            "instance another server's disk (allow_other_source for a replacement instance)"
                            % (volume_id, restored["source_instance_id"], instance_id))
        device = devices.get(volume_id) or restored["device"]
        if not device:
            raise SwapError("volume %s records no device; give it one in devices" % volume_id)
        if normalise_device(device) in taken:
            raise SwapError("two volumes would go to device %s of %s" % (device, instance_id))
        taken.add(normalise_device(device))
        occupant = attached.get(normalise_device(device))
        if occupant and occupant["volume_id"] == volume_id:
            unchanged.append({"device": occupant["device"], "volume_id": volume_id})
            continue
        _check_zone(volume, instance)
        _check_available(volume, instance_id)
        if occupant:
            _check_movable(instance, occupant["device"])
            moves.append(Move(occupant["device"], occupant["volume_id"], volume_id, "swap"))
        else:
            moves.append(Move(device, None, volume_id, "swap"))
    return moves, unchanged


def _latest_per_device(entries, volume_ids):
    latest = {}
    for entry in entries:
        if volume_ids and entry["volume_id"] not in volume_ids:
            continue
        latest.setdefault(normalise_device(entry["device"]), entry)
    return latest


def plan_rollback(instance, entries, volume_ids=None):
    """Moves that undo the newest swap of each device (only swaps that put in ``volume_ids``, when given): the
    replacement comes off, the volume it replaced goes back; ([moves], [unchanged])."""
    instance_id = instance["InstanceId"]
    attached = attachments_of(instance)
    latest = _latest_per_device(entries, volume_ids)
    if not latest:
        raise SwapError("no volume of %s is recorded as replaced by a swap%s (never swapped, or a cleanup deleted the "
                        "replaced volumes): nothing to roll back" % (
                            instance_id, " of %s" % ", ".join(volume_ids) if volume_ids else ""))
    moves, unchanged = [], []
    for key, entry in sorted(latest.items()):
        original = entry["volume"]
        occupant = attached.get(key)
        if occupant and occupant["volume_id"] == original["VolumeId"]:
            unchanged.append({"device": occupant["device"], "volume_id": original["VolumeId"]})
            continue
        if occupant and occupant["volume_id"] != entry["volume_id"]:
            raise SwapError("device %s of %s holds %s, neither %s (put in by the swap) nor %s (what it replaced); "
                            "nothing to roll back there" % (entry["device"], instance_id, occupant["volume_id"],
                                                            entry["volume_id"], original["VolumeId"]))
        _check_available(original, instance_id)
        if occupant:
            _check_movable(instance, occupant["device"])
        moves.append(Move(occupant["device"] if occupant else entry["device"],
                          occupant["volume_id"] if occupant else None, original["VolumeId"], "roll back"))
    return moves, unchanged


def plan_cleanup(instance, entries, known, volume_ids=None):
    """The volumes an explicit cleanup deletes: those taken off a device of this instance by a swap or a rollback
    (only swaps that put in ``volume_ids``, when given), while a volume of that device's swaps is attached there, and
    the restored volumes ``volume_ids`` names that are available. ``known`` holds every volume read ({id: volume}).
    Returns (deletable volume ids, {volume id: why it is kept})."""
    attached = attachments_of(instance)
    chains = {}
    for entry in entries:
        if volume_ids and entry["volume_id"] not in volume_ids:
            continue
        chain = chains.setdefault(normalise_device(entry["device"]), set())
        chain.update((entry["volume"]["VolumeId"], entry["volume_id"]))
    states = dict(known)
    states.update((entry["volume"]["VolumeId"], entry["volume"]) for entry in entries)
    deletable, kept = [], {}
    for key, chain in sorted(chains.items()):
        occupant = attached.get(key)
        for volume_id in sorted(chain):
            volume = states.get(volume_id)
            if occupant and occupant["volume_id"] == volume_id:
                continue
            if volume is None:
                continue
            if not occupant or occupant["volume_id"] not in chain:
                kept[volume_id] = "device %s holds no volume of its swaps; roll back or swap first" % key
            elif volume["State"] != "available":
                kept[volume_id] = "it is %s" % ec2_api.volume_state(volume)
            elif volume_id not in deletable:
                deletable.append(volume_id)
    for volume_id in volume_ids or ():
        volume = known[volume_id]
        if volume_id in deletable or volume_id in kept or any(volume_id in chain for chain in chains.values()):
            continue
        restored_data(volume)
        if volume["State"] == "available":
            deletable.append(volume_id)
        else:
            kept[volume_id] = "it is %s" % ec2_api.volume_state(volume)
    return deletable, kept


# ------------------------------------------------------------------------------------------------ changing EC2
def tag_replaced(client, moves, instance_id, moment, current_tags):
    """Tag every volume the moves take off with what replaces it, before anything is detached: one CreateTags call for
    all of them when the tags fit EC2's 50 per volume, else one per volume with its own entry."""
    entries = dict((snapshot_tags.replaced_by_key(move.out_id),
                    snapshot_tags.encode_replaced(move.in_id, move.device, instance_id, moment))
                   for move in moves if move.out_id and move.in_id)
    if not entries:
        return 0
    shared = dict(entries)
    shared[snapshot_tags.KEY_REPLACED_ON] = instance_id
    out_ids = [move.out_id for move in moves if move.out_id and move.in_id]
    keys_after = max(len(set(current_tags.get(volume_id, {})) | set(shared)) for volume_id in out_ids)
    if keys_after <= snapshot_tags.MAX_TAGS_PER_SNAPSHOT:
        ec2_api.tag_volumes(client, out_ids, shared)
        return 1
    for volume_id in out_ids:
        key = snapshot_tags.replaced_by_key(volume_id)
        ec2_api.tag_volumes(client, [volume_id], {key: entries[key], snapshot_tags.KEY_REPLACED_ON: instance_id})
    return len(out_ids)


def _lost_answer(error):
    """A failure after which the request may still have been carried out (no answer, or a server error)."""
    response = getattr(error.exception, "response", None)
    return response is None or response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500


def _send(client, call, is_done, volume_id):
    """Send an attach or detach; after a failure, the volume is read: when it shows the change, the change stands;
    when the answer was lost and it does not, the request is sent again."""
    for attempt in range(RESEND_ATTEMPTS):
        try:
            call()
            return
        except AnsibleEC2Error as error:
            volumes = ec2_api.describe_volumes(client, [volume_id])
            if volumes and is_done(volumes[0]):
                return
            if not _lost_answer(error) or attempt + 1 == RESEND_ATTEMPTS:
                raise


def _detached_or_detaching(volume):
    attachment = _attachment(volume)
    return attachment is None or attachment["State"] == "detaching"


def _detach_all(clients, instance_id, moves, timeout, done):
    client, move_client = clients
    outs = [move for move in moves if move.out_id]
    for move in outs:
        _send(client, lambda m=move: ec2_api.detach_volume(move_client, m.out_id, instance_id), _detached_or_detaching,
              move.out_id)
        done.append(("detached", move))
    if outs:
        ec2_api.wait_for_volumes(client, [move.out_id for move in outs], "volumes_available", timeout)


def _attached_at(volume, instance_id, device):
    attachment = _attachment(volume)
    return bool(attachment) and attachment["State"] in ("attaching", "attached") and (
        attachment["InstanceId"] == instance_id and normalise_device(attachment["Device"]) == normalise_device(device))


def _attach_all(clients, instance_id, moves, timeout, done):
    client, move_client = clients
    ins = [move for move in moves if move.in_id]
    for move in ins:
        _send(client, lambda m=move: ec2_api.attach_volume(move_client, m.in_id, instance_id, m.device),
              lambda volume, m=move: _attached_at(volume, instance_id, m.device), move.in_id)
        done.append(("attached", move))
    if ins:
        ec2_api.wait_for_volumes(client, [move.in_id for move in ins], "volumes_attached", timeout)


def carry_out(clients, instance_id, moves, timeout):
    """Detach every volume the moves take off, wait, attach every volume they put on, wait. When a step fails, what
    was changed is put back (the reverse moves); MoveFailed says whether that worked.
    ``clients``: (a client for reads, one without botocore's retries for AttachVolume and DetachVolume)."""
    done = []
    try:
        _detach_all(clients, instance_id, moves, timeout, done)
        _attach_all(clients, instance_id, moves, timeout, done)
    except AnsibleEC2Error as error:
        if not done:
            raise MoveFailed(error, undone=False) from error
        touched = list(dict.fromkeys(move for dummy, move in done))
        reverse = [Move(move.device, move.in_id if ("attached", move) in done else None,
                        move.out_id if ("detached", move) in done else None, "undo " + move.action)
                   for move in touched]
        try:
            _detach_all(clients, instance_id, reverse, timeout, [])
            back = [move.in_id for move in reverse if move.in_id]
            if back:
                ec2_api.wait_for_volumes(clients[0], back, "volumes_available", timeout)
            _attach_all(clients, instance_id, reverse, timeout, [])
        except AnsibleEC2Error as undo_error:
            raise MoveFailed(error, undone=False, undo_error=undo_error) from error
        raise MoveFailed(error, undone=True) from error


def delete_replaced(client, volume_ids):
    """Delete the volumes a cleanup found deletable (the only deletion of this module); returns those deleted."""
    return [volume_id for volume_id in volume_ids if ec2_api.delete_volume(client, volume_id)]
