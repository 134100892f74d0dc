r"""Files on the simulated hosts' volumes, kept in the lab's BlockStore so that EBS snapshots capture them.

A Windows volume is backed by one EBS volume, or by several when it spans a dynamic disk or a storage pool. Paths in
a :class:`~lab.dataplane.VolumeImage` are relative to the volume root, with backslashes and no drive
(``SQLData\shop.mdf``). On a spanned volume every file lives on ONE member, chosen by a hash of its path, and every
member carries ``$LAB\span.json`` with the span's generation: restoring only some members, or members from different
points in time, loses files or shows mismatched generations, as it would corrupt a real spanned volume.

:class:`Journal` is the "application" of win-sql-01: a database whose write-ahead log lives on the log volume (E:)
and whose data file lives on the data volume (D:). A transaction appends its log record first, then applies it to
the data file, in two separate steps (another thread, e.g. an EBS snapshot, may run between them).
:meth:`Journal.read` reads the state back from any two file maps, such as the images of two EBS snapshots, for the
invariant checker of the backup tests.
"""

import json
import zlib
from dataclasses import dataclass

SPAN_HEADER = "$LAB\\span.json"
SYSTEM_VOLUME_INFORMATION = "System Volume Information\\"


def normalize(path):
    """``\\SQLData/x.mdf`` -> ``SQLData\\x.mdf``."""
    return path.replace("/", "\\").lstrip("\\")


class VolumeContent:
    """The files of one Windows volume, stored in the images of its member EBS volumes."""

    def __init__(self, blockstore, volume_ids, span_name=None):
        if not volume_ids:
            raise ValueError("a volume needs at least one EBS volume")
        self.blockstore = blockstore
        self.volume_ids = list(volume_ids)
        self.span_name = span_name

    @property
    def spanned(self):
        return len(self.volume_ids) > 1

    def image(self, index=0):
        return self.blockstore.volume(self.volume_ids[index])

    def member_for(self, path):
        if not self.spanned:
            return 0
        return zlib.crc32(normalize(path).lower().encode("utf-8")) % len(self.volume_ids)

    def initialize_span(self):
        if not self.spanned:
            return
        with self.blockstore.locked():
            for index in range(len(self.volume_ids)):
                self._write_header(index, 0)

    def _write_header(self, index, generation):
        header = {"span": self.span_name, "member": index, "members": self.volume_ids, "generation": generation}
        self.image(index).files[SPAN_HEADER] = json.dumps(header, sort_keys=True).encode("utf-8")

    def _bump_generation(self):
        if not self.spanned:
            return
        generation = max(json.loads(self.image(i).files.get(SPAN_HEADER, b'{"generation": 0}'))["generation"]
                         for i in range(len(self.volume_ids))) + 1
        for index in range(len(self.volume_ids)):
            self._write_header(index, generation)

    def write(self, path, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = normalize(path)
        with self.blockstore.locked():
            self.image(self.member_for(path)).files[path] = bytes(data)
            self._bump_generation()

    def append(self, path, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = normalize(path)
        with self.blockstore.locked():
            files = self.image(self.member_for(path)).files
            files[path] = files.get(path, b"") + bytes(data)
            self._bump_generation()

    def read(self, path):
        path = normalize(path)
        with self.blockstore.locked():
            return self.image(self.member_for(path)).files.get(path)

    def delete(self, path):
        path = normalize(path)
        with self.blockstore.locked():
            self.image(self.member_for(path)).files.pop(path, None)
            self._bump_generation()

    def files(self, include_system=False):
        """Every file of the volume (path -> bytes), merged over the members; the lab's own headers left out."""
        merged = {}
        with self.blockstore.locked():
            for index in range(len(self.volume_ids)):
                for path, data in self.image(index).files.items():
                    if path == SPAN_HEADER:
                        continue
                    if not include_system and path.startswith(SYSTEM_VOLUME_INFORMATION):
                        continue
                    merged[path] = data
        return merged

    def used_bytes(self):
        with self.blockstore.locked():
            return sum(len(data) for index in range(len(self.volume_ids)) for data in self.image(index).files.values())


@dataclass(frozen=True)
class JournalState:
    """What a data file and a log file say: the LSN the data has applied, the log's records, the data's rows."""

    applied_lsn: int
    log_lsns: tuple
    rows: dict
    log_rows: dict

    @property
    def last_log_lsn(self):
        return self.log_lsns[-1] if self.log_lsns else 0


class Journal:
    """A small write-ahead-logged database (``shop``) spread over a data volume and a log volume."""

    def __init__(self, data_volume, log_volume, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
        self.data_volume = data_volume
        self.log_volume = log_volume
        self.data_path = normalize(data_path)
        self.log_path = normalize(log_path)

    def initialize(self):
        self.log_volume.write(self.log_path, b"")
        self._write_data(0, {})

    def _write_data(self, lsn, rows):
        document = {"database": "shop", "applied_lsn": lsn, "rows": rows}
        self.data_volume.write(self.data_path, json.dumps(document, sort_keys=True).encode("utf-8"))

    def state(self):
        return self.read(
            {self.data_path: self.data_volume.read(self.data_path) or b""},
            {self.log_path: self.log_volume.read(self.log_path) or b""},
            self.data_path,
            self.log_path,
        )

    def write_transaction(self, changes=None):
        """Log the transaction, then apply it to the data file; returns its LSN."""
        blockstore = self.data_volume.blockstore
        with blockstore.locked():
            lsn = self.state().last_log_lsn + 1
            changes = dict(changes) if changes is not None else {"order-%06d" % lsn: "lsn %d" % lsn}
            record = {"lsn": lsn, "txn": "T%06d" % lsn, "changes": changes}
            self.log_volume.append(self.log_path, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
        with blockstore.locked():
            current = self.state()
            rows = dict(current.rows)
            rows.update(changes)
            self._write_data(lsn, rows)
        return lsn

    @staticmethod
    def read(data_files, log_files, data_path="SQLData\\shop.mdf", log_path="SQLLogs\\shop_log.ldf"):
        """The journal as stored in two file maps (live volumes or EBS snapshot images); missing files read as empty."""
        data = data_files.get(normalize(data_path)) or b""
        log = log_files.get(normalize(log_path)) or b""
        document = json.loads(data) if data else {"applied_lsn": 0, "rows": {}}
        lsns = []
        log_rows = {}
        for line in log.decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                lsns.append(record["lsn"])
                log_rows.update(record["changes"])
        return JournalState(document["applied_lsn"], tuple(lsns), document["rows"], log_rows)
