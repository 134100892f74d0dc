# -*- coding: utf-8 -*-

# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The tag schema: the contract between backup, restore and retention (documented in docs/tag-schema.md).

Every snapshot of a set carries the set-level tags and one ``shadowsnap:volume:<volume-id>`` tag per member volume.
A snapshot finds its own per-volume data through its VolumeId, and every member knows the whole membership, so a
reader can tell a complete set from one that lost a snapshot -- from the tags alone, after the instance is gone.
A set created by the collection's own CreateSnapshots call gets all its tags in that call; CreateTags is used only
where the snapshots exist first (settling an ``unverified`` set, tagging what AWS's VSS document created).

A DR copy of a set (another Region or account) keeps the set's tags and adds ``shadowsnap:copy:*`` (where it came from
and the member volume it stands for), so it is the same set there.

Volumes restored from a set carry ``shadowsnap:restore:*`` tags from their CreateVolume call (what they were restored
from, so a re-run finds them), and so does an instance a whole-instance restore launched, from its RunInstances call.
A volume an in-place restore replaced carries ``shadowsnap:replaced-by:*`` (what replaced it, so the swap can be
rolled back). A set also records where its instance was (``shadowsnap:launch*``), for a whole-instance restore.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

PREFIX = "shadowsnap:"
SCHEMA_VERSION = "1"

KEY_SCHEMA = PREFIX + "schema"
KEY_SET_ID = PREFIX + "set-id"
KEY_INSTANCE_ID = PREFIX + "instance-id"
KEY_ENGINE = PREFIX + "engine"
KEY_CONSISTENCY = PREFIX + "consistency"
KEY_BACKUP_TYPE = PREFIX + "backup-type"
KEY_POLICY = PREFIX + "policy"
KEY_CREATED_AT = PREFIX + "created-at"
KEY_VERSION = PREFIX + "version"
KEY_SHADOW_SET_ID = PREFIX + "shadow-set-id"
KEY_FALLBACK_FROM = PREFIX + "fallback-from"
# The AWX / Automation Controller job that took the set (its job id), when one did.
KEY_AWX_JOB_ID = PREFIX + "awx-job-id"
VOLUME_KEY_PREFIX = PREFIX + "volume:"
# Put on any member by an operator (the value says why); retention keeps the whole set while any member carries it.
KEY_HOLD = PREFIX + "hold"
# The last recovery drill of the set, on every member (ec2_snapshot_set_drill): ``at=<UTC time>;verdict=<passed or
# failed>;consistency=<what the drill reached>``. One tag, replaced by each drill: it takes one slot of the budget.
KEY_DRILL = PREFIX + "drill"
DRILL_VERDICTS = ("passed", "failed")
_DRILL_FIELDS = ("at", "verdict", "consistency")

# On a DR copy of a set's snapshot (ec2_snapshot_set_copy), from its CopySnapshot call, beside the source's tags: where
# it was copied from, and the member volume it stands for (a copy's own VolumeId is an arbitrary placeholder).
COPY_PREFIX = PREFIX + "copy:"
KEY_COPY_SOURCE_SET_ID = COPY_PREFIX + "source-set-id"
KEY_COPY_SOURCE_REGION = COPY_PREFIX + "source-region"
KEY_COPY_SOURCE_ACCOUNT = COPY_PREFIX + "source-account"
KEY_COPY_SOURCE_SNAPSHOT = COPY_PREFIX + "source-snapshot"
KEY_COPY_SOURCE_VOLUME = COPY_PREFIX + "source-volume"

# What a whole-instance restore needs of the instance, from the DescribeInstances answer of the backup, identical on
# every member: ``ami=;type=;az=;subnet=;ip=;root=`` (always), the security groups, the instance profile's name and
# the key pair's name (each when the instance has them). The device of each member is in its volume entry.
KEY_LAUNCH = PREFIX + "launch"
KEY_LAUNCH_SECURITY_GROUPS = PREFIX + "launch:security-groups"
KEY_LAUNCH_PROFILE = PREFIX + "launch:profile"
KEY_LAUNCH_KEY = PREFIX + "launch:key"
_LAUNCH_FIELDS = (("image_id", "ami"), ("instance_type", "type"), ("availability_zone", "az"), ("subnet_id", "subnet"),
                  ("private_ip", "ip"), ("root_device_name", "root"))

# On a volume restored from a set (ec2_snapshot_set_volumes), from its CreateVolume call.
RESTORE_PREFIX = PREFIX + "restore:"
KEY_RESTORE_ID = RESTORE_PREFIX + "id"
KEY_RESTORE_SET_ID = RESTORE_PREFIX + "set-id"
KEY_RESTORE_SNAPSHOT_ID = RESTORE_PREFIX + "snapshot-id"
KEY_RESTORE_SOURCE_VOLUME = RESTORE_PREFIX + "source-volume"
KEY_RESTORE_SOURCE_INSTANCE = RESTORE_PREFIX + "source-instance"
KEY_RESTORE_DEVICE = RESTORE_PREFIX + "device"
KEY_RESTORE_PATHS = RESTORE_PREFIX + "paths"
KEY_RESTORE_SHADOW_ID = RESTORE_PREFIX + "shadow-id"
KEY_RESTORE_ENGINE = RESTORE_PREFIX + "engine"
KEY_RESTORE_SET_CONSISTENCY = RESTORE_PREFIX + "set-consistency"
# What the volume's data is now: ``crash`` for a shadow set's volume until its embedded shadow copy is reverted.
KEY_RESTORE_CONSISTENCY = RESTORE_PREFIX + "consistency"
KEY_RESTORE_CREATED_AT = RESTORE_PREFIX + "created-at"
# On the volumes an instance of a whole-instance restore was launched with (the restore id): the set's volumes replace
# them, and the restore deletes them.
KEY_RESTORE_LAUNCH_VOLUME = RESTORE_PREFIX + "launch-volume-of"
# On a volume an in-place restore detached (ec2_volume_swap): one entry per replaced volume of that swap, each
# ``shadowsnap:replaced-by:<volume-id>`` = ``volume=<replacement>;device=<device>;instance=<instance>;at=<time>``,
# and the instance, for finding them.
REPLACED_BY_PREFIX = PREFIX + "replaced-by:"
KEY_REPLACED_ON = PREFIX + "replaced-on"

ENGINES = ("shadow", "aws_vss", "crash")
BACKUP_TYPES = ("copy", "full")
# ``unverified``: taken under a shadow set, application consistency not yet proven by the backup flow's verify step.
CONSISTENCIES = ("application", "crash", "unverified")

MAX_TAGS_PER_SNAPSHOT = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

CREATED_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_SET_ID_TIME_FORMAT = "%Y%m%dT%H%M%SZ"

_VOLUME_FIELDS = ("device", "paths", "shadow")
_REPLACED_FIELDS = ("volume", "device", "instance", "at")
_ESCAPED = {"%": "%25", ";": "%3B", "|": "%7C", "=": "%3D"}


class TagSchemaError(ValueError):
    """A set cannot be described within EC2's tag limits, or a tag does not follow the schema."""


def _escape(text):
    return "".join(_ESCAPED.get(character, character) for character in text)


def _unescape(text):
    for character, escaped in _ESCAPED.items():
        if character != "%":
            text = text.replace(escaped, character)
    return text.replace("%25", "%")


def format_created_at(moment):
    return moment.astimezone(datetime.timezone.utc).strftime(CREATED_AT_FORMAT)


def default_set_id(instance_id, moment):
    """The set id when the caller gives none: ``<instance-id>-<UTC time to the second>``, e.g.
    ``i-0123456789abcdef0-20261125T013700Z`` (the one rule; docs/tag-schema.md)."""
    return "%s-%s" % (instance_id, moment.astimezone(datetime.timezone.utc).strftime(DEFAULT_SET_ID_TIME_FORMAT))


def parse_created_at(text):
    """The UTC datetime of a ``created-at`` tag, or None when it is missing or malformed."""
    try:
        return datetime.datetime.strptime(text, CREATED_AT_FORMAT).replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def encode_paths(paths):
    """Windows paths in one tag value: ``D:\\|E:\\mnt`` (the separator and ``%;=`` escaped inside a path)."""
    return "|".join(_escape(path) for path in (paths or ()))


def decode_paths(value):
    return [_unescape(path) for path in (value or "").split("|") if path]


def _fields(value, names):
    fields = {}
    for part in (value or "").split(";"):
        name, separator, content = part.partition("=")
        if separator and name in names:
            fields[name] = content
    return fields


def encode_volume(device, paths=None, shadow_id=None):
    """The value of a ``shadowsnap:volume:<volume-id>`` tag: ``device=xvdb;paths=D:\\|E:\\mnt;shadow={GUID}``."""
    fields = [("device", _escape(device or "")), ("paths", encode_paths(paths))]
    if shadow_id:
        fields.append(("shadow", _escape(shadow_id)))
    return ";".join("%s=%s" % field for field in fields)


def decode_volume(value):
    """Inverse of :func:`encode_volume`: a dict with ``device``, ``paths`` (list) and ``shadow_id`` (or None)."""
    fields = _fields(value, _VOLUME_FIELDS)
    return {
        "device": _unescape(fields.get("device", "")) or None,
        "paths": decode_paths(fields.get("paths")),
        "shadow_id": _unescape(fields.get("shadow", "")) or None,
    }


def volume_key(volume_id):
    return VOLUME_KEY_PREFIX + volume_id


def build_set_tags(set_id, instance_id, engine, consistency, created_at, version, volumes,
                   policy=None, backup_type=None, shadow_set_id=None, user_tags=None, fallback_from=None, launch=None,
                   job_id=None):
    """All tags of every snapshot in a set.

    ``volumes`` maps each member volume id to a dict with ``device`` and optionally ``paths`` and ``shadow_id``;
    ``launch`` is the instance's launch record (:func:`launch_tags`); ``job_id`` is the AWX job that runs the backup, if
    any.
    Raises :class:`TagSchemaError` when the values are outside the schema or EC2's tag limits.
    """
    if engine not in ENGINES:
        raise TagSchemaError("engine must be one of %s, not %r" % (", ".join(ENGINES), engine))
    if consistency not in CONSISTENCIES:
        raise TagSchemaError("consistency must be one of %s, not %r" % (", ".join(CONSISTENCIES), consistency))
    if engine == "crash" and consistency != "crash":
        raise TagSchemaError("the crash engine cannot produce %s-consistent snapshots" % consistency)
    if fallback_from is not None and (fallback_from not in ENGINES or fallback_from == "crash" or engine != "crash"):
        raise TagSchemaError("a crash engine set can stand in for a failed shadow or aws_vss backup, not %r for %r"
                             % (engine, fallback_from))
    if backup_type is not None and backup_type not in BACKUP_TYPES:
        raise TagSchemaError("backup type must be one of %s, not %r" % (", ".join(BACKUP_TYPES), backup_type))
    tags = checked_user_tags(user_tags)
    tags.update({
        KEY_SCHEMA: SCHEMA_VERSION,
        KEY_SET_ID: set_id,
        KEY_INSTANCE_ID: instance_id,
        KEY_ENGINE: engine,
        KEY_CONSISTENCY: consistency,
        KEY_CREATED_AT: format_created_at(created_at),
        KEY_VERSION: version,
    })
    if policy:
        tags[KEY_POLICY] = policy
    if backup_type:
        tags[KEY_BACKUP_TYPE] = backup_type
    if shadow_set_id:
        tags[KEY_SHADOW_SET_ID] = shadow_set_id
    if fallback_from:
        tags[KEY_FALLBACK_FROM] = fallback_from
    if job_id:
        tags[KEY_AWX_JOB_ID] = str(job_id)
    for volume_id, details in sorted(volumes.items()):
        tags[volume_key(volume_id)] = encode_volume(details.get("device"), details.get("paths"), details.get("shadow_id"))
    tags.update(launch_tags(launch))
    check_tag_limits(tags)
    return tags


def launch_tags(launch):
    """The launch record's tags. Security groups that do not fit one value (more than 12) are left out, and a restore
    of the set then asks for them rather than launch with some of them."""
    if not launch:
        return {}
    tags = {KEY_LAUNCH: ";".join("%s=%s" % (name, _escape(launch.get(field) or "")) for field, name in _LAUNCH_FIELDS)}
    groups = "|".join(launch.get("security_group_ids") or ())
    if groups and len(groups) <= MAX_TAG_VALUE_LENGTH:
        tags[KEY_LAUNCH_SECURITY_GROUPS] = groups
    for key, field in ((KEY_LAUNCH_PROFILE, "iam_instance_profile"), (KEY_LAUNCH_KEY, "key_name")):
        if launch.get(field):
            tags[key] = launch[field]
    return tags


def decode_launch(tags):
    """The launch record of a set (``tags`` as a dict), or None for a set made before the record existed. A field the
    instance did not have is None (``security_group_ids`` too when the groups did not fit)."""
    if KEY_LAUNCH not in tags:
        return None
    fields = _fields(tags[KEY_LAUNCH], [name for dummy, name in _LAUNCH_FIELDS])
    launch = dict((field, _unescape(fields.get(name, "")) or None) for field, name in _LAUNCH_FIELDS)
    groups = tags.get(KEY_LAUNCH_SECURITY_GROUPS)
    launch["security_group_ids"] = groups.split("|") if groups else None
    launch["iam_instance_profile"] = tags.get(KEY_LAUNCH_PROFILE) or None
    launch["key_name"] = tags.get(KEY_LAUNCH_KEY) or None
    return launch


def checked_user_tags(user_tags):
    """The user's tags as strings; TagSchemaError for a key with a prefix the schema or AWS reserves."""
    tags = {}
    for key, value in (user_tags or {}).items():
        if key.startswith(PREFIX):
            raise TagSchemaError("user tag %r uses the reserved prefix %r" % (key, PREFIX))
        if key.startswith("aws:"):
            raise TagSchemaError("user tag %r uses the prefix 'aws:', which AWS reserves" % key)
        tags[key] = "" if value is None else str(value)
    return tags


def check_tag_limits(tags):
    if len(tags) > MAX_TAGS_PER_SNAPSHOT:
        user = len([key for key in tags if not key.startswith(PREFIX)])
        raise TagSchemaError(
            "the set needs %d tags per snapshot (%d user tags, %d schema and per-volume tags); EC2 allows %d. "
            "Snapshot fewer volumes per set or pass fewer user tags." % (len(tags), user, len(tags) - user, MAX_TAGS_PER_SNAPSHOT)
        )
    for key, value in tags.items():
        if len(key) > MAX_TAG_KEY_LENGTH:
            raise TagSchemaError("tag key %r is longer than %d characters" % (key, MAX_TAG_KEY_LENGTH))
        if len(value) > MAX_TAG_VALUE_LENGTH:
            raise TagSchemaError(
                "tag %s is %d characters long; EC2 allows %d (shorten the mount point paths or the value)"
                % (key, len(value), MAX_TAG_VALUE_LENGTH)
            )


def is_schema_tagged(tags):
    return bool(tags.get(KEY_SET_ID)) and tags.get(KEY_SCHEMA) is not None


def decode_snapshot(tags, volume_id):
    """The schema data of one snapshot (``tags`` as a dict): set-level fields, its own volume data, the membership."""
    own = tags.get(volume_key(volume_id))
    members = sorted(key[len(VOLUME_KEY_PREFIX):] for key in tags if key.startswith(VOLUME_KEY_PREFIX))
    volume = decode_volume(own) if own is not None else {"device": None, "paths": [], "shadow_id": None}
    return {
        "schema": tags.get(KEY_SCHEMA),
        "set_id": tags.get(KEY_SET_ID),
        "instance_id": tags.get(KEY_INSTANCE_ID),
        "engine": tags.get(KEY_ENGINE),
        "consistency": tags.get(KEY_CONSISTENCY),
        "backup_type": tags.get(KEY_BACKUP_TYPE),
        "policy": tags.get(KEY_POLICY),
        "created_at": tags.get(KEY_CREATED_AT),
        "version": tags.get(KEY_VERSION),
        "shadow_set_id": tags.get(KEY_SHADOW_SET_ID),
        "fallback_from": tags.get(KEY_FALLBACK_FROM),
        "launch": decode_launch(tags),
        "awx_job_id": tags.get(KEY_AWX_JOB_ID),
        "device": volume["device"],
        "paths": volume["paths"],
        "shadow_id": volume["shadow_id"],
        "member_volume_ids": members,
        "user_tags": dict((key, value) for key, value in tags.items() if not key.startswith(PREFIX)),
    }


def member_volume_id(tags, volume_id):
    """The member volume a snapshot stands for: its own VolumeId, or for a DR copy the one its copy tag records."""
    return tags.get(KEY_COPY_SOURCE_VOLUME) or volume_id


def build_copy_tags(source_tags, volume_id, snapshot_id, region, account_id, policy=None):
    """All tags of the DR copy of one member: the source's schema and user tags (the set id unchanged, so the copies
    are the same set in their Region), the destination's retention ``policy`` when given, and where the copy came
    from. A hold is the source's own and stays behind. Raises :class:`TagSchemaError` when they do not fit."""
    tags = dict((key, value) for key, value in source_tags.items()
                if key != KEY_HOLD and not key.startswith(COPY_PREFIX) and not key.startswith("aws:"))
    if policy:
        tags[KEY_POLICY] = policy
    tags.update({
        KEY_COPY_SOURCE_SET_ID: source_tags.get(KEY_SET_ID, ""),
        KEY_COPY_SOURCE_REGION: region,
        KEY_COPY_SOURCE_ACCOUNT: account_id,
        KEY_COPY_SOURCE_SNAPSHOT: snapshot_id,
        KEY_COPY_SOURCE_VOLUME: volume_id,
    })
    check_tag_limits(tags)
    return tags


def decode_copy(tags):
    """Where a DR copy came from (``tags`` as a dict) as ``{set_id, region, account_id, snapshot_id, volume_id}``, or
    None for a snapshot that is not a copy."""
    if not tags.get(KEY_COPY_SOURCE_SNAPSHOT):
        return None
    return {"set_id": tags.get(KEY_COPY_SOURCE_SET_ID), "region": tags.get(KEY_COPY_SOURCE_REGION),
            "account_id": tags.get(KEY_COPY_SOURCE_ACCOUNT), "snapshot_id": tags[KEY_COPY_SOURCE_SNAPSHOT],
            "volume_id": tags.get(KEY_COPY_SOURCE_VOLUME)}


def build_restored_volume_tags(restore_id, set_id, snapshot_id, source_instance_id, source_volume_id, device, paths,
                               shadow_id, engine, set_consistency, consistency, created_at, version, user_tags=None):
    """All tags of a volume restored from a set's snapshot (given in its CreateVolume call).

    ``consistency`` is what the volume's data is now, ``set_consistency`` what the set was tagged. Raises
    :class:`TagSchemaError` for reserved user tag keys or values outside EC2's limits.
    """
    tags = checked_user_tags(user_tags)
    tags.update({
        KEY_SCHEMA: SCHEMA_VERSION,
        KEY_VERSION: version,
        KEY_RESTORE_ID: restore_id,
        KEY_RESTORE_SET_ID: set_id,
        KEY_RESTORE_SNAPSHOT_ID: snapshot_id,
        KEY_RESTORE_SOURCE_INSTANCE: source_instance_id or "",
        KEY_RESTORE_SOURCE_VOLUME: source_volume_id,
        KEY_RESTORE_DEVICE: device or "",
        KEY_RESTORE_PATHS: encode_paths(paths),
        KEY_RESTORE_ENGINE: engine or "",
        KEY_RESTORE_SET_CONSISTENCY: set_consistency or "",
        KEY_RESTORE_CONSISTENCY: consistency,
        KEY_RESTORE_CREATED_AT: format_created_at(created_at),
    })
    if shadow_id:
        tags[KEY_RESTORE_SHADOW_ID] = shadow_id
    check_tag_limits(tags)
    return tags


def decode_restored_volume(tags):
    """The restore data of a volume (``tags`` as a dict), or None when the volume was not restored from a set."""
    if not tags.get(KEY_RESTORE_ID):
        return None
    return {
        "restore_id": tags[KEY_RESTORE_ID],
        "set_id": tags.get(KEY_RESTORE_SET_ID),
        "snapshot_id": tags.get(KEY_RESTORE_SNAPSHOT_ID),
        "source_instance_id": tags.get(KEY_RESTORE_SOURCE_INSTANCE) or None,
        "source_volume_id": tags.get(KEY_RESTORE_SOURCE_VOLUME),
        "device": tags.get(KEY_RESTORE_DEVICE) or None,
        "paths": decode_paths(tags.get(KEY_RESTORE_PATHS)),
        "shadow_id": tags.get(KEY_RESTORE_SHADOW_ID) or None,
        "engine": tags.get(KEY_RESTORE_ENGINE) or None,
        "set_consistency": tags.get(KEY_RESTORE_SET_CONSISTENCY) or None,
        "consistency": tags.get(KEY_RESTORE_CONSISTENCY),
        "created_at": tags.get(KEY_RESTORE_CREATED_AT),
    }


def build_restored_instance_tags(restore_id, set_id, source_instance_id, created_at, version, user_tags=None):
    """The tags of an instance launched by a whole-instance restore (given in its RunInstances call): what it was
    restored from, so a re-run with the same restore id finds it."""
    tags = checked_user_tags(user_tags)
    tags.update({KEY_SCHEMA: SCHEMA_VERSION, KEY_VERSION: version, KEY_RESTORE_ID: restore_id,
                 KEY_RESTORE_SET_ID: set_id, KEY_RESTORE_SOURCE_INSTANCE: source_instance_id or "",
                 KEY_RESTORE_CREATED_AT: format_created_at(created_at)})
    check_tag_limits(tags)
    return tags


def encode_drill(moment, verdict, consistency):
    """The value of the ``shadowsnap:drill`` tag; TagSchemaError for a verdict outside the schema."""
    if verdict not in DRILL_VERDICTS:
        raise TagSchemaError("a drill's verdict is one of %s, not %r" % (", ".join(DRILL_VERDICTS), verdict))
    return ";".join("%s=%s" % (name, _escape(value or "")) for name, value in (
        ("at", format_created_at(moment)), ("verdict", verdict), ("consistency", consistency)))


def decode_drill(tags):
    """The set's last drill (``tags`` as a dict of one member) as ``{at, verdict, consistency}``, or None."""
    value = tags.get(KEY_DRILL)
    if value is None:
        return None
    fields = _fields(value, _DRILL_FIELDS)
    return dict((name, _unescape(fields.get(name, "")) or None) for name in _DRILL_FIELDS)


def replaced_by_key(volume_id):
    return REPLACED_BY_PREFIX + volume_id


def encode_replaced(replacement_id, device, instance_id, moment):
    """The value of a ``shadowsnap:replaced-by:<volume-id>`` tag."""
    return ";".join("%s=%s" % (name, _escape(value)) for name, value in (
        ("volume", replacement_id), ("device", device), ("instance", instance_id), ("at", format_created_at(moment))))


def decode_replaced(tags, volume_id):
    """What replaced this volume (``tags`` as a dict) as ``{volume_id, device, instance_id, at}``, or None."""
    value = tags.get(replaced_by_key(volume_id))
    if value is None:
        return None
    fields = dict((name, _unescape(content)) for name, content in _fields(value, _REPLACED_FIELDS).items())
    return {"volume_id": fields.get("volume"), "device": fields.get("device"), "instance_id": fields.get("instance"),
            "at": fields.get("at")}
