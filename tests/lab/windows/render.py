r"""Text of vssadmin and diskshadow as the simulated hosts print it, built after real captures.

The layouts (see docs/lab-windows.md for the capture behind each):

``vssadmin list writers``: two banner lines, a blank line, in en-US ``Waiting for responses.`` and ``These may be
delayed if a shadow copy is being prepared.`` and a blank line, then one block per writer followed by a blank line:
``<name label>'<writer name>'``, then 3-space indented writer id, instance id, ``<state label>[N] <word>`` and last
error. Every FAILED_AT_* state prints the same word; the number tells the phase.

diskshadow in script mode (``diskshadow /s``): ``Microsoft DiskShadow version 1.0``, the copyright line,
``On computer:  HOST,  <date>`` and a blank line, then each script command echoed as ``-> command`` followed by its
output. ``list writers status``: ``Listing writer status ...``, per writer ``* WRITER "<name>"`` and 8-space indented
``- Status: N (VSS_WS_...)``, ``- Writer Failure code: 0x........ (<symbol>)``, ``- Writer ID:``, ``- Instance ID:``,
then ``N writers listed.`` and a blank line. ``list writers detailed``: the writer metadata layout of diskshadow
(``- Writer ID   = {..}``, ``+ Component "<writer>:\<full path>"`` blocks with their file lists, affected paths and
``\\?\Volume{..}\ [D:\]`` volumes).

Text uses ``\n``; :func:`lab.windows.locales.console_bytes` makes the CRLF bytes in the console code page.
"""

from . import catalog

STATUS_INDENT = " " * 8
COMPONENT_INDENT = " " * 8
COMPONENT_DETAIL_INDENT = " " * 16
COMPONENT_ITEM_INDENT = " " * 24


def vssadmin_list_writers(locale, writers):
    """``vssadmin list writers``; ``writers`` are :class:`lab.windows.model.Writer` objects (or look-alikes)."""
    lines = list(locale.vssadmin_banner) + [""]
    if locale.vssadmin_waiting:
        lines += list(locale.vssadmin_waiting) + [""]
    for writer in writers:
        lines += [
            "%s'%s'" % (locale.writer_name_label, writer.name),
            "   %s%s" % (locale.writer_id_label, writer.writer_id),
            "   %s%s" % (locale.instance_id_label, writer.instance_id),
            "   %s[%d] %s" % (locale.state_label, writer.state, locale.state_word(writer.state)),
            "   %s%s" % (locale.last_error_label, locale.error_word(writer.error)),
            "",
        ]
    return "\n".join(lines) + "\n"


def diskshadow_banner(locale, hostname, moment):
    return list(locale.diskshadow_banner) + [locale.on_computer % (hostname, locale.format_date(moment)), ""]


def failure_code_text(locale, code):
    symbol = catalog.HRESULT_SYMBOLS.get(code)
    return "0x%08x (%s)" % (code, symbol or locale.unknown_error_code)


def diskshadow_list_writers_status(locale, writers):
    """The output of the ``list writers status`` command (without the ``->`` echo)."""
    lines = [locale.listing_status]
    for writer in writers:
        lines += [
            '* WRITER "%s"' % writer.name,
            "%s%s%d (VSS_WS_%s)" % (STATUS_INDENT, locale.status_label, writer.state, catalog.WRITER_STATE_NAMES[writer.state]),
            "%s%s%s" % (STATUS_INDENT, locale.failure_code_label, failure_code_text(locale, catalog.ERROR_HRESULTS[writer.error])),
            "%s%s%s" % (STATUS_INDENT, locale.ds_writer_id_label, writer.writer_id),
            "%s%s%s" % (STATUS_INDENT, locale.ds_instance_id_label, writer.instance_id),
        ]
    lines += [locale.writers_listed % len(writers), ""]
    return lines


def _flag(value):
    return "TRUE" if value else "FALSE"


def diskshadow_list_writers_detailed(locale, writers, components_of):
    """The output of ``list writers detailed``; ``components_of(writer)`` gives the resolved components
    (dicts of ``spec``, ``paths``, ``volumes`` as :meth:`lab.windows.writers.Writers.components` returns)."""
    label = locale.metadata_label
    lines = [locale.listing_metadata]
    for writer in writers:
        spec = writer.spec
        lines += [
            '* WRITER "%s"' % writer.name,
            STATUS_INDENT + label("writer_id") + writer.writer_id,
            STATUS_INDENT + label("instance_id") + writer.instance_id,
            STATUS_INDENT + label("restore_events") + "TRUE",
            STATUS_INDENT + label("restore_conditions") + spec.restore_conditions,
            STATUS_INDENT + label("restore_method") + spec.restore_method,
            STATUS_INDENT + label("reboot") + _flag(spec.reboot_after_restore),
            STATUS_INDENT + label("excluded"),
            "",
        ]
        for component in components_of(writer):
            component_spec = component["spec"]
            lines += [
                COMPONENT_INDENT + label("component") + '"%s:%s"' % (writer.name, component_spec.full_path),
                COMPONENT_DETAIL_INDENT + label("name") + component_spec.name,
                COMPONENT_DETAIL_INDENT + label("logical_path") + component_spec.logical_path,
                COMPONENT_DETAIL_INDENT + label("full_path") + component_spec.full_path,
                COMPONENT_DETAIL_INDENT + label("caption") + component_spec.caption,
                COMPONENT_DETAIL_INDENT + label("type") + component_spec.component_type,
                COMPONENT_DETAIL_INDENT + label("selectable") + _flag(component_spec.selectable),
                COMPONENT_DETAIL_INDENT + label("top_level") + "TRUE",
                COMPONENT_DETAIL_INDENT + label("notify") + _flag(component_spec.notify_on_backup_complete),
                COMPONENT_DETAIL_INDENT + label("components"),
            ]
            lines += [COMPONENT_ITEM_INDENT + label("file_list") % (folder, filespec) for folder, filespec in component_spec.files]
            lines.append(COMPONENT_DETAIL_INDENT + label("paths"))
            lines += [COMPONENT_ITEM_INDENT + "- " + path for path in component["paths"]]
            lines.append(COMPONENT_DETAIL_INDENT + label("volumes"))
            lines += [COMPONENT_ITEM_INDENT + "- %s [%s]" % (volume.unique_id, volume.display_name) for volume in component["volumes"]]
            lines += [COMPONENT_DETAIL_INDENT + label("dependencies"), ""]
    lines += [locale.writers_listed % len(writers), ""]
    return lines


def diskshadow_script(locale, hostname, moment, commands):
    """A whole ``diskshadow /s`` run: banner, then ``-> command`` and its output lines per (command, lines) pair."""
    lines = diskshadow_banner(locale, hostname, moment)
    for command, output in commands:
        lines.append("-> %s" % command)
        lines += output
    return "\n".join(lines) + "\n"
