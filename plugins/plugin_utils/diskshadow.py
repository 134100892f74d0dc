# Copyright: Contributors to the shadowsnap.ec2 project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The files of a VSS snapshot-set session: the diskshadow script and the batch files around it (docs/vss-session.md).

Generated here, on the controller, so that what runs on Windows is plain, reviewable text and every rule the
shadow engine rests on (persistent context, writer verify, BackupComplete only after release) is tested in Python.
"""

# FOR INTERNAL COLLECTION USE ONLY
# The interfaces in this file are meant for use within the shadowsnap.ec2 collection and may not remain stable to
# outside uses. Changes may be made in ANY release, even a bugfix release.

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.guids import normalise_guid
from ansible_collections.shadowsnap.ec2.plugins.plugin_utils.run_ids import is_run_id

MAX_VOLUMES_PER_SET = 64
BACKUP_TYPES = ("copy", "full")

# The names of the session tree on the host, and of the files of a run directory. They are shared with the agent
# script, which gets them from here (agent_transport.script_constants) instead of spelling them.
PROGRAM_DATA = r"C:\ProgramData"
AGENT_FOLDER = "shadowsnap"
RUNS_FOLDER = "runs"
RUN_ROOT = "\\".join((PROGRAM_DATA, AGENT_FOLDER, RUNS_FOLDER))
SCRIPT_FILE = "snapshot.dsh"
RECORD_FILE = "record.cmd"
HOLD_FILE = "hold.cmd"
RUN_FILE = "run.cmd"
# What session_start writes (generated here), and what it needs; hold.cmd only for full backups.
SESSION_FILES = (SCRIPT_FILE, RECORD_FILE, HOLD_FILE, RUN_FILE)
REQUIRED_SESSION_FILES = (SCRIPT_FILE, RECORD_FILE, RUN_FILE)
CREATED_FILE = "created.txt"
RELEASE_FILE = "release.txt"
EXIT_FILE = "exit.txt"
LOG_FILE = "diskshadow.log"
METADATA_FILE = "backup.cab"
SHADOW_SET_VARIABLE = "VSS_SHADOW_SET"
# What release.txt may say: only the first lets hold.cmd go on to ``end backup``.
RELEASE_OK = "ok"
RELEASE_ABORT = "abort"
RELEASE_DECISIONS = (RELEASE_OK, RELEASE_ABORT)
# Seconds a full backup's hold.cmd waits for the release before diskshadow quits without BackupComplete.
DEFAULT_HOLD_TIMEOUT = 600

_DRIVE = re.compile(r"^[A-Za-z]:\\?$")
# A component's full path as ``list writers detailed`` names it (``\\WIN-SQL-01\\shop``), in a form a script line can carry.
_COMPONENT_PATH = re.compile(r"^\\[\x20-\x7e]+$")
_MOUNT_POINT = re.compile(r"^[A-Za-z]:\\[^\"%<>|?*\r\n ]+\\?$")


class SessionPlanError(ValueError):
    """The requested shadow set cannot be expressed safely; the message says what to change."""


@dataclass
class SessionPlan:
    """What one session snapshots and how: ``verify_writer_ids`` are writers verified whole, ``verify_components``
    ``(writer id, component full path)`` pairs verified one by one (the components of an application writer that the
    set holds, so that its components on other volumes do not fail the set)."""

    run_id: str
    volumes: list
    backup_type: str = "copy"
    verify_writer_ids: list = field(default_factory=list)
    exclude_writer_ids: list = field(default_factory=list)
    verify_components: list = field(default_factory=list)
    hold_timeout_seconds: int = DEFAULT_HOLD_TIMEOUT

    def run_dir(self):
        return RUN_ROOT + "\\" + self.run_id


def _normalise_volume(path):
    """``d``, ``D:`` and ``D:\\`` name the same volume; mount points keep their path without the trailing slash."""
    text = (path or "").strip()
    if len(text) == 1 and text.isalpha():
        text += ":"
    if _DRIVE.match(text):
        return text[:2].upper()
    if _MOUNT_POINT.match(text):
        return text.rstrip("\\")
    raise SessionPlanError(
        "volume %r is neither a drive letter (D:) nor a mount point path without spaces, quotes or %% (C:\\mnt\\logs)" % path
    )


def volume_aliases(volumes):
    """diskshadow alias (an environment variable name after ``create``) for each volume, stable and unique."""
    aliases = {}
    used = set()
    for volume in volumes:
        base = "vol_" + re.sub(r"[^a-z0-9]+", "_", volume.lower()).strip("_")
        alias = base
        counter = 2
        while alias in used:
            alias = "%s_%d" % (base, counter)
            counter += 1
        used.add(alias)
        aliases[volume] = alias
    return aliases


def verify_target(writer_id, component_path=None):
    """The argument of ``writer verify``: ``{writer id}``, or ``{writer id}:\\<logical path>\\<name>`` for one component
    (quoted when it holds a space); SessionPlanError for what a script line cannot carry."""
    guid = normalise_guid(writer_id)
    if guid is None:
        raise SessionPlanError("writer id %r is not a GUID" % writer_id)
    if component_path is None:
        return guid
    if not _COMPONENT_PATH.match(component_path or "") or '"' in component_path or "%" in component_path:
        raise SessionPlanError("component %r of writer %s cannot be named in a diskshadow script (printable ASCII "
                               "without quotes or %%, starting with a backslash)" % (component_path, guid))
    target = "%s:%s" % (guid, component_path)
    return '"%s"' % target if " " in target else target


def validate(plan):
    """Normalised volumes of the plan; SessionPlanError for anything diskshadow would misread."""
    if not is_run_id(plan.run_id):
        raise SessionPlanError("run id %r must be letters, digits, '.', '_' or '-' (at most 64)" % plan.run_id)
    if plan.backup_type not in BACKUP_TYPES:
        raise SessionPlanError("backup type must be copy or full, not %r" % plan.backup_type)
    volumes = []
    for path in plan.volumes:
        volume = _normalise_volume(path)
        if volume.lower() in (v.lower() for v in volumes):
            raise SessionPlanError("volume %s is listed twice" % volume)
        volumes.append(volume)
    if not volumes:
        raise SessionPlanError("a shadow set needs at least one volume")
    if len(volumes) > MAX_VOLUMES_PER_SET:
        raise SessionPlanError("a shadow set holds at most %d volumes, not %d" % (MAX_VOLUMES_PER_SET, len(volumes)))
    for writer_id in list(plan.verify_writer_ids) + list(plan.exclude_writer_ids):
        verify_target(writer_id)
    for writer_id, component_path in plan.verify_components:
        verify_target(writer_id, component_path)
    verified = {normalise_guid(w) for w in plan.verify_writer_ids} | {normalise_guid(w) for w, dummy in plan.verify_components}
    both = verified & {normalise_guid(w) for w in plan.exclude_writer_ids}
    if both:
        raise SessionPlanError("writers cannot be both required and excluded: %s" % ", ".join(sorted(both)))
    if plan.hold_timeout_seconds < 1:
        raise SessionPlanError("the hold timeout must be at least one second")
    return volumes


def diskshadow_script(plan):
    """The diskshadow script of the session (CRLF line ends, as diskshadow reads on Windows)."""
    volumes = validate(plan)
    aliases = volume_aliases(volumes)
    run_dir = plan.run_dir()
    lines = [
        "set context persistent",
        "set verbose on",
        "set metadata %s\\%s" % (run_dir, METADATA_FILE),
    ]
    lines += ["writer verify %s" % verify_target(writer_id) for writer_id in plan.verify_writer_ids]
    lines += ["writer verify %s" % verify_target(writer_id, path) for writer_id, path in plan.verify_components]
    lines += ["writer exclude %s" % normalise_guid(writer_id) for writer_id in plan.exclude_writer_ids]
    if plan.backup_type == "full":
        lines.append("begin backup")
    lines += ["add volume %s alias %s" % (volume, aliases[volume]) for volume in volumes]
    lines += ["create", "exec %s\\%s" % (run_dir, RECORD_FILE)]
    if plan.backup_type == "full":
        lines += ["exec %s\\%s" % (run_dir, HOLD_FILE), "end backup"]
    return "\r\n".join(lines) + "\r\n"


def record_script(plan):
    """Batch file exec'd after ``create``: writes the shadow set id and each alias's shadow id to created.txt."""
    volumes = validate(plan)
    run_dir = plan.run_dir()
    lines = ["@echo off", "rem shadowsnap-record protocol=1", "(", "echo %s=%%%s%%" % (SHADOW_SET_VARIABLE, SHADOW_SET_VARIABLE)]
    lines += ["echo %s=%%%s%%" % (alias, alias) for alias in volume_aliases(volumes).values()]
    lines += [
        ') > "%s\\created.tmp"' % run_dir,
        'move /y "%s\\created.tmp" "%s\\%s" >nul' % (run_dir, run_dir, CREATED_FILE),
        "exit /b 0",
    ]
    return "\r\n".join(lines) + "\r\n"


def hold_script(plan):
    """Batch file of full backups: waits for the release; only ``ok`` lets diskshadow go on to ``end backup``."""
    validate(plan)
    run_dir = plan.run_dir()
    lines = [
        "@echo off",
        "rem shadowsnap-hold protocol=1 timeout=%d" % plan.hold_timeout_seconds,
        "setlocal",
        "set /a remaining=%d" % plan.hold_timeout_seconds,
        ":wait",
        'if exist "%s\\%s" goto decide' % (run_dir, RELEASE_FILE),
        "if %remaining% LEQ 0 exit /b 1",
        "ping -n 2 127.0.0.1 >nul",
        "set /a remaining-=1",
        "goto wait",
        ":decide",
        'findstr /x /c:"%s" "%s\\%s" >nul && exit /b 0' % (RELEASE_OK, run_dir, RELEASE_FILE),
        "exit /b 1",
    ]
    return "\r\n".join(lines) + "\r\n"


def run_script(plan):
    """The scheduled task's action: run diskshadow on the script, keep its output and exit code."""
    validate(plan)
    run_dir = plan.run_dir()
    lines = [
        "@echo off",
        "rem shadowsnap-run protocol=1",
        'cd /d "%s"' % run_dir,
        'diskshadow /s "%s\\%s" > "%s\\%s" 2>&1' % (run_dir, SCRIPT_FILE, run_dir, LOG_FILE),
        # Redirection first: "echo 0> file" would redirect handle 0 and leave the file empty.
        '> "%s\\exit.tmp" echo %%ERRORLEVEL%%' % run_dir,
        'move /y "%s\\exit.tmp" "%s\\%s" >nul' % (run_dir, run_dir, EXIT_FILE),
    ]
    return "\r\n".join(lines) + "\r\n"


def session_files(plan):
    """Every file ``session_start`` writes into the run directory (name -> text)."""
    files = {SCRIPT_FILE: diskshadow_script(plan), RECORD_FILE: record_script(plan), RUN_FILE: run_script(plan)}
    if plan.backup_type == "full":
        files[HOLD_FILE] = hold_script(plan)
    return files


@dataclass(frozen=True)
class CreatedRecord:
    """created.txt as record.cmd wrote it (``NAME=value`` lines), parsed once: the shadow set id and each alias's id."""

    values: dict

    @property
    def shadow_set_id(self):
        """``{guid}`` of the set, None when the record holds none."""
        return normalise_guid(self.values.get(SHADOW_SET_VARIABLE))

    @property
    def shadows(self):
        """alias -> ``{guid}`` of its shadow copy (None for a value that is no GUID)."""
        return {name: normalise_guid(value) for name, value in self.values.items() if name != SHADOW_SET_VARIABLE}

    def by_volume(self, plan):
        """The set id and the shadow id of each of the plan's volumes; SessionPlanError when the record is incomplete."""
        if self.shadow_set_id is None:
            raise SessionPlanError("created.txt holds no shadow set id (got %r)" % self.values.get(SHADOW_SET_VARIABLE, ""))
        shadows = {}
        for volume, alias in volume_aliases(validate(plan)).items():
            shadow_id = normalise_guid(self.values.get(alias))
            if shadow_id is None:
                raise SessionPlanError("created.txt holds no shadow id for %s (alias %s)" % (volume, alias))
            shadows[volume] = shadow_id
        return self.shadow_set_id, shadows


def read_created_record(text):
    """The :class:`CreatedRecord` of created.txt's text (lines without ``=`` are ignored)."""
    values = {}
    for line in (text or "").splitlines():
        name, separator, value = line.strip().partition("=")
        if separator:
            values[name.strip()] = value.strip()
    return CreatedRecord(values)
