r"""``create`` of the simulated diskshadow: which writers take part, ``writer verify``/``exclude``, the freeze, the set.

What Microsoft documents: ``writer verify`` "verifies that the specified writer or component is included in the backup
or restore procedure. If the writer or component is not included, the backup or restore procedure will fail"; without
it, writers whose components live on volumes outside the set are silently excluded (``set verbose on`` prints the
capture's ``Component "..." from writer "..." is excluded from backup,`` / ``because it requires volume C:\ which is
not in the shadow copy set.``); a writer that fails vetoes with a failure code, and "the requester can accept the veto
or continue with the backup, ignoring the veto" (VSS, "Writer Errors and Vetoes").

Where it is silent the lab takes the side that makes a mistake visible, so that a script that forgot ``writer verify``
for a writer it relies on produces a shadow copy set without that writer, and a test can see it:

- a verified writer (named by ``{id}`` or name) or component (``<writer {id} or name>:\<logical path>\<name>``, as
  ``list writers detailed`` names it) that is not on the host fails ``create`` before any freeze with
  VSS_E_OBJECT_NOT_FOUND; one that the set leaves out, wholly or in part (a component on a volume outside the set, or
  named by ``writer exclude``), with VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT (800423F0);
- a verified writer that fails (a failed state, a fault at Freeze, a time-out) fails ``create`` with its own failure
  code; the other writers are aborted and no shadow copy is left;
- an unverified writer that fails is left out and reported (a line of lab wording), and the set is created without it:
  ``create`` succeeds, the writer stays in its failed state and sees no later event of the set (no BackupComplete);
- an unverified writer whose components all lie outside the set is excluded silently; one with some of them on the
  set takes part with those only.
"""

import uuid

from .. import catalog
from .common import HRESULTS, INDENT, DiskShadowFailure, DiskShadowStopped, braced_guid
from .listing import shadow_label

STATE_STABLE, STATE_WAITING_FOR_FREEZE, STATE_WAITING_FOR_THAW = 1, 2, 3
STATE_WAITING_FOR_POST_SNAPSHOT, STATE_WAITING_FOR_BACKUP_COMPLETE, STATE_FAILED_AT_FREEZE = 4, 5, 9
SQL_WRITER_NAME = "SqlServerWriter"
SCO_WRITER_NAME = "Shadow Copy Optimization Writer"
FAILURE_PHASE_EVENTS = {6: "Identify", 7: "PrepareForBackup", 8: "PrepareForSnapshot", 9: "Freeze", 10: "Thaw",
                        11: "PostSnapshot", 12: "BackupComplete", 15: "BackupShutdown"}


def split_target(text):
    """``(writer reference, component full path or None)`` of a ``writer verify|exclude`` argument."""
    writer, separator, path = text.partition(":\\")
    return writer.strip(), ("\\" + path.strip().rstrip("\\")) if separator else None


class Selection:  # pylint: disable=too-few-public-methods
    """The writers that take part in a creation: ``included`` (writer, its included components), ``verified`` (the
    ids of the writers ``writer verify`` names, by themselves or through a component)."""

    def __init__(self):
        self.included = []
        self.verified = set()
        self.lines = []


class CreateCommand:
    """``create`` of :class:`lab.windows.diskshadow.DiskShadow` (a mixin over its state)."""

    def _writer_by(self, reference):
        guid = braced_guid(reference)
        for writer in self.model.writers:
            if (guid and writer.writer_id == guid) or writer.name.lower() == reference.lower():
                return writer
        return None

    def _component_of(self, writer, path):
        return next((spec for spec in writer.spec.components if spec.full_path.lower() == path.lower()), None)

    def _exclusions(self):
        """(ids of excluded writers, (writer id, component path) of excluded components)."""
        writers, components = set(), set()
        for target in self.exclude:
            reference, path = split_target(target)
            writer = self._writer_by(reference)
            if writer is None:
                continue
            if path is None:
                writers.add(writer.writer_id)
            else:
                components.add((writer.writer_id, path.lower()))
        return writers, components

    def _select_writers(self):  # pylint: disable=too-many-locals
        """The writers and components that take part; raises DiskShadowFailure for what ``writer verify`` refuses."""
        in_set = [entry["volume"] for entry in self.volumes]
        visible = [] if self.no_writers else self.model.writers.visible()
        excluded_writers, excluded_components = self._exclusions()
        selection = Selection()
        left_out = {}
        for writer in visible:
            if writer.writer_id in excluded_writers:
                left_out[writer.writer_id] = [spec.full_path.lower() for spec in writer.spec.components]
                continue
            components = [c for c in self.model.writers.components(writer)
                          if (writer.writer_id, c["spec"].full_path.lower()) not in excluded_components]
            explicit = [spec.full_path.lower() for spec in writer.spec.components
                        if (writer.writer_id, spec.full_path.lower()) in excluded_components]
            missing = []
            for component in components:
                outside = [volume for volume in component["volumes"] if volume not in in_set]
                if outside:
                    missing.append((component, outside[0]))
            left_out[writer.writer_id] = explicit + [component["spec"].full_path.lower() for component, dummy in missing]
            if writer.name == SCO_WRITER_NAME and missing:
                selection.lines.insert(0, 'Excluding writer "%s", because all of its components have been excluded.' % writer.name)
                left_out[writer.writer_id] = [spec.full_path.lower() for spec in writer.spec.components]
                continue
            for component, volume in missing:
                selection.lines += ['Component "%s" from writer "%s" is excluded from backup,' % (component["spec"].full_path, writer.name),
                                    "because it requires volume %s which is not in the shadow copy set." % volume.display_name]
            kept = [c for c in components if c not in [m[0] for m in missing]]
            if kept:
                selection.included.append((writer, kept))
        verbose = list(selection.lines)
        for writer, components in selection.included:
            verbose.append('Including writer "%s":' % writer.name)
            verbose += [INDENT + "+ Adding component: %s" % component["spec"].full_path for component in components]
        if self.verbose:
            self.print(*verbose)
        for target in self.verify:
            selection.verified.add(self._verify(target, visible, left_out))
        return selection

    def _verify(self, target, visible, left_out):
        """The id of the writer ``writer verify <target>`` names, or DiskShadowFailure when the set would lack it."""
        reference, path = split_target(target)
        writer = self._writer_by(reference)
        if writer is None or writer not in visible:
            raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], [
                'The writer %s required (writer verify) is not present on this computer.' % reference])
        if path is not None:
            if self._component_of(writer, path) is None:
                raise DiskShadowFailure(HRESULTS["VSS_E_OBJECT_NOT_FOUND"], [
                    'The component "%s" of writer "%s" required (writer verify) does not exist.' % (path, writer.name)])
            if path.lower() in left_out[writer.writer_id]:
                raise DiskShadowFailure(HRESULTS["VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT"], [
                    'The component "%s" of writer "%s" is required (writer verify) but is excluded from the backup.'
                    % (path, writer.name)])
        elif left_out[writer.writer_id]:
            raise DiskShadowFailure(HRESULTS["VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT"], [
                'The writer "%s" %s is required (writer verify) but %d of its %d components are excluded from '
                "the backup." % (writer.name, writer.writer_id, len(left_out[writer.writer_id]), len(writer.spec.components))])
        return writer.writer_id

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

    def _create(self):
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
            for rule in model.vss_faults.take(("writer_vanishes",)):
                model.writers.vanish(model.writers.get(rule["writer"]), run_id=self.run_id)
            self._create_locked()
        finally:
            with model.lock:
                if model.shadows.creating_set is self:
                    model.shadows.creating_set = None

    def _freeze(self, writers, details):
        """PrepareForBackup, PrepareForSnapshot and Freeze of the writers that take part: ``(frozen writers, failures,
        the application's journal if its writer froze it)``; a failure is (writer, state, error)."""
        model = self.model
        writer_faults = model.vss_faults.take(("writer_fail_at_freeze", "writer_timeout"))
        broken = {writer.writer_id: self._broken(writer) for writer in writers}
        prepared = [writer for writer in writers if broken[writer.writer_id] is None]
        for writer in prepared:
            writer.transient_failure = False
            model.writers.transition(writer, STATE_STABLE, "PrepareForBackup", error="no_error", **details)
        for writer in prepared:
            model.writers.transition(writer, STATE_WAITING_FOR_FREEZE, "PrepareForSnapshot", **details)
        frozen, failures, journal = [], [], None
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
                failures.append((writer, state, error))
                continue
            if writer.name == SQL_WRITER_NAME and model.application.journal is not None:
                model.application.journal.freeze()
                journal = model.application.journal
            model.writers.transition(writer, STATE_WAITING_FOR_THAW, "Freeze", **details)
            frozen.append(writer)
        return frozen, failures, journal

    def _shadow_copies(self):
        """The provider's part: the set's shadow copies at one point in time (or its failures)."""
        model = self.model
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
        return model.shadows.create_set([v.unique_id for v in volumes], persistent=self.context != "volatile",
                                        no_writers=self.no_writers, client_accessible=self.context == "clientaccessible")

    def _create_locked(self):
        model = self.model
        selection = self._select_writers()
        writers = [writer for writer, dummy in selection.included]
        details = {"run_id": self.run_id, "backup_type": self.backup_type}
        frozen, failures, journal = [], [], None
        try:
            frozen, failures, journal = self._freeze(writers, details)
            verified = [failure for failure in failures if failure[0].writer_id in selection.verified]
            if verified:
                writer, state, error = verified[0]
                code = catalog.ERROR_HRESULTS.get(error) or HRESULTS["VSS_E_WRITERERROR_RETRYABLE"]
                raise DiskShadowFailure(code, ['The writer "%s" failed while the shadow copy set was created (state %d, '
                                               "VSS_WS_%s)." % (writer.name, state, catalog.WRITER_STATE_NAMES[state])])
            created = self._shadow_copies()
        except (DiskShadowFailure, DiskShadowStopped):
            if journal is not None:
                journal.thaw()
                journal = None
            for writer in frozen:
                model.writers.transition(writer, STATE_STABLE, "Abort", **details)
            raise
        finally:
            if journal is not None:
                journal.thaw()
        self._created(created, selection, frozen, failures, details)

    def _created(self, created, selection, writers, failures, details):  # pylint: disable=too-many-arguments
        """The set exists: the writers that froze thaw and wait (full backup) or are done (copy); aliases and
        ``VSS_SHADOW_SET`` become environment variables; the metadata document and the set's listing are written."""
        model = self.model
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
                                writers=[writer.name for writer in writers],
                                failed_writers=[writer.name for writer, dummy, dummy in failures],
                                **{k: v for k, v in details.items() if k != "set_id"})
        lines = ['The writer "%s" failed (state %d, VSS_WS_%s, %s): it is not part of this shadow copy set.' % (
            writer.name, state, catalog.WRITER_STATE_NAMES[state], catalog.HRESULT_SYMBOLS.get(catalog.ERROR_HRESULTS.get(error), error))
            for writer, state, error in failures]
        for entry, shadow in zip(self.volumes, self.created):
            self.environment[entry["alias"].upper()] = shadow["id"]
            self.aliases[entry["alias"]] = shadow["id"]
            self.result.shadows[entry["alias"]] = shadow["id"]
            lines.append("Alias %s for shadow ID %s set as environment variable." % (entry["alias"], shadow["id"]))
        self.environment["VSS_SHADOW_SET"] = self.set_id
        self.result.set_id = self.set_id
        lines.append("Alias VSS_SHADOW_SET for shadow set ID %s set as environment variable." % self.set_id)
        included = [(writer, components) for writer, components in selection.included if writer in writers]
        if included or self.metadata:
            cab = self.metadata or self._absolute("%s_%s.cab" % (model.clock().strftime("%Y-%m-%d_%H-%M-%S"), model.hostname))
            model.files.write(cab, self._components_document(included))
            name = cab.rsplit("\\", 1)[-1]
            lines += ["Inserted file Manifest.xml into .cab file %s" % name,
                      "Inserted file Dis%04X.tmp into .cab file %s" % (uuid.uuid4().int & 0xFFFF, name)]
        lines += ["", shadow_label(self.locale, "query_set") % self.set_id, ""]
        self.print(*lines)
        self._print_shadows([model.shadows.record(shadow["id"]) for shadow in self.created])

    def _components_document(self, included):
        """The backup components document diskshadow puts in the .cab (a lab placeholder, XML)."""
        lines = ['<?xml version="1.0"?>',
                 "<!-- shadowsnap lab: placeholder of the backup components document (Manifest.xml of the .cab) -->",
                 '<BACKUP_COMPONENTS backupType="%s" snapshotSetId="%s" context="%s" computer="%s">' % (
                     "FULL" if self.backup else "COPY", self.set_id, self.context, self.model.hostname)]
        for writer, components in included:
            lines.append('  <WRITER_COMPONENTS writerId="%s" instanceId="%s" writerName="%s">' % (
                writer.writer_id, writer.instance_id, writer.name))
            for component in components:
                spec = component["spec"]
                lines.append('    <COMPONENT logicalPath="%s" componentName="%s" />' % (spec.logical_path, spec.name))
            lines.append("  </WRITER_COMPONENTS>")
        for entry, shadow in zip(self.volumes, self.created):
            lines.append('  <SNAPSHOT volume="%s" shadowId="%s" />' % (entry["volume"].unique_id, shadow["id"]))
        lines.append("</BACKUP_COMPONENTS>")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")
