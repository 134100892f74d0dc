r"""The files and folders of a simulated Windows Server, by Windows path, and who owns and may change the folders.

Files live on the volumes of the host's storage (lab.windows.storage); a path under an exposed shadow copy's drive
letter reads the shadow's frozen files (lab.windows.shadows). Folders exist where files are, and where something
created one (:meth:`FileSystem.create_folder`). A created folder keeps its creation time and its security: its owner
(a SID), whether it inherits its parent's entries (``protected`` False) and its explicit access entries; a junction (a
reparse point, IO_REPARSE_TAG_MOUNT_POINT) keeps its target, and every path under it reads and writes under the
target, as Windows follows it.

Files and folders on a volume may carry NTFS metadata of their own (:meth:`FileSystem.set_info`, kept in the volume's
image so that snapshots, clones and shadow copies carry it): an owner, explicit access entries, whether inheritance is
off (``protected``) and the creation and last-write times. :meth:`FileSystem.info` answers what Windows shows: the
owner, the explicit entries and those inherited from the folders above (each with its ``inherited`` flag), up to a
protected folder or the volume's root, whose entries are the defaults of an NTFS volume.

Any local user may create folders in ``%ProgramData%`` (its ACL gives BUILTIN\Users "create folders / append data" and
CREATOR OWNER full control of what they create), so a folder that SYSTEM will run files from may exist before the
agent creates it: owned by that user, with entries of its own, or as a junction elsewhere. :meth:`FileSystem.make_hostile`
presents those cases; :meth:`FileSystem.security` reports what a folder tree holds.
"""

import time
from dataclasses import dataclass, field

from .catalog import stable_guid
from .storage import normalize

SYSTEM = "S-1-5-18"
ADMINISTRATORS = "S-1-5-32-544"
USERS = "S-1-5-32-545"
WELL_KNOWN_ACCOUNTS = {SYSTEM: "NT AUTHORITY\\SYSTEM", ADMINISTRATORS: "BUILTIN\\Administrators", USERS: "BUILTIN\\Users",
                       "S-1-1-0": "Everyone", "S-1-3-0": "CREATOR OWNER", "S-1-5-11": "NT AUTHORITY\\Authenticated Users"}
LOCAL_USER = "lab-user"
FULL_INHERITANCE = "ContainerInherit, ObjectInherit"
JUNCTION_TAG = "IO_REPARSE_TAG_MOUNT_POINT"
MAX_JUNCTIONS = 8
HOSTILE_KINDS = ("foreign_owner", "junction", "extra_ace")
HOSTILE_JUNCTION_TARGET = "C:\\Users\\Public\\shadowsnap"
INFO_FIELDS = ("owner", "aces", "protected", "created", "modified")


def ace(identity, rights="FullControl", inheritance=FULL_INHERITANCE, kind="Allow"):
    """An explicit access entry: ``identity`` (a SID), ``rights`` (FileSystemRights), ``type``, ``inheritance``."""
    return {"identity": identity, "rights": rights, "type": kind, "inheritance": inheritance}


# The entries of an NTFS volume's root that its files and folders inherit.
VOLUME_ROOT_ACES = (ace(SYSTEM), ace(ADMINISTRATORS), ace(USERS, "ReadAndExecute"))


@dataclass
class Tree:
    """What a path reads from: the files and NTFS metadata of a volume, or of an exposed shadow copy (read-only), and
    the path's place in it (``relative``, no leading backslash)."""

    files: dict
    security: dict
    relative: str
    content: object = None

    @property
    def writable(self):
        return self.content is not None


@dataclass
class Folder:  # pylint: disable=too-many-instance-attributes
    """A folder something created: when, its owner, its inheritance, its explicit entries, its junction target."""

    path: str
    owner: str = ADMINISTRATORS
    created: float = field(default_factory=time.monotonic)
    protected: bool = False
    aces: list = field(default_factory=list)
    junction_to: str | None = None


def _parent(path):
    return path.rstrip("\\").rsplit("\\", 1)[0]


class FileSystem:
    """The host's files and folders (``server.files``); thread-safe under the host's lock."""

    def __init__(self, server):
        self.server = server
        self.folders = {}

    # ------------------------------------------------------------------------------------------------ paths
    def account(self, sid):
        """The account name of a SID (well-known, or the host's local user)."""
        if sid in WELL_KNOWN_ACCOUNTS:
            return WELL_KNOWN_ACCOUNTS[sid]
        if sid == self.local_user_sid():
            return "%s\\%s" % (self.server.hostname, LOCAL_USER)
        return sid

    def local_user_sid(self):
        """The SID of the host's local account ``lab-user`` (not an administrator)."""
        digits = [int(stable_guid("machine-sid", self.server.hostname, part).replace("-", "")[:8], 16) for part in range(3)]
        return "S-1-5-21-%d-%d-%d-1001" % tuple(digits)

    def real_path(self, path):
        """The path with every junction on it followed (to its target), as Windows opens it."""
        real = path.replace("/", "\\")
        for dummy in range(MAX_JUNCTIONS):
            key = real.rstrip("\\").lower()
            junction = next((folder for folder_key, folder in self.folders.items() if folder.junction_to
                             and (key == folder_key or key.startswith(folder_key + "\\"))), None)
            if junction is None:
                return real
            real = junction.junction_to.rstrip("\\") + real.rstrip("\\")[len(junction.path.rstrip("\\")):]
        raise ValueError("%s: more than %d junctions on %s" % (self.server.name, MAX_JUNCTIONS, path))

    def _folder_path(self, path):
        """Where the folder ``path`` itself is: its parents followed, not the folder (a junction stays a junction)."""
        path = path.replace("/", "\\").rstrip("\\")
        if "\\" not in path:
            return path
        return self.real_path(_parent(path)) + "\\" + path.rsplit("\\", 1)[1]

    def resolve(self, path):
        """``(volume, path relative to its root)`` of the real path; ValueError when no volume holds it."""
        path = self.real_path(path)
        volume = self.server.storage.find_volume(path)
        if volume is None:
            raise ValueError("%s: no volume holds %r" % (self.server.name, path))
        for access in sorted(volume.access_paths(), key=len, reverse=True):
            if path.lower().startswith(access.lower()):
                return volume, path[len(access):]
        return volume, ""

    def tree(self, path):
        """The :class:`Tree` that ``path`` reads from; ValueError when no volume or exposure holds it."""
        exposed = self.server.shadows.exposed_path(path)
        if exposed is not None:
            shadow_id, relative = exposed
            return Tree(self.server.shadows.content(shadow_id) or {}, self.server.shadows.security(shadow_id) or {},
                        normalize(relative).rstrip("\\"))
        volume, relative = self.resolve(path)
        return Tree(volume.content.files(), volume.content.security(), normalize(relative).rstrip("\\"), volume.content)

    # ------------------------------------------------------------------------------------------------ files
    def set_info(self, path, **fields):
        """A file's or folder's own NTFS metadata (``owner`` SID, explicit ``aces``, ``protected``, ``created`` and
        ``modified`` ISO times): the fields given replace those it had."""
        unknown = set(fields) - set(INFO_FIELDS)
        if unknown:
            raise ValueError("unknown file metadata %s (known: %s)" % (", ".join(sorted(unknown)), ", ".join(INFO_FIELDS)))
        tree = self.tree(path)
        if not tree.writable:
            raise ValueError("%s: %s is on a read-only shadow copy" % (self.server.name, path))
        record = own_record(tree.security, tree.relative)
        record.update({name: value for name, value in fields.items() if value is not None})
        record["aces"] = [dict(entry) for entry in record["aces"]]
        tree.content.set_security(tree.relative, record)
        return self.info(path)

    def info(self, path):
        """What Windows shows of a file or folder: ``exists``, ``folder``, ``size``, ``owner``, ``protected``,
        ``created``, ``modified`` and ``access`` (explicit entries first, then the inherited ones, each with
        ``inherited``)."""
        tree = self.tree(path)
        key = tree.relative.lower()
        data = next((value for name, value in tree.files.items() if name.lower() == key), None)
        folder = data is None and (key == "" or any(name.lower().startswith(key + "\\") for name in tree.files)
                                   or key in tree.security)
        record = own_record(tree.security, tree.relative)
        return {"path": path, "exists": data is not None or folder, "folder": folder,
                "size": len(data) if data is not None else None, "owner": record["owner"],
                "owner_name": self.account(record["owner"]), "protected": record["protected"],
                "created": record["created"], "modified": record["modified"],
                "access": effective_access(tree.security, tree.relative)}

    def write(self, path, data):
        volume, relative = self.resolve(path)
        volume.content.write(relative, data)

    def read(self, path):
        """The file's bytes, or None when it does not exist."""
        exposed = self.server.shadows.exposed_path(path)
        if exposed is not None:
            shadow_id, relative = exposed
            return (self.server.shadows.content(shadow_id) or {}).get(normalize(relative))
        volume, relative = self.resolve(path)
        return volume.content.read(relative)

    def exists(self, path):
        return self.read(path) is not None

    def list(self, folder):
        """Paths (under ``folder`` as given, drive-qualified) of the files under ``folder``, sorted."""
        volume, relative = self.resolve(folder)
        prefix = normalize(relative).rstrip("\\")
        prefix = prefix + "\\" if prefix else ""
        root = folder.rstrip("\\") + "\\"
        return sorted(root + path[len(prefix):] for path in volume.content.files(include_system=True)
                      if path.lower().startswith(prefix.lower()))

    def delete(self, path):
        """Delete a file; True if it existed."""
        volume, relative = self.resolve(path)
        existed = volume.content.read(relative) is not None
        volume.content.delete(relative)
        return existed

    # ---------------------------------------------------------------------------------------------- folders
    def create_folder(self, path, owner=ADMINISTRATORS):
        """New-Item -ItemType Directory (the folder, if it is not there yet, owned by ``owner``); its :class:`Folder`."""
        where = self._folder_path(path)
        with self.server.lock:
            return self.folders.setdefault(where.lower(), Folder(where, owner))

    def folder(self, path):
        """The :class:`Folder` something created at ``path``, or None (also for folders that only hold files)."""
        return self.folders.get(self._folder_path(path).lower())

    def folder_exists(self, path):
        return self.folder(path) is not None or bool(self.list(path))

    def subfolders(self, path):
        """The names of the folders created directly below ``path`` (through its junctions)."""
        real = self.real_path(path).rstrip("\\").lower() + "\\"
        return sorted({folder.path[len(real):].split("\\", 1)[0] for key, folder in self.folders.items()
                       if key.startswith(real)})

    def remove_tree(self, path):
        """Remove-Item -Recurse: the folder, its files (with their metadata) and the folders under it."""
        for name in self.list(path):
            self.delete(name)
        volume, relative = self.resolve(path)
        prefix = normalize(relative).rstrip("\\").lower()
        with self.server.blockstore.locked():
            security = volume.content.image(0).security
            for key in [k for k in security if prefix and (k == prefix or k.startswith(prefix + "\\"))]:
                del security[key]
        key = self._folder_path(path).lower()
        with self.server.lock:
            for folder_key in [k for k in self.folders if k == key or k.startswith(key + "\\")]:
                del self.folders[folder_key]

    def set_security(self, path, owner=None, protected=None, add_aces=(), junction_to=None):
        """What another account did to a folder (created when missing): its owner, inheritance, added explicit
        entries, or a junction to ``junction_to`` (itself created when missing)."""
        with self.server.lock:
            if junction_to:
                self.create_folder(junction_to, owner or ADMINISTRATORS)
            folder = self.create_folder(path, owner or ADMINISTRATORS)
            if owner:
                folder.owner = owner
            if protected is not None:
                folder.protected = bool(protected)
            folder.aces.extend(dict(entry) for entry in add_aces)
            if junction_to:
                folder.junction_to = junction_to.rstrip("\\")
            return self.describe_folder(folder.path)

    def protect(self, path):
        """What the agent does to its root folder (``Set-Acl`` of a new DirectorySecurity): owner Administrators,
        inheritance off, full control for SYSTEM and Administrators only. Windows opens a junction's target to set
        it, so a junction's target is what changes; the folders below keep their owners and explicit entries."""
        with self.server.lock:
            target = self.create_folder(self.real_path(path))
            target.owner = ADMINISTRATORS
            target.protected = True
            target.aces = [ace(SYSTEM), ace(ADMINISTRATORS)]

    def make_hostile(self, kind, root):
        """``root`` prepared by the host's local user before the agent ran: ``foreign_owner`` (root and its ``runs``
        folder created and owned by the user, who also gave themself an explicit entry), ``junction`` (root is a
        junction to a folder of the user's), ``extra_ace`` (root as the agent makes it, but ``runs`` below it carries an
        explicit Modify entry for the user)."""
        user = self.local_user_sid()
        if kind == "foreign_owner":
            self.set_security(root, owner=user, add_aces=[ace(user)])
            self.set_security(root + "\\runs", owner=user)
        elif kind == "junction":
            self.set_security(root, owner=user, junction_to=HOSTILE_JUNCTION_TARGET)
        elif kind == "extra_ace":
            self.protect(root)
            self.set_security(root + "\\runs", add_aces=[ace(user, "Modify")])
        else:
            raise ValueError("hostile kind must be one of %s" % ", ".join(HOSTILE_KINDS))
        return self.security(root)

    def describe_folder(self, path):
        folder = self.folder(path)
        if folder is None:
            return {"path": path, "exists": self.folder_exists(path)}
        return {
            "path": path, "exists": True, "owner": folder.owner, "owner_name": self.account(folder.owner),
            "reparse_point": folder.junction_to is not None, "reparse_tag": JUNCTION_TAG if folder.junction_to else None,
            "reparse_target": folder.junction_to, "inherits": not folder.protected,
            "explicit_aces": [dict(entry, name=self.account(entry["identity"])) for entry in folder.aces],
        }

    def security(self, root):
        """``{"root": ..., "folders": [...]}``: the root and every folder created below it (by the paths a client
        uses: under a junction, the target's folders as seen through it), each with its owner, reparse point and
        explicit access entries."""
        real = self.real_path(root).rstrip("\\")
        below = sorted(folder.path for key, folder in self.folders.items() if key.startswith(real.lower() + "\\"))
        return {"root": self.describe_folder(root),
                "folders": [self.describe_folder(root.rstrip("\\") + path[len(real):]) for path in below]}


def own_record(security, relative):
    """The metadata a file or folder has of its own (the defaults when it has none): owner, explicit entries,
    protected, created, modified."""
    record = security.get(relative.rstrip("\\").lower()) or {}
    return {"owner": record.get("owner", ADMINISTRATORS), "aces": [dict(entry) for entry in record.get("aces", [])],
            "protected": bool(record.get("protected", False)), "created": record.get("created"),
            "modified": record.get("modified")}


def effective_access(security, relative):
    """The entries Windows shows for a path: its explicit ones, then those it inherits from each folder above that
    passes them on, up to a protected folder or the volume's root."""
    own = own_record(security, relative)
    entries = [dict(entry, inherited=False) for entry in own["aces"]]
    if own["protected"]:
        return entries
    parts = [part for part in relative.split("\\") if part]
    for depth in range(len(parts) - 1, -1, -1):
        parent = own_record(security, "\\".join(parts[:depth]))
        parent_aces = parent["aces"] if depth else parent["aces"] or [dict(entry) for entry in VOLUME_ROOT_ACES]
        entries += [dict(entry, inherited=True) for entry in parent_aces if entry.get("inheritance", "None") != "None"]
        if parent["protected"]:
            break
    return entries
