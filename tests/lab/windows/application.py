r"""The application of a simulated SQL Server host: a write-ahead-logged database across a data and a log volume.

:class:`Journal` is the "application" of win-sql-01: a database whose write-ahead log lives on the log volume (E:)
and whose data file lives on the data volume (D:). A transaction appends its log record first, then applies it to
the data file, in two separate steps (another thread, e.g. an EBS snapshot, may run between them), or later (lazy
writes, a page write cut in half: a torn page). Its VSS writer flushes it at freeze. :meth:`Journal.read` reads the
state back from any two file maps, such as the images of two EBS snapshots or of the shadow copies embedded in them,
and :func:`check_consistency` / :func:`assess_journal` are the invariant checker of the backup tests.
:class:`SqlApplication` is the application as it runs on a host (``server.application``).
"""

import json
import threading
import zlib
from dataclasses import dataclass, field

from . import catalog
from .storage import normalize


@dataclass(frozen=True)
class JournalState:  # pylint: disable=too-many-instance-attributes
    """What a data file and a log file say: the LSN the data has applied, the log's records, the data's rows.

    ``torn``: the data page does not read back whole (a write that reached the disk only in part: a crash image
    taken in the middle of a page write). ``missing``: the file names that were absent from the maps read.
    ``replayed_rows``: the rows the log gives up to ``applied_lsn`` (what the data page must hold).
    """

    applied_lsn: int
    log_lsns: tuple
    rows: dict
    log_rows: dict
    torn: bool = False
    missing: tuple = ()
    replayed_rows: dict = field(default_factory=dict)

    @property
    def last_log_lsn(self):
        return self.log_lsns[-1] if self.log_lsns else 0


JOURNAL_MODES = ("sync", "lazy", "torn")


class Journal:
    """A small write-ahead-logged database (``shop``) spread over a data volume and a log volume.

    Write-ahead: a transaction commits when its log record is on the log volume; the data page is written later.
    ``write_transaction(mode=...)``: ``sync`` (the default) writes the data page right after the log record (the image
    is consistent again once the call returns), ``lazy`` leaves the page to the lazy writer (:meth:`checkpoint`), so
    the log runs ahead of the data, and ``torn`` starts the page write and stops half way (a torn page on disk until
    the next checkpoint). An EBS snapshot of such an image is crash-consistent: it needs recovery (redo from the log)
    before the database opens. The VSS writer of the application (SqlServerWriter) calls :meth:`freeze` at Freeze: it
    flushes (checkpoints) and holds every write until :meth:`thaw`, so a shadow copy taken in between is consistent.
    :meth:`start_background` runs the application in a thread: lazy transactions with a checkpoint every few, some of
    them written in two halves with a pause between (a window in which the data page is torn).
    """

    def __init__(self, data_volume, log_volume, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
        self.data_volume = data_volume
        self.log_volume = log_volume
        self.data_path = normalize(data_path)
        self.log_path = normalize(log_path)
        # The engine's latch: transactions, checkpoints and the writer's freeze serialise on it (lock order: this
        # latch before the host model's lock before the BlockStore's).
        self.latch = threading.RLock()
        self.frozen = False
        self._background = None
        self._stop = threading.Event()
        self.background_settings = {}
        self.background_count = 0
        self._tail_cache = None

    def initialize(self):
        self.log_volume.write(self.log_path, b"")
        self._write_data(0, {})

    @staticmethod
    def page_bytes(lsn, rows):
        """The data page as the engine writes it: the applied LSN, the rows and a checksum over both."""
        body = json.dumps({"applied_lsn": lsn, "rows": rows}, sort_keys=True)
        document = {"database": "shop", "applied_lsn": lsn, "rows": rows, "checksum": zlib.crc32(body.encode("utf-8"))}
        return json.dumps(document, sort_keys=True).encode("utf-8")

    def _write_data(self, lsn, rows):
        self.data_volume.write(self.data_path, self.page_bytes(lsn, rows))

    def _write_half(self, lsn, rows):
        """A page write that reached the disk only in part: the new page's first half over the old page."""
        new = self.page_bytes(lsn, rows)
        old = self.data_volume.read(self.data_path) or b""
        half = len(new) // 2
        tail = old[half:len(new)]
        self.data_volume.write(self.data_path, new[:half] + tail + b"\0" * (len(new) - half - len(tail)))

    def state(self):
        return self.read(
            {self.data_path: self.data_volume.read(self.data_path) or b""},
            {self.log_path: self.log_volume.read(self.log_path) or b""},
            self.data_path,
            self.log_path,
        )

    def _log_tail(self):
        """The last LSN and the rows of the whole log (the redo of every committed transaction). The log only grows
        while the application writes, so what was read before is kept and only the appended records are parsed."""
        log = self.log_volume.read(self.log_path) or b""
        cached = self._tail_cache
        if cached is not None and len(log) >= cached[0] and log[max(0, cached[0] - 64):cached[0]] == cached[1]:
            start, last, rows = cached[0], cached[2], dict(cached[3])
        else:
            start, last, rows = 0, 0, {}
        cut = log.rfind(b"\n") + 1
        state = self.read({}, {self.log_path: log[start:cut]}, self.data_path, self.log_path)
        if state.log_lsns:
            last = state.last_log_lsn
            rows.update(state.log_rows)
        self._tail_cache = (cut, log[max(0, cut - 64):cut], last, dict(rows))
        return last, rows

    def write_transaction(self, changes=None, mode="sync"):
        """Log the transaction (commit), then write the data page as ``mode`` says; returns its LSN."""
        if mode not in JOURNAL_MODES:
            raise ValueError("mode must be one of %s, not %r" % (", ".join(JOURNAL_MODES), mode))
        blockstore = self.data_volume.blockstore
        with self.latch:
            with blockstore.locked():
                lsn = self._log_tail()[0] + 1
                changes = dict(changes) if changes is not None else {"order-%06d" % lsn: "lsn %d" % lsn}
                record = {"lsn": lsn, "txn": "T%06d" % lsn, "changes": changes}
                self.log_volume.append(self.log_path, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
            if mode == "sync":
                self.checkpoint()
            elif mode == "torn":
                with blockstore.locked():
                    last, rows = self._log_tail()
                    self._write_half(last, rows)
        return lsn

    def checkpoint(self):
        """The lazy writer: the data page becomes the redo of the whole log, written whole. Returns the LSN."""
        with self.latch, self.data_volume.blockstore.locked():
            last, rows = self._log_tail()
            self._write_data(last, rows)
            return last

    def freeze(self):
        """The VSS writer's Freeze: flush (checkpoint) and hold every write until :meth:`thaw` (same thread)."""
        self.latch.acquire()  # pylint: disable=consider-using-with
        self.frozen = True
        return self.checkpoint()

    def thaw(self):
        self.frozen = False
        self.latch.release()

    # ------------------------------------------------------------------------------------- the application
    def start_background(self, interval=0.01, checkpoint_every=4, torn_pause=0.005):
        """Keep writing lazy transactions in a thread; every ``checkpoint_every`` transactions a checkpoint whose page
        write stops half way for ``torn_pause`` seconds (the window in which a crash image shows a torn page)."""
        if interval <= 0 or checkpoint_every < 1 or torn_pause < 0:
            raise ValueError("interval must be > 0, checkpoint_every >= 1, torn_pause >= 0")
        self.stop_background()
        self._stop = threading.Event()
        self.background_settings = {"interval": interval, "checkpoint_every": checkpoint_every, "torn_pause": torn_pause}
        thread = threading.Thread(target=self._run_background, args=(self._stop, interval, checkpoint_every, torn_pause),
                                  name="lab-sql-application", daemon=True)
        self._background = thread
        thread.start()

    def _run_background(self, stop, interval, checkpoint_every, torn_pause):
        count = 0
        while not stop.wait(interval):
            self.write_transaction(mode="lazy")
            count += 1
            self.background_count += 1
            if count % checkpoint_every == 0:
                with self.latch:
                    with self.data_volume.blockstore.locked():
                        last, rows = self._log_tail()
                        self._write_half(last, rows)
                    stop.wait(torn_pause)
                    self.checkpoint()

    @property
    def background_running(self):
        return self._background is not None and self._background.is_alive()

    def stop_background(self, timeout=5.0):
        thread = self._background
        self._stop.set()
        if thread is not None:
            thread.join(timeout)
        self._background = None
        self.background_settings = {}

    @staticmethod
    def read(data_files, log_files, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
        """The journal as stored in two file maps (live volumes or EBS snapshot images); missing files read as empty.

        A data page that does not parse or whose checksum does not match reads as ``torn`` (``applied_lsn`` -1);
        an unfinished last log line (a log write cut short) is not a record.
        """
        data_path, log_path = normalize(data_path), normalize(log_path)
        missing = tuple(path for path, files in ((data_path, data_files), (log_path, log_files)) if files.get(path) is None)
        data = data_files.get(data_path) or b""
        log = log_files.get(log_path) or b""
        torn = False
        document = {"applied_lsn": 0, "rows": {}}
        if data:
            try:
                document = json.loads(data.decode("utf-8"))
                if "checksum" in document:
                    body = json.dumps({"applied_lsn": document["applied_lsn"], "rows": document["rows"]}, sort_keys=True)
                    torn = zlib.crc32(body.encode("utf-8")) != document["checksum"]
            except (ValueError, KeyError, TypeError):
                torn = True
        if torn:
            document = {"applied_lsn": -1, "rows": {}}
        lsns = []
        log_rows = {}
        replayed = {}
        for line in log.decode("utf-8", errors="replace").split("\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            lsns.append(record["lsn"])
            log_rows.update(record["changes"])
            if record["lsn"] <= document["applied_lsn"]:
                replayed.update(record["changes"])
        return JournalState(document["applied_lsn"], tuple(lsns), document["rows"], log_rows, torn, missing, replayed)


def assess_journal(data_files, log_files, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
    """The invariant checker's full verdict on a data image and a log image (see :func:`check_consistency`).

    ``consistent``: the database opens as it is (application-consistent: a shadow copy taken with the writer's
    freeze). ``recoverable``: crash recovery (redo from the log) can make it consistent: the log is ahead of the data,
    or the page is torn but the log holds every change. ``reasons``: what is wrong, in words.
    """
    state = Journal.read(data_files, log_files, data_path, log_path)
    reasons = []
    recoverable = True
    for path in state.missing:
        reasons.append("%s is missing from the image" % path)
        recoverable = False
    if not state.missing:
        if state.torn:
            reasons.append("the data page of %s is torn (a half-written page): crash recovery must rebuild it from the log"
                           % normalize(data_path))
        elif state.applied_lsn > state.last_log_lsn:
            reasons.append("the data page has applied LSN %d but the log ends at LSN %d: data and log come from different "
                           "points in time (write-ahead order broken)" % (state.applied_lsn, state.last_log_lsn))
            recoverable = False
        else:
            if state.applied_lsn < state.last_log_lsn:
                reasons.append("the log holds LSN %d..%d that the data page has not applied: a crash image, crash "
                               "recovery must redo them" % (state.applied_lsn + 1, state.last_log_lsn))
            if state.rows != state.replayed_rows:
                reasons.append("the rows of the data page differ from the log replayed up to LSN %d" % state.applied_lsn)
                recoverable = False
        expected = tuple(range(1, len(state.log_lsns) + 1))
        if state.log_lsns != expected:
            reasons.append("the log's LSNs are not contiguous from 1")
            recoverable = False
    return {
        "consistent": not reasons,
        "recoverable": recoverable,
        "reasons": reasons,
        "applied_lsn": state.applied_lsn,
        "last_log_lsn": state.last_log_lsn,
        "torn": state.torn,
        "rows": len(state.rows),
    }


def check_consistency(files_of_d, files_of_e, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
    """The invariant checker: ``(ok, reasons)`` for the files of the data volume (D:) and of the log volume (E:).

    ``ok`` only for an application-consistent image: the data page is whole, has applied exactly the log's last
    LSN, and its rows are the log replayed. A crash image (log ahead of data, torn page) and an image whose data and
    log come from different moments are not, and ``reasons`` says why.
    """
    verdict = assess_journal(files_of_d, files_of_e, data_path, log_path)
    return verdict["consistent"], verdict["reasons"]


SQL_SERVICE = "MSSQLSERVER"


class SqlApplication:
    """SQL Server on one host (``server.application``): its databases' files and the journal of database ``shop``.

    Stopping the SQL Server service stops the application's writes; starting it opens the database on whatever
    volumes are D: and E: then (after an in-place restore, the restored ones)."""

    def __init__(self, server, system_databases="D:"):
        self.server = server
        self.database_files = catalog.sql_database_files(system_databases)
        self.journal = None

    def seed(self):
        """The databases' files (the system databases relocated to D: and E:, or on C:), the journal of ``shop``."""
        files = self.server.files
        data = self.server.storage.find_volume("D:")
        log = self.server.storage.find_volume("E:")
        if data is None or log is None:
            raise ValueError("%s: the sql application needs a D: (data) and an E: (log) volume" % self.server.name)
        for database in catalog.SQL_SYSTEM_DATABASES:
            (data_folder, data_file), (log_folder, log_file) = self.database_files[database]
            files.write(data_folder + "\\" + data_file, ("%s data\r\n" % database).encode())
            files.write(log_folder + "\\" + log_file, ("%s log\r\n" % database).encode())
        self.journal = Journal(data.content, log.content)
        self.journal.initialize()

    def service_changed(self, name, status):
        if name != SQL_SERVICE:
            return
        if self.journal is None:
            self._open_restored(status)
            return
        if status == "Stopped":
            self.journal.stop_background()
            return
        data = self.server.storage.find_volume("D:")
        log = self.server.storage.find_volume("E:")
        if data is not None and log is not None:
            with self.journal.latch:
                self.journal.data_volume, self.journal.log_volume = data.content, log.content
                self.journal._tail_cache = None  # pylint: disable=protected-access

    def _open_restored(self, status):
        """A host booted from restored volumes (lab.windows.restored) was never seeded: SQL Server opens the database
        on whatever D: and E: hold when its service starts."""
        data = self.server.storage.find_volume("D:")
        log = self.server.storage.find_volume("E:")
        if status == "Running" and data is not None and log is not None:
            self.journal = Journal(data.content, log.content)

    def write_transaction(self, changes=None):
        """One transaction (log on E:, then data on D:); returns its LSN."""
        return self.journal.write_transaction(changes)

    def transactions(self, count=1, mode="sync", changes=None):
        """Transactions written the way ``mode`` says (sync, lazy, torn); their LSNs."""
        return [self.journal.write_transaction(changes, mode=mode) for dummy in range(int(count))]

    def start(self, interval=0.01, checkpoint_every=4, torn_pause=0.005):
        self.journal.start_background(float(interval), int(checkpoint_every), float(torn_pause))
        return self.state()

    def stop(self, timeout=5.0):
        if self.journal is not None:
            self.journal.stop_background(timeout)
        return self.state()

    def state(self):
        if self.journal is None:
            return None
        return {"running": self.journal.background_running, "settings": dict(self.journal.background_settings),
                "background_transactions": self.journal.background_count, "frozen": self.journal.frozen}

    def summary(self):
        if self.journal is None:
            return None
        state = self.journal.state()
        return {"applied_lsn": state.applied_lsn, "last_log_lsn": state.last_log_lsn, "rows": len(state.rows)}

    def check(self):
        """The invariant checker on the live volumes (the image a crash would leave now)."""
        return assess_journal(self.journal.data_volume.files(), self.journal.log_volume.files(),
                              self.journal.data_path, self.journal.log_path)
