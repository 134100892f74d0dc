"""The shadow copy commands of the simulated diskshadow: ``list shadows``, ``list writers``, ``delete shadows``,
``expose``/``unexpose`` (persistent shadows only) and ``revert`` (client-accessible shadows only)."""

import datetime

from ..render import diskshadow_list_writers_detailed, diskshadow_list_writers_status
from .common import DETAIL, HRESULTS, INDENT, DiskShadowFailure, braced_guid, unquote

# VSS_VOLSNAP_ATTR_* bits (vss.h) diskshadow prints when it deletes a shadow copy.
ATTRIBUTE_BITS = {"Persistent": 0x1, "Client_accessible": 0x4, "No_Auto_Release": 0x8, "No_Writers": 0x10,
                  "Differential": 0x20000, "Exposed_Locally": 0x100000}
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


def dmtf_to_datetime(text):
    return datetime.datetime.strptime(text[:21], "%Y%m%d%H%M%S.%f").replace(tzinfo=datetime.timezone.utc)


def attribute_bits(attributes):
    value = 0
    for attribute in attributes:
        value |= ATTRIBUTE_BITS.get(attribute, 0)
    return value


class ShadowCommands:
    """The shadow copy commands of :class:`lab.windows.diskshadow.DiskShadow` (a mixin over its state)."""

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
        elif kind == "set" and len(words) > 1 and braced_guid(words[1]):
            header = shadow_label(self.locale, "query_set") % braced_guid(words[1])
            records = [r for r in records if r["SetID"].lower() == braced_guid(words[1])]
        elif kind == "id" and len(words) > 1 and braced_guid(words[1]):
            header = shadow_label(self.locale, "query_id") % braced_guid(words[1])
            records = [r for r in records if r["ID"].lower() == braced_guid(words[1])]
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

    def _delete(self, words):  # pylint: disable=too-many-branches
        kind = words[0].lower() if words else ""
        argument = words[1] if len(words) > 1 else ""
        records = self.model.shadows.list()
        if kind == "all":
            targets = records
        elif kind in ("set", "id"):
            guid = braced_guid(argument)
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
        text = unquote(text)
        if len(text) == 1 and text.isalpha():
            text += ":"
        if len(text) == 2 and text[1] == ":":
            text += "\\"
        return text.upper() if len(text) == 3 else text

    def _expose(self, words):
        if len(words) < 2:
            raise DiskShadowFailure(HRESULTS["VSS_E_BAD_STATE"], ["expose needs a shadow copy and a drive letter."])
        guid = braced_guid(words[0])
        record = self.model.shadows.record(guid) if guid else None
        if record is None:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["The shadow copy %s does not exist." % words[0]])
        if not record["Persistent"]:
            raise DiskShadowFailure(HRESULTS["VSS_E_UNSUPPORTED_CONTEXT"], ["Only persistent shadow copies can be exposed."])
        name = self._exposure_name(words[1])
        with self.model.lock:
            drive_in_use = len(name) == 3 and self.model.storage.find_volume(name) is not None
            if drive_in_use or name in self.model.shadows.exposures:
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
        guid = braced_guid(words[0]) if words else None
        record = self.model.shadows.record(guid) if guid else None
        if record is None:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], ["The shadow copy %s does not exist." % (words[0] if words else "")])
        if not record["ClientAccessible"]:
            raise DiskShadowFailure(HRESULTS["VSS_E_UNSUPPORTED_CONTEXT"], [
                "diskshadow reverts client-accessible shadow copies only (use vssadmin revert shadow for persistent ones)."])
        problem = self.model.shadows.revert_problem(record)
        if problem is not None:
            raise DiskShadowFailure(HRESULTS[problem[0]], [problem[1]])
        self.model.shadows.revert(record["ID"])
        self.print("The shadow copy was successfully reverted.")
