r"""``robocopy.exe`` of a simulated Windows Server: copies files and folders between the host's volumes and exposed
shadow copies with what Microsoft documents it copies and reports.

Modelled from the robocopy documentation (learn.microsoft.com, windows-server/administration/windows-commands/robocopy):

- ``robocopy <source> <destination> [<file>[ ...]] [<options>]``: the files of ``source`` whose names match a pattern
  (``*`` and ``?``; default ``*.*``), with ``/E`` those of every folder below it too (empty ones included);
- ``/COPY:<flags>`` for files (default ``DAT``): ``D`` data, ``A`` attributes, ``T`` time stamps (created and last
  written), ``S`` security (the explicit entries and whether inheritance is off: inherited entries come from the
  destination's folders), ``O`` owner, ``U`` auditing (not modelled); ``/DCOPY:<flags>`` for folders (default ``DA``:
  ``T`` copies their time stamps; their security follows ``/COPY``);
- a destination file is classified against the source: absent (copied), *same* size and last-write time (skipped
  unless ``/IS``), *newer*, *older* or *changed* (copied unless ``/XN``, ``/XO``, ``/XC``);
- exit code: a bit mask, 0 nothing to do, 1 files copied, 2 extra files, 4 mismatches, 8 copies failed, 16 a fatal
  error (no source folder; nothing copied); 8 and above is a failure;
- ``/NJH`` ``/NDL`` ``/NFL`` ``/NP`` (no job header, folder list, file list, progress): only failures and the job
  summary are printed; ``/BYTES`` prints sizes as numbers. Each failure is a line
  ``<time> ERROR <code> (0x<hex>) <what failed> <path>`` and the system's message on the next line; the summary is a
  rule of dashes, a column header, then rows ``Dirs``, ``Files``, ``Bytes`` of Total, Copied, Skipped, Mismatch,
  FAILED, Extras;
- ``/B`` (backup mode: reads what the ACLs deny, with the Backup privilege), ``/R:n`` ``/W:n`` (retries, wait) and
  ``/XJ`` (no junctions) are accepted and change nothing here: the lab has no denied files, retries would fail the
  same way, and volumes hold no junctions.

The host setting ``copy_fail_after_files`` makes every file copy fail with ERROR 112 (disk full) once that many files
were copied on the host since the setting was made: a copy that fails halfway.
"""

import fnmatch
import re

DISK_FULL = (112, "There is not enough space on the disk.")
NOT_FOUND = (2, "The system cannot find the file specified.")
DEFAULT_FILE_FLAGS = "DAT"
DEFAULT_FOLDER_FLAGS = "DA"
FLAGS = re.compile(r"^/(D?COPY):([DATSOUX]*)$", re.IGNORECASE)
ACCEPTED = re.compile(r"^/(E|S|B|XJ|NP|NJH|NDL|NFL|BYTES|IS|IT|XC|XN|XO|R:\d+|W:\d+)$", re.IGNORECASE)
RULE = "-" * 78


class Options:  # pylint: disable=too-few-public-methods
    """The parsed command line."""

    def __init__(self, arguments):
        positional, switches = [], []
        for argument in arguments:
            (switches if str(argument).startswith("/") else positional).append(str(argument))
        if len(positional) < 2:
            raise ValueError("robocopy needs a source and a destination")
        self.source, self.destination = positional[0].rstrip("\\"), positional[1].rstrip("\\")
        self.patterns = positional[2:] or ["*.*"]
        self.file_flags, self.folder_flags = DEFAULT_FILE_FLAGS, DEFAULT_FOLDER_FLAGS
        self.switches = set()
        for switch in switches:
            flags = FLAGS.match(switch)
            if flags:
                if flags.group(1).upper() == "COPY":
                    self.file_flags = flags.group(2).upper()
                else:
                    self.folder_flags = flags.group(2).upper()
            elif ACCEPTED.match(switch):
                self.switches.add(switch.upper().split(":")[0])
            else:
                raise ValueError("Invalid Parameter #%d : \"%s\"" % (arguments.index(switch) + 1, switch))

    def matches(self, name):
        return any(fnmatch.fnmatch(name.lower(), "*" if p == "*.*" else p.lower()) for p in self.patterns)


def _below(relative, path):
    """``path`` relative to the folder ``relative`` of the same tree, or None when it is not below it."""
    if not relative:
        return path
    return path[len(relative) + 1:] if path.lower().startswith(relative.lower() + "\\") else None


def _classify(source, destination):
    if destination is None:
        return "new"
    if source["size"] == destination["size"] and source["modified"] == destination["modified"]:
        return "same"
    if source["modified"] and destination["modified"] and source["modified"] != destination["modified"]:
        return "newer" if source["modified"] > destination["modified"] else "older"
    return "changed"


EXCLUDED_BY = {"newer": "/XN", "older": "/XO", "changed": "/XC"}


class Robocopy:
    """One robocopy run on a host's model: :meth:`run` answers (text, exit code)."""

    def __init__(self, model, arguments):
        self.model = model
        self.options = Options(arguments)
        self.lines = []
        self.counts = {row: [0, 0, 0, 0, 0, 0] for row in ("Dirs", "Files", "Bytes")}

    def _error(self, code, message, what, path):
        stamp = self.model.clock().strftime("%Y/%m/%d %H:%M:%S")
        self.lines += ["%s ERROR %d (0x%08X) %s %s" % (stamp, code, code, what, path), message, ""]

    def run(self):
        files = self.model.files
        try:
            source = files.tree(self.options.source)
        except ValueError:
            source = None
        if source is None or (source.relative and not any(
                _below(source.relative, name) is not None for name in source.files)
                and source.relative.lower() not in source.security):
            self._error(NOT_FOUND[0], NOT_FOUND[1], "Accessing Source Directory", self.options.source + "\\")
            return "\r\n".join(self.lines) + "\r\n", 16
        recurse = "/E" in self.options.switches or "/S" in self.options.switches
        folders, chosen = {""}, []
        for name in sorted(source.files):
            below = _below(source.relative, name)
            if below is None:
                continue
            folder, dummy, leaf = below.rpartition("\\")
            if folder and not recurse:
                continue
            if self.options.matches(leaf):
                chosen.append(below)
                if recurse:
                    parts = folder.split("\\") if folder else []
                    folders.update("\\".join(parts[:depth]) for depth in range(1, len(parts) + 1))
        if recurse:
            for record in source.security.values():
                below = _below(source.relative, record["path"])
                if below and not any(name.lower() == record["path"].lower() for name in source.files):
                    folders.add(below)
        failed_files = 0
        for folder in sorted(folders, key=lambda f: (f.count("\\"), f.lower())):
            self._folder(source, folder)
        for below in chosen:
            failed_files += self._file(source, below)
        exit_code = (1 if self.counts["Files"][1] else 0) | (8 if failed_files else 0)
        self.lines += ["", RULE, "",
                       "%20s%10s%10s%10s%10s%10s" % ("Total", "Copied", "Skipped", "Mismatch", "FAILED", "Extras")]
        for row in ("Dirs", "Files", "Bytes"):
            self.lines.append("%9s :%10d%10d%10d%10d%10d%10d" % (row, *self.counts[row]))
        self.lines.append("   Ended : %s" % self.model.clock().strftime("%A, %B %d, %Y %I:%M:%S %p"))
        return "\r\n".join(self.lines) + "\r\n", exit_code

    def _source_path(self, source, below):
        return "\\".join(part for part in (source.relative, below) if part)

    def _metadata(self, source, below, flags):
        """What of the source's own metadata the flags copy."""
        record = self.model.files.info(self.options.source + ("\\" + below if below else ""))
        own = (source.security.get(self._source_path(source, below).lower()) or {})
        copied = {}
        if "T" in flags:
            copied.update(created=record["created"], modified=record["modified"])
        if "S" in self.options.file_flags:
            copied.update(aces=[dict(entry) for entry in own.get("aces", [])], protected=bool(own.get("protected")))
        if "O" in self.options.file_flags:
            copied.update(owner=record["owner"])
        return copied

    def _folder(self, source, below):
        target = self.options.destination + ("\\" + below if below else "")
        self.counts["Dirs"][0] += 1
        if not self._on_volume(target) or self.model.files.info(target)["exists"]:
            self.counts["Dirs"][2] += 1
            return
        self.counts["Dirs"][1] += 1
        self.model.files.set_info(target, **self._metadata(source, below, self.options.folder_flags))

    def _on_volume(self, path):
        return self.model.storage.find_volume(self.model.files.real_path(path)) is not None

    def _file(self, source, below):
        """Copies one file (or skips it); 1 when it failed."""
        source_path = self.options.source + "\\" + below
        target = self.options.destination + "\\" + below
        data = source.files.get(next(name for name in source.files if name.lower() == self._source_path(source, below).lower()))
        wanted = self.model.files.info(source_path)
        present = self.model.files.info(target) if self._on_volume(target) else None
        kind = _classify(wanted, present if present and present["exists"] and not present["folder"] else None)
        self.counts["Files"][0] += 1
        self.counts["Bytes"][0] += len(data)
        if (kind == "same" and "/IS" not in self.options.switches) or (
                kind in EXCLUDED_BY and EXCLUDED_BY[kind] in self.options.switches):
            self.counts["Files"][2] += 1
            self.counts["Bytes"][2] += len(data)
            return 0
        limit = self.model.copy_fail_after_files
        if limit is not None and self.model.files_copied >= limit:
            self._error(DISK_FULL[0], DISK_FULL[1], "Copying File", source_path)
            self.counts["Files"][4] += 1
            self.counts["Bytes"][4] += len(data)
            return 1
        if not self._on_volume(target):
            self._error(3, "The system cannot find the path specified.", "Creating Destination Directory",
                        self.options.destination + "\\")
            self.counts["Files"][4] += 1
            self.counts["Bytes"][4] += len(data)
            return 1
        self.model.files.write(target, data if "D" in self.options.file_flags else b"")
        metadata = self._metadata(source, below, self.options.file_flags)
        if metadata:
            self.model.files.set_info(target, **metadata)
        self.model.files_copied += 1
        self.counts["Files"][1] += 1
        self.counts["Bytes"][1] += len(data)
        return 0


def run_robocopy(model, arguments):
    """``(output text, exit code)`` of ``robocopy.exe`` with ``arguments`` on the host's model."""
    try:
        robocopy = Robocopy(model, [str(argument) for argument in arguments])
    except ValueError as error:
        return "ERROR : %s\r\n" % error, 16
    with model.lock, model.blockstore.locked():
        return robocopy.run()
