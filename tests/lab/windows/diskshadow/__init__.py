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
- ``writer verify|exclude {id}|name|<writer>:\<component path>``: lab.windows.diskshadow.create says what Microsoft
  documents and what the lab decides where it is silent: a verified writer that is missing, left out or failing
  fails ``create``; an unverified one is excluded (silently, or with verbose mode's ``Component "..." from writer
  "..." is excluded from backup,`` / ``because it requires volume C:\ which is not in the shadow copy set.``) or left
  out as failed while the set is still created;
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

Other failures (a fault armed with ``WindowsServer.vss_faults.arm``: provider veto, insufficient storage, a set in
progress) fail ``create``; the writers that froze are aborted back to STABLE and no shadow copy is left. When
diskshadow ends without ``end backup`` after a full-backup ``create`` (a failed ``exec``, a stop), the waiting writers
are aborted: STABLE, no BackupComplete. Exit code: 0, or the host's ``diskshadow_failure_exit_code`` (default 1)
after a failure (Microsoft documents no exit codes: the failure block is what counts).

Wording that no capture shows is the lab's own and marked so in docs/lab-windows.md.
"""


from .common import DiskShadowFailure, DiskShadowStopped, failure_block
from .script import DiskShadow, DiskShadowResult, run_diskshadow

__all__ = ["DiskShadow", "DiskShadowFailure", "DiskShadowResult", "DiskShadowStopped", "failure_block", "run_diskshadow"]
