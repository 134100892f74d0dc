"""The simulated diskshadow process: script mode, its commands and settings, ``exec``, and how it ends."""

import re
import time

from ..render import diskshadow_banner
from .common import HRESULTS, DiskShadowFailure, DiskShadowStopped, failure_block, unquote
from .create import STATE_STABLE, STATE_WAITING_FOR_BACKUP_COMPLETE, CreateCommand
from .listing import ShadowCommands

MAX_VOLUMES = 64
ENVIRONMENT = {"SYSTEMROOT": "C:\\Windows", "WINDIR": "C:\\Windows", "PROGRAMDATA": "C:\\ProgramData",
               "TEMP": "C:\\Windows\\TEMP", "TMP": "C:\\Windows\\TEMP", "COMSPEC": "C:\\Windows\\system32\\cmd.exe"}


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


class DiskShadow(CreateCommand, ShadowCommands):  # pylint: disable=too-many-instance-attributes
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
            target = unquote(line.split(None, 2)[2]) if len(words) > 2 else ""
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
            return self._exec(unquote(rest))
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
            path = unquote(" ".join(words[1:]))
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
        name = unquote(words[0])
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

    def _exec(self, path):
        if not path:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["exec needs a file."])
        path = self._absolute(path)
        data = self.model.files.read(path)
        if data is None:
            raise DiskShadowFailure(HRESULTS["ERROR_FILE_NOT_FOUND"], ['The file "%s" cannot be found.' % path])
        from .. import batch  # pylint: disable=import-outside-toplevel
        if batch.protocol_script_kind(data) is not None:
            code = batch.run_batch(self.model, path, data, self.environment, self.print, stop=self.stop,
                                   sleep=self.sleep, cwd=self.cwd, run_id=self.run_id)
        else:
            code = self.model.exec_exit_codes.get(path.lower(), 0)
        self._check_stop()
        if code != 0:
            raise DiskShadowFailure(HRESULTS["E_FAIL"], ['The script file "%s" returned error code %d.' % (path, code)])


def run_diskshadow(model, script, **options):
    """Run a script on a host model; returns the :class:`DiskShadowResult`."""
    return DiskShadow(model, **options).run_script(script)
