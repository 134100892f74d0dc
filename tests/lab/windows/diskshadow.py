r"""The simulated ``diskshadow`` of the lab's Windows hosts: executes a script with the documented semantics.

What it follows (FACTS.md "diskshadow", docs/vss-session.md, the captures in tests/fixtures/windows/):

- script mode: the banner, then every command echoed as ``-> command`` (comments ``#`` included, blank lines
  skipped); an alias used in a command is shown as ``-> %alias% = {id}``; the first failure prints the failure block
  (a blank line, ``The last operation failed.``, 8-space indented ``- Returned HRESULT: 8004xxxx`` and ``- Error text:
  VSS_E_...``) and diskshadow quits: later commands (``end backup``) do not run;
- ``set context persistent|volatile|clientaccessible [nowriters]`` (volatile shadows are deleted when diskshadow
  exits; nowriters: no writer takes part, the set is not application-consistent), ``set option ...`` (accepted),
  ``set verbose on|off``, ``set metadata <file>`` (the backup components document, written at ``create``: a lab
  placeholder listing the writers and components, not a real cabinet), ``reset``;
- ``writer verify|exclude {id}|name``: writers whose components need a volume outside the set are left out
  silently (verbose mode prints the capture's ``Component "..." from writer "..." is excluded from backup,`` /
  ``because it requires volume C:\ which is not in the shadow copy set.``); a verified writer that is left out,
  wholly or in part, fails ``create`` with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT (800423F0), one that is not on the
  host with VSS_E_OBJECT_NOT_FOUND;
- ``begin backup`` / ``end backup`` (full backup: the writers wait in WAITING_FOR_BACKUP_COMPLETE until ``end
  backup`` sends BackupComplete; without them a copy backup: the writers are STABLE again when ``create`` returns and
  never see BackupComplete), ``add volume X:|mount folder [alias NAME]``, ``create`` (the included writers are
  frozen, SqlServerWriter flushes its application's journal, one shadow copy per volume is created in the model at
  one point in time, its frozen files in the diff area on the volume's shadow storage volume; the aliases and
  ``VSS_SHADOW_SET`` become environment variables), ``exec <file>`` (the collection's record/hold/run batch files,
  recognised by their ``rem shadowsnap-<kind> protocol=1`` line, are interpreted by :mod:`lab.windows.batch`; any
  other file exits with the code the host's model sets for it, default 0; non-zero makes diskshadow quit);
- ``delete shadows set|id|volume|all|oldest|exposed``, ``list shadows all|set|id``, ``list writers
  [status|detailed|metadata]``, ``expose``/``unexpose`` (persistent shadows only), ``revert`` (client-accessible
  shadows only), ``exit``.

Writer failures (a writer already failed, or a fault armed with ``WindowsServer.vss_faults.arm``) fail ``create``
with the writer's error; the other writers are aborted back to STABLE and no shadow copy is left. When diskshadow
ends without ``end backup`` after a full-backup ``create`` (a failed ``exec``, a stop), the waiting writers are
aborted: STABLE, no BackupComplete. Exit code: 0, or the host's ``diskshadow_failure_exit_code`` (default 1) after a
failure (Microsoft documents no exit codes: the failure block is what counts).

Wording that no capture shows is the lab's own and marked so in docs/lab-windows.md.
"""

import datetime
import re
import time
import uuid

from . import catalog
from .render import diskshadow_banner, diskshadow_list_writers_detailed, diskshadow_list_writers_status

INDENT = " " * 8
DETAIL = " " * 16
MAX_VOLUMES = 64
STATE_STABLE, STATE_WAITING_FOR_FREEZE, STATE_WAITING_FOR_THAW = 1, 2, 3
STATE_WAITING_FOR_POST_SNAPSHOT, STATE_WAITING_FOR_BACKUP_COMPLETE, STATE_FAILED_AT_FREEZE = 4, 5, 9
SQL_WRITER_NAME = "SqlServerWriter"
SCO_WRITER_NAME = "Shadow Copy Optimization Writer"
# HRESULTs diskshadow prints (FACTS.md, vss.h, winerror.h).
HRESULTS = {
    "E_FAIL": 0x80004005,
    "ERROR_FILE_NOT_FOUND": 0x80070002,
    "VSS_E_BAD_STATE": 0x80042301,
    "VSS_E_PROVIDER_VETO": 0x80042306,
    "VSS_E_OBJECT_NOT_FOUND": 0x80042308,
    "VSS_E_OBJECT_ALREADY_EXISTS": 0x8004230D,
    "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED": 0x80042312,
    "VSS_E_SNAPSHOT_SET_IN_PROGRESS": 0x80042316,
    "VSS_E_UNSUPPORTED_CONTEXT": 0x8004231B,
    "VSS_E_INSUFFICIENT_STORAGE": 0x8004231F,
    "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT": 0x800423F0,
    "VSS_E_WRITERERROR_TIMEOUT": 0x800423F2,
    "VSS_E_WRITERERROR_RETRYABLE": 0x800423F3,
}
SYMBOLS = {value: name for name, value in HRESULTS.items()}
SYMBOLS.update({code: symbol for code, symbol in catalog.HRESULT_SYMBOLS.items() if code})
FAILURE_PHASE_EVENTS = {6: "Identify", 7: "PrepareForBackup", 8: "PrepareForSnapshot", 9: "Freeze", 10: "Thaw",
                        11: "PostSnapshot", 12: "BackupComplete", 15: "BackupShutdown"}
# VSS_VOLSNAP_ATTR_* bits (vss.h) diskshadow prints when it deletes a shadow copy.
ATTRIBUTE_BITS = {"Persistent": 0x1, "Client_accessible": 0x4, "No_Auto_Release": 0x8, "No_Writers": 0x10,
                  "Differential": 0x20000, "Exposed_Locally": 0x100000}
ENVIRONMENT = {"SYSTEMROOT": "C:\\Windows", "WINDIR": "C:\\Windows", "PROGRAMDATA": "C:\\ProgramData",
               "TEMP": "C:\\Windows\\TEMP", "TMP": "C:\\Windows\\TEMP", "COMSPEC": "C:\\Windows\\system32\\cmd.exe"}

# The labels of the shadow copy listing: en-US from the captures (create output, the exposed-volume walkthroughs),
# ja-JP from the Japanese `list shadows all` capture. Other locales print the en-US words.
SHADOW_LABELS = {
    "en-US": {
        "query_set": "Querying all shadow copies with the shadow copy set ID %s",
        "query_all": "Querying all shadow copies on the computer ...",
        "query_id": "Querying shadow copy with ID %s",
        "id": "* Shadow copy ID = ",
        "set": "- Shadow copy set: ",
        "count": "- Original count of shadow copies = ",
        "volume": "- Original volume name: ",
        "time": "- Creation time: ",
        "device": "- Shadow copy device name: ",
        "origin": "- Originating machine: ",
        "service": "- Service machine: ",
        "not_exposed": "- Not exposed",
        "exposed": "- Exposed locally as: ",
        "provider": "- Provider ID: ",
        "attributes": "- Attributes:  ",
        "listed": "Number of shadow copies listed: %d",
    },
    "ja-JP": {
        "query_all": "\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc\u4e0a\u306e\u3059\u3079\u3066\u306e\u30b7\u30e3\u30c9\u30a6 "
                     "\u30b3\u30d4\u30fc\u3092\u7167\u4f1a\u3057\u3066\u3044\u307e\u3059...",
        "id": "* \u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc ID = ",
        "set": "- \u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc \u30bb\u30c3\u30c8: ",
        "count": "- \u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc\u306e\u30aa\u30ea\u30b8\u30ca\u30eb "
                 "\u30ab\u30a6\u30f3\u30c8\u6570 = ",
        "volume": "- \u5143\u306e\u30dc\u30ea\u30e5\u30fc\u30e0\u540d: ",
        "time": "- \u4f5c\u6210\u6642\u9593: ",
        "device": "- \u30b7\u30e3\u30c9\u30a6 \u30b3\u30d4\u30fc \u30c7\u30d0\u30a4\u30b9\u540d: ",
        "origin": "- \u4f5c\u6210\u5143\u306e\u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc: ",
        "service": "- \u30b5\u30fc\u30d3\u30b9 \u30b3\u30f3\u30d4\u30e5\u30fc\u30bf\u30fc: ",
        "not_exposed": "- \u9732\u51fa\u3055\u308c\u3066\u3044\u307e\u305b\u3093",
        "provider": "- \u30d7\u30ed\u30d0\u30a4\u30c0\u30fc ID: ",
        "attributes": "- \u5c5e\u6027:  ",
    },
}


def shadow_label(locale, key):
    return SHADOW_LABELS.get(locale.name, {}).get(key, SHADOW_LABELS["en-US"][key])


def failure_block(hresult, symbol=None):
    """diskshadow's failure block (capture diskshadow_create_failed_provider_veto_openzfs406)."""
    symbol = symbol or SYMBOLS.get(hresult)
    lines = ["", "The last operation failed.", INDENT + "- Returned HRESULT: %08X" % hresult]
    if symbol:
        lines.append(INDENT + "- Error text: %s" % symbol)
    return lines + [""]


def dmtf_to_datetime(text):
    return datetime.datetime.strptime(text[:21], "%Y%m%d%H%M%S.%f").replace(tzinfo=datetime.timezone.utc)


def attribute_bits(attributes):
    value = 0
    for attribute in attributes:
        value |= ATTRIBUTE_BITS.get(attribute, 0)
    return value


def _unquote(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return text


def _guid(text):
    text = text.strip().strip("{}").lower()
    try:
        return "{%s}" % uuid.UUID(text)
    except ValueError:
        return None


class DiskShadowFailure(Exception):
    """A command failed: the lines it printed before the failure block, and the HRESULT."""

    def __init__(self, hresult, lines=(), symbol=None):
        super().__init__("diskshadow failure 0x%08X" % hresult)
        self.hresult = hresult
        self.lines = list(lines)
        self.symbol = symbol


class DiskShadowStopped(Exception):
    """The process was killed (the scheduled task was stopped, the lab stops)."""


class DiskShadowResult:  # pylint: disable=too-few-public-methods
    """What one run did: exit code (None when killed), output text, the set it created, what it deleted."""

    def __init__(self):
        self.exit_code = None
        self.output = ""
        self.set_id = None
        self.shadows = {}
        self.deleted = []
        self.failure = None
        self.environment = {}

    def describe(self):
        return {"exit_code": self.exit_code, "set_id": self.set_id, "shadows": dict(self.shadows),
                "deleted_shadow_ids": list(self.deleted),
                "failure": None if self.failure is None else "0x%08X" % self.failure}


class DiskShadow:  # pylint: disable=too-many-instance-attributes
    """One ``diskshadow /s <script>`` process on a host model.

    ``sink(text)`` receives the output as it is printed (the session writes it into diskshadow.log); ``stop`` (an
    Event) kills the process; ``sleep(seconds)`` is how the batch files it runs wait (interruptible); ``cwd`` the
    current directory (relative ``set metadata`` paths); ``run_id`` is recorded with the writer events.
    """

    def __init__(self, model, *, sink=None, stop=None, sleep=None, cwd=None, run_id=None, environment=None):
        self.model = model
        self.locale = model.locale
        self.sink = sink
        self.stop = stop
        self.sleep = sleep
        self.cwd = cwd
        self.run_id = run_id
        self.environment = dict(ENVIRONMENT, COMPUTERNAME=model.hostname)
        self.environment.update({key.upper(): value for key, value in (environment or {}).items()})
        self.lines = []
        self.result = DiskShadowResult()
        self._reset_context()
        self.verbose = False

    # ----------------------------------------------------------------------------------------------- state
    def _reset_context(self):
        self.context = "persistent"
        self.no_writers = False
        self.metadata = None
        self.verify = []
        self.exclude = []
        self.backup = False
        self.volumes = []
        self.aliases = {}
        self.set_id = None
        self.created = []
        self.included = []
        self.backup_type = "copy"
        self.ended = False

    def print(self, *lines):
        self.lines.extend(lines)
        if self.sink is not None and lines:
            self.sink("".join(line + "\n" for line in lines))

    def _check_stop(self):
        if self.stop is not None and self.stop.is_set():
            raise DiskShadowStopped()

    def _wait(self, seconds):
        if seconds <= 0:
            return
        if self.stop is not None:
            if self.stop.wait(seconds):
                raise DiskShadowStopped()
        elif self.sleep is not None:
            self.sleep(seconds)
        else:
            time.sleep(seconds)

    def env(self, name):
        return self.environment.get(name.upper())

    # ------------------------------------------------------------------------------------------------- run
    def run_script(self, text):
        """Run a script (its text); returns a :class:`DiskShadowResult`."""
        self.model.services.start_vss()
        self.print(*diskshadow_banner(self.locale, self.model.hostname, self.model.clock()))
        try:
            for raw in text.replace("\r\n", "\n").split("\n"):
                line = raw.strip()
                if not line:
                    continue
                self._check_stop()
                self.print("-> %s" % line)
                if line.startswith("#"):
                    continue
                line = self._expand(line)
                if self._command(line) == "exit":
                    break
            self.result.exit_code = 0
        except DiskShadowFailure as failure:
            self.print(*failure.lines)
            self.print(*failure_block(failure.hresult, failure.symbol))
            self.result.failure = failure.hresult
            self.result.exit_code = self.model.diskshadow_failure_exit_code
        except DiskShadowStopped:
            self.result.exit_code = None
        finally:
            self._finish()
        self.result.output = "\n".join(self.lines) + ("\n" if self.lines else "")
        self.result.environment = dict(self.environment)
        return self.result

    def _finish(self):
        """diskshadow exits: waiting writers are aborted, volatile shadows deleted, the creation lock released."""
        if self.included and self.backup and not self.ended:
            for writer in self.included:
                if writer.state == STATE_WAITING_FOR_BACKUP_COMPLETE:
                    self.model.writers.transition(writer, STATE_STABLE, "Abort", set_id=self.set_id, run_id=self.run_id,
                                                 backup_type=self.backup_type)
        if self.context == "volatile":
            for entry in self.created:
                self.model.shadows.delete(entry["id"])
        with self.model.lock:
            if self.model.shadows.creating_set is self:
                self.model.shadows.creating_set = None

    def _expand(self, line):
        """``%name%`` of diskshadow's environment (aliases, VSS_SHADOW_SET): echoed as ``-> %name% = value``."""

        def replace(match):
            value = self.env(match.group(1))
            if value is None:
                return match.group(0)
            self.print("-> %%%s%% = %s" % (match.group(1), value))
            return value

        return re.sub(r"%([^%\s]+)%", replace, line)

    def _command(self, line):  # pylint: disable=too-many-return-statements,too-many-branches
        words = line.split()
        verb = words[0].lower()
        rest = line[len(words[0]):].strip()
        second = words[1].lower() if len(words) > 1 else ""
        if verb == "set":
            return self._set(words[1:])
        if verb == "writer" and second in ("verify", "exclude"):
            target = _unquote(line.split(None, 2)[2]) if len(words) > 2 else ""
            if not target:
                raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["The writer command needs a writer id or name."])
            (self.verify if second == "verify" else self.exclude).append(target)
            return None
        if verb in ("begin", "end") and second == "backup":
            return self._begin_backup() if verb == "begin" else self._end_backup()
        if verb == "add" and second == "volume":
            return self._add_volume(words[2:])
        if verb == "create":
            return self._create()
        if verb == "exec":
            return self._exec(_unquote(rest))
        if verb == "delete" and second == "shadows":
            return self._delete(words[2:])
        if verb == "list" and second == "shadows":
            return self._list_shadows(words[2:])
        if verb == "list" and second == "writers":
            return self._list_writers(words[2:])
        if verb == "expose":
            return self._expose(words[1:])
        if verb == "unexpose":
            return self._unexpose(words[1:])
        if verb == "revert":
            return self._revert(words[1:])
        if verb == "reset":
            self._finish()
            self._reset_context()
            return None
        if verb in ("exit", "quit"):
            return "exit"
        raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ['The command "%s" is not recognized by the lab\'s diskshadow.' % line])

    # ------------------------------------------------------------------------------------------- settings
    def _set(self, words):
        key = words[0].lower() if words else ""
        values = [word.lower() for word in words[1:]]
        if key == "context":
            if not values or values[0] not in ("persistent", "volatile", "clientaccessible"):
                raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["set context takes persistent, volatile or clientaccessible."])
            if self.created:
                raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["The context cannot change after create; use reset."])
            self.context = values[0]
            self.no_writers = "nowriters" in values[1:]
        elif key == "verbose":
            self.verbose = bool(values) and values[0] == "on"
        elif key == "metadata":
            path = _unquote(" ".join(words[1:]))
            self.metadata = self._absolute(path)
            if self.model.files.exists(self.metadata):
                self.print("The existing file will be overwritten.")
        elif key == "option":
            return None
        else:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["set takes context, option, verbose or metadata."])
        return None

    def _absolute(self, path):
        if re.match(r"^[A-Za-z]:\\", path) or path.startswith("\\\\"):
            return path
        return (self.cwd or "C:\\Windows\\system32").rstrip("\\") + "\\" + path

    def _begin_backup(self):
        if self.created:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["begin backup must come before create."])
        self.backup = True
        self.backup_type = "full"

    def _end_backup(self):
        if not self.backup or not self.created:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["end backup needs begin backup and create before it."])
        for writer in self.included:
            if writer.state == STATE_WAITING_FOR_BACKUP_COMPLETE:
                self.model.writers.transition(writer, STATE_STABLE, "BackupComplete", set_id=self.set_id,
                                             run_id=self.run_id, backup_type=self.backup_type)
        self.ended = True

    def _add_volume(self, words):
        if self.created:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["Volumes cannot be added after create; use reset."])
        if not words:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["add volume needs a volume."])
        name = _unquote(words[0])
        alias = None
        lowered = [word.lower() for word in words]
        if "alias" in lowered and lowered.index("alias") + 1 < len(words):
            alias = words[lowered.index("alias") + 1]
        volume = self.model.storage.find_volume(name)
        if volume is None or name.lower().rstrip("\\") + "\\" not in [path.lower() for path in volume.access_paths()]:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ['The volume "%s" is not a volume of this computer.' % name])
        if any(entry["volume"] is volume for entry in self.volumes):
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_ALREADY_EXISTS"], ["The volume %s is already in the shadow copy set." % name])
        if len(self.volumes) >= MAX_VOLUMES:
            raise DiskShadowFailure(HRESULTS["VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED"])
        if alias is None:
            alias = "VSS_SHADOW_%d" % (len(self.volumes) + 1)
        self.volumes.append({"volume": volume, "alias": alias, "name": name})

    # ------------------------------------------------------------------------------------------------ create
    def _writer_by(self, target):
        guid = _guid(target)
        for writer in self.model.writers:
            if (guid and writer.writer_id == guid) or writer.name.lower() == target.lower():
                return writer
        return None

    def _select_writers(self):
        """Included writers and their included components; verbose lines; verify failures (raised)."""
        in_set = [entry["volume"] for entry in self.volumes]
        visible = [] if self.no_writers else self.model.writers.visible()
        excluded_ids = {w.writer_id for w in (self._writer_by(t) for t in self.exclude) if w is not None}
        included, lines, partial = [], [], {}
        for writer in visible:
            if writer.writer_id in excluded_ids:
                continue
            components = self.model.writers.components(writer)
            missing = []
            for component in components:
                outside = [volume for volume in component["volumes"] if volume not in in_set]
                if outside:
                    missing.append((component, outside[0]))
            if writer.name == SCO_WRITER_NAME and missing:
                lines.insert(0, 'Excluding writer "%s", because all of its components have been excluded.' % writer.name)
                partial[writer.writer_id] = (writer, len(components), len(components))
                continue
            for component, volume in missing:
                lines += ['Component "%s" from writer "%s" is excluded from backup,' % (component["spec"].full_path, writer.name),
                          "because it requires volume %s which is not in the shadow copy set." % volume.display_name]
            partial[writer.writer_id] = (writer, len(missing), len(components))
            if len(missing) < len(components):
                included.append((writer, [c for c in components if c not in [m[0] for m in missing]]))
        verbose = list(lines)
        for writer, components in included:
            verbose.append('Including writer "%s":' % writer.name)
            verbose += [INDENT + "+ Adding component: %s" % component["spec"].full_path for component in components]
        if self.verbose:
            self.print(*verbose)
        for target in self.verify:
            writer = self._writer_by(target)
            if writer is None or writer not in visible:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], [
                    'The writer %s required (writer verify) is not present on this computer.' % target])
            if writer.writer_id in excluded_ids:
                excluded_count = total = len(writer.spec.components)
            else:
                dummy, excluded_count, total = partial[writer.writer_id]
            if excluded_count:
                raise DiskShadowFailure(HRESULTS["VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT"], [
                    'The writer "%s" %s is required (writer verify) but %d of its %d components are excluded from '
                    "the backup." % (writer.name, writer.writer_id, excluded_count, total)])
        return [writer for writer, dummy in included]

    @staticmethod
    def _broken(writer):
        """A writer put in a failed state (or a non-responding one) fails every creation, at its own phase, until its
        service restarts or the lab sets it back; a failure a fault caused lasts one creation. (state, error) or None."""
        if writer.transient_failure:
            return None
        if 6 <= writer.state <= 15 or writer.error != "no_error":
            state = writer.state if 6 <= writer.state <= 15 else STATE_FAILED_AT_FREEZE
            return state, writer.error if writer.error != "no_error" else catalog.DEFAULT_FAILURE_ERROR.get(state, "retryable")
        return None

    def _freeze_fault(self, writer, faults):
        """The (state, error) an armed fault makes the writer fail with at Freeze, or None."""
        for rule in faults:
            if rule["writer"] == writer.name:
                if rule["kind"] == "writer_timeout":
                    self._wait(rule["seconds"] or 0)
                    return STATE_FAILED_AT_FREEZE, "timed_out"
                return STATE_FAILED_AT_FREEZE, rule["error"] or "retryable"
        return None

    def _create(self):  # pylint: disable=too-many-branches,too-many-statements
        if self.created:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["A shadow copy set was already created; use reset."])
        if not self.volumes:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["No volume was added to the shadow copy set."])
        model = self.model
        if model.vss_faults.take(("snapshot_set_in_progress",)):
            raise DiskShadowFailure(HRESULTS["VSS_E_SNAPSHOT_SET_IN_PROGRESS"])
        with model.lock:
            if model.shadows.creating_set is not None:
                raise DiskShadowFailure(HRESULTS["VSS_E_SNAPSHOT_SET_IN_PROGRESS"])
            model.shadows.creating_set = self
        try:
            self._create_locked()
        finally:
            with model.lock:
                if model.shadows.creating_set is self:
                    model.shadows.creating_set = None

    def _create_locked(self):  # pylint: disable=too-many-locals,too-many-branches,too-many-statements
        model = self.model
        writers = self._select_writers()
        details = {"run_id": self.run_id, "backup_type": self.backup_type}
        writer_faults = model.vss_faults.take(("writer_fail_at_freeze", "writer_timeout"))
        frozen_journal = None
        failure = None
        broken = {writer.writer_id: self._broken(writer) for writer in writers}
        try:
            for writer in writers:
                if broken[writer.writer_id] is None:
                    writer.transient_failure = False
                    model.writers.transition(writer, STATE_STABLE, "PrepareForBackup", error="no_error", **details)
            for writer in writers:
                if broken[writer.writer_id] is None:
                    model.writers.transition(writer, STATE_WAITING_FOR_FREEZE, "PrepareForSnapshot", **details)
            for writer in writers:
                self._check_stop()
                failed = broken[writer.writer_id]
                if failed is None:
                    failed = self._freeze_fault(writer, writer_faults)
                    writer.transient_failure = failed is not None
                if failed is not None:
                    state, error = failed
                    model.writers.transition(writer, state, FAILURE_PHASE_EVENTS.get(state, "Freeze"), error=error,
                                            failed=True, **details)
                    failure = (writer, error)
                    break
                if writer.name == SQL_WRITER_NAME and model.application.journal is not None:
                    model.application.journal.freeze()
                    frozen_journal = model.application.journal
                model.writers.transition(writer, STATE_WAITING_FOR_THAW, "Freeze", **details)
            if failure is not None:
                writer, error = failure
                code = catalog.ERROR_HRESULTS.get(error) or HRESULTS["VSS_E_WRITERERROR_RETRYABLE"]
                raise DiskShadowFailure(code, ['The writer "%s" failed while the shadow copy set was created (state %d, '
                                               "VSS_WS_%s)." % (writer.name, writer.state,
                                                                catalog.WRITER_STATE_NAMES[writer.state])])
            for rule in model.vss_faults.take(("create_delay",)):
                self._wait(rule["seconds"] or 0)
            volumes = [entry["volume"] for entry in self.volumes]
            storage_faults = [rule for rule in model.vss_faults.take(("insufficient_storage",))
                              if not rule["volume"] or any(model.storage.find_volume(rule["volume"]) is v for v in volumes)]
            problem = model.shadows.diff_area_problem(volumes)
            if storage_faults or problem:
                raise DiskShadowFailure(HRESULTS["VSS_E_INSUFFICIENT_STORAGE"], [problem] if problem else [])
            if model.vss_faults.take(("provider_veto",)):
                raise DiskShadowFailure(HRESULTS["VSS_E_PROVIDER_VETO"])
            created = model.shadows.create_set([v.unique_id for v in volumes], persistent=self.context != "volatile",
                                              no_writers=self.no_writers, client_accessible=self.context == "clientaccessible")
        except (DiskShadowFailure, DiskShadowStopped):
            if frozen_journal is not None:
                frozen_journal.thaw()
                frozen_journal = None
            for writer in writers:
                if broken[writer.writer_id] is None and (failure is None or writer is not failure[0]):
                    model.writers.transition(writer, STATE_STABLE, "Abort", **details)
            raise
        finally:
            if frozen_journal is not None:
                frozen_journal.thaw()
        self.set_id = created["set_id"]
        self.created = created["shadows"]
        self.included = writers
        details["set_id"] = self.set_id
        for writer in writers:
            model.writers.transition(writer, STATE_WAITING_FOR_POST_SNAPSHOT, "Thaw", **details)
        for writer in writers:
            model.writers.transition(writer, STATE_WAITING_FOR_BACKUP_COMPLETE, "PostSnapshot", **details)
        if not self.backup:
            for writer in writers:
                model.writers.transition(writer, STATE_STABLE, "BackupShutdown", **details)
        model.vss_events.record("SnapshotSetCreated", set_id=self.set_id, context=self.context, no_writers=self.no_writers,
                               shadows={entry["alias"]: shadow["id"] for entry, shadow in zip(self.volumes, self.created)},
                               writers=[writer.name for writer in writers], **{k: v for k, v in details.items() if k != "set_id"})
        lines = []
        for entry, shadow in zip(self.volumes, self.created):
            self.environment[entry["alias"].upper()] = shadow["id"]
            self.aliases[entry["alias"]] = shadow["id"]
            self.result.shadows[entry["alias"]] = shadow["id"]
            lines.append("Alias %s for shadow ID %s set as environment variable." % (entry["alias"], shadow["id"]))
        self.environment["VSS_SHADOW_SET"] = self.set_id
        self.result.set_id = self.set_id
        lines.append("Alias VSS_SHADOW_SET for shadow set ID %s set as environment variable." % self.set_id)
        if writers or self.metadata:
            cab = self.metadata or self._absolute("%s_%s.cab" % (model.clock().strftime("%Y-%m-%d_%H-%M-%S"), model.hostname))
            model.files.write(cab, self._components_document(writers))
            name = cab.rsplit("\\", 1)[-1]
            lines += ["Inserted file Manifest.xml into .cab file %s" % name,
                      "Inserted file Dis%04X.tmp into .cab file %s" % (uuid.uuid4().int & 0xFFFF, name)]
        lines += ["", shadow_label(self.locale, "query_set") % self.set_id, ""]
        self.print(*lines)
        self._print_shadows([model.shadows.record(shadow["id"]) for shadow in self.created])

    def _components_document(self, writers):
        """The backup components document diskshadow puts in the .cab (a lab placeholder, XML)."""
        lines = ['<?xml version="1.0"?>',
                 "<!-- shadowsnap lab: placeholder of the backup components document (Manifest.xml of the .cab) -->",
                 '<BACKUP_COMPONENTS backupType="%s" snapshotSetId="%s" context="%s" computer="%s">' % (
                     "FULL" if self.backup else "COPY", self.set_id, self.context, self.model.hostname)]
        for writer in writers:
            lines.append('  <WRITER_COMPONENTS writerId="%s" instanceId="%s" writerName="%s">' % (
                writer.writer_id, writer.instance_id, writer.name))
            for component in self.model.writers.components(writer):
                spec = component["spec"]
                lines.append('    <COMPONENT logicalPath="%s" componentName="%s" />' % (spec.logical_path, spec.name))
            lines.append("  </WRITER_COMPONENTS>")
        for entry, shadow in zip(self.volumes, self.created):
            lines.append('  <SNAPSHOT volume="%s" shadowId="%s" />' % (entry["volume"].unique_id, shadow["id"]))
        lines.append("</BACKUP_COMPONENTS>")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    # ------------------------------------------------------------------------------------------------- exec
    def _exec(self, path):
        if not path:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["exec needs a file."])
        path = self._absolute(path)
        data = self.model.files.read(path)
        if data is None:
            raise DiskShadowFailure(HRESULTS["ERROR_FILE_NOT_FOUND"], ['The file "%s" cannot be found.' % path])
        from . import batch  # pylint: disable=import-outside-toplevel
        if batch.protocol_script_kind(data) is not None:
            code = batch.run_batch(self.model, path, data, self.environment, self.print, stop=self.stop,
                                      sleep=self.sleep, cwd=self.cwd, run_id=self.run_id)
        else:
            code = self.model.exec_exit_codes.get(path.lower(), 0)
        self._check_stop()
        if code != 0:
            raise DiskShadowFailure(HRESULTS["E_FAIL"], ['The script file "%s" returned error code %d.' % (path, code)])

    # --------------------------------------------------------------------------------------- shadow listing
    def _print_shadows(self, records):
        locale = self.locale
        by_id = {value.lower(): name for name, value in self.aliases.items()}
        lines = []
        for record in records:
            if record is None:
                continue
            alias = by_id.get(record["ID"].lower())
            set_alias = "%VSS_SHADOW_SET%" if self.set_id and record["SetID"].lower() == self.set_id.lower() else "<No Alias>"
            volume = self.model.storage.find_volume(record["VolumeName"])
            exposed = self.model.shadows.exposure_of(record["ID"])
            attributes = list(record["Attributes"])
            if exposed:
                attributes.append("Exposed_Locally")
            lines += [
                INDENT + shadow_label(locale, "id") + record["ID"] + "\t\t" + ("%%%s%%" % alias if alias else "<No Alias>"),
                DETAIL + shadow_label(locale, "set") + record["SetID"] + "\t" + set_alias,
                DETAIL + shadow_label(locale, "count") + str(record["Count"]),
                DETAIL + shadow_label(locale, "volume") + "%s [%s]" % (record["VolumeName"], volume.display_name if volume else "?"),
                DETAIL + shadow_label(locale, "time") + locale.format_date(dmtf_to_datetime(record["InstallDate"])),
                DETAIL + shadow_label(locale, "device") + record["DeviceObject"],
                DETAIL + shadow_label(locale, "origin") + record["OriginatingMachine"],
                DETAIL + shadow_label(locale, "service") + record["ServiceMachine"],
                DETAIL + (shadow_label(locale, "exposed") + exposed if exposed else shadow_label(locale, "not_exposed")),
                DETAIL + shadow_label(locale, "provider") + record["ProviderID"],
                DETAIL + shadow_label(locale, "attributes") + " ".join(attributes),
                "",
            ]
        lines.append(shadow_label(locale, "listed") % len([r for r in records if r is not None]))
        self.print(*lines)

    def _list_shadows(self, words):
        kind = words[0].lower() if words else "all"
        records = self.model.shadows.list()
        if kind == "all":
            header = shadow_label(self.locale, "query_all")
        elif kind == "set" and len(words) > 1 and _guid(words[1]):
            header = shadow_label(self.locale, "query_set") % _guid(words[1])
            records = [r for r in records if r["SetID"].lower() == _guid(words[1])]
        elif kind == "id" and len(words) > 1 and _guid(words[1]):
            header = shadow_label(self.locale, "query_id") % _guid(words[1])
            records = [r for r in records if r["ID"].lower() == _guid(words[1])]
        else:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["list shadows takes all, set {id} or id {id}."])
        self.print("", header, "")
        self._print_shadows(records)

    def _list_writers(self, words):
        kind = words[0].lower() if words else "metadata"
        writers = self.model.writers.visible()
        if kind == "status":
            self.print(*diskshadow_list_writers_status(self.locale, writers))
        elif kind in ("detailed", "metadata"):
            self.print(*diskshadow_list_writers_detailed(self.locale, writers, self.model.writers.components))
        else:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["list writers takes status, metadata or detailed."])

    # ---------------------------------------------------------------------------------------- delete, expose
    def _delete(self, words):  # pylint: disable=too-many-branches
        kind = words[0].lower() if words else ""
        argument = words[1] if len(words) > 1 else ""
        records = self.model.shadows.list()
        if kind == "all":
            targets = records
        elif kind in ("set", "id"):
            guid = _guid(argument)
            if guid is None:
                raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["delete shadows %s needs a {GUID}." % kind])
            targets = [r for r in records if (r["SetID"] if kind == "set" else r["ID"]).lower() == guid]
            if kind == "id" and not targets:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["The shadow copy %s does not exist." % guid])
        elif kind in ("volume", "oldest"):
            volume = self.model.storage.find_volume(argument)
            if volume is None:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ['The volume "%s" is not a volume of this computer.' % argument])
            targets = [r for r in records if r["VolumeName"] == volume.unique_id]
            if kind == "oldest":
                targets = targets[:1]
        elif kind == "exposed":
            shadow_id = self.model.shadows.exposures.get(self._exposure_name(argument))
            targets = [r for r in records if shadow_id and r["ID"].lower() == shadow_id.lower()]
        else:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["delete shadows takes all, set, id, volume, oldest or exposed."])
        lines = []
        for record in targets:
            attributes = list(record["Attributes"]) + (["Exposed_Locally"] if self.model.shadows.exposure_of(record["ID"]) else [])
            lines.append("Deleting shadow copy %s on volume %s from provider %s [Attributes: 0x%08x]..." % (
                record["ID"], record["VolumeName"], record["ProviderID"], attribute_bits(attributes)))
            if self.model.shadows.delete(record["ID"]):
                self.result.deleted.append(record["ID"])
        self.print(*(lines + ["", "Number of shadow copies deleted: %d" % len(targets)]))

    @staticmethod
    def _exposure_name(text):
        text = _unquote(text)
        if len(text) == 1 and text.isalpha():
            text += ":"
        if len(text) == 2 and text[1] == ":":
            text += "\\"
        return text.upper() if len(text) == 3 else text

    def _expose(self, words):
        if len(words) < 2:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["expose needs a shadow copy and a drive letter."])
        guid = _guid(words[0])
        record = self.model.shadows.record(guid) if guid else None
        if record is None:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["The shadow copy %s does not exist." % words[0]])
        if not record["Persistent"]:
            raise DiskShadowFailure(HRESULTS["VSS_E_UNSUPPORTED_CONTEXT"], ["Only persistent shadow copies can be exposed."])
        name = self._exposure_name(words[1])
        with self.model.lock:
            if self.model.storage.find_volume(name) is not None or name in self.model.shadows.exposures:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_ALREADY_EXISTS"], ["%s is already in use." % name])
            self.model.shadows.exposures[name] = record["ID"]
        self.print("The shadow copy was successfully exposed as %s." % name)

    def _unexpose(self, words):
        name = self._exposure_name(words[0]) if words else ""
        with self.model.lock:
            if name not in self.model.shadows.exposures:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["No shadow copy is exposed as %s." % name])
            del self.model.shadows.exposures[name]
        self.print("The shadow copy was successfully unexposed.")

    def _revert(self, words):
        guid = _guid(words[0]) if words else None
        record = self.model.shadows.record(guid) if guid else None
        if record is None:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["The shadow copy %s does not exist." % (words[0] if words else "")])
        if not record["ClientAccessible"]:
            raise DiskShadowFailure(HRESULTS["VSS_E_UNSUPPORTED_CONTEXT"], [
                "diskshadow reverts client-accessible shadow copies only (use vssadmin revert shadow for persistent ones)."])
        self.model.shadows.revert(record["ID"])
        self.print("The shadow copy was successfully reverted.")


def run_diskshadow(model, script, **options):
    """Run a script on a host model; returns the :class:`DiskShadowResult`."""
    return DiskShadow(model, **options).run_script(script)
