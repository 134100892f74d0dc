"""The session files generated for diskshadow: order of commands, backup types, and what is refused."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.plugin_utils import diskshadow

SQL_WRITER = "a65faa63-5ea8-4ebc-9dbd-a0c4db26912a"
SYSTEM_WRITER = "{E8132975-6F93-4464-A53E-1050253AE220}"


def plan(**overrides):
    values = dict(run_id="ss-20261125T010203-0a1b2c3d", volumes=["D:", "e:\\", "C:\\mnt\\logs\\"],
                  verify_writer_ids=[SQL_WRITER], exclude_writer_ids=[SYSTEM_WRITER])
    values.update(overrides)
    return diskshadow.SessionPlan(**values)


def commands(script):
    assert script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    return script.split("\r\n")[:-1]


def test_copy_backup_has_no_begin_or_end_backup_and_records_after_create():
    lines = commands(diskshadow.diskshadow_script(plan()))
    assert lines[:3] == ["set context persistent", "set verbose on",
                         "set metadata C:\\ProgramData\\shadowsnap\\runs\\ss-20261125T010203-0a1b2c3d\\backup.cab"]
    assert "writer verify {a65faa63-5ea8-4ebc-9dbd-a0c4db26912a}" in lines
    assert "writer exclude {e8132975-6f93-4464-a53e-1050253ae220}" in lines
    assert [line for line in lines if line.startswith("add volume")] == [
        "add volume D: alias vol_d", "add volume E: alias vol_e", "add volume C:\\mnt\\logs alias vol_c_mnt_logs"]
    assert "begin backup" not in lines and "end backup" not in lines
    assert lines[-2:] == ["create", "exec C:\\ProgramData\\shadowsnap\\runs\\ss-20261125T010203-0a1b2c3d\\record.cmd"]
    assert "hold.cmd" not in diskshadow.session_files(plan())


def test_full_backup_sends_backup_complete_only_after_the_hold():
    lines = commands(diskshadow.diskshadow_script(plan(backup_type="full")))
    order = [lines.index(c) for c in ("begin backup", "add volume D: alias vol_d", "create")]
    assert order == sorted(order)
    assert lines[-3].endswith("\\record.cmd") and lines[-2].endswith("\\hold.cmd") and lines[-1] == "end backup"
    hold = diskshadow.session_files(plan(backup_type="full", hold_timeout_seconds=90))["hold.cmd"]
    assert "rem shadowsnap-hold protocol=1 timeout=90" in hold
    assert 'findstr /x /c:"ok"' in hold and hold.rstrip().endswith("exit /b 1")


def test_writer_verify_comes_before_the_volumes_so_a_missing_writer_fails_create():
    lines = commands(diskshadow.diskshadow_script(plan()))
    assert lines.index("writer verify {%s}" % SQL_WRITER) < lines.index("add volume D: alias vol_d")


def test_record_script_writes_every_alias_and_the_set_id():
    record = diskshadow.record_script(plan())
    for variable in ("VSS_SHADOW_SET", "vol_d", "vol_e", "vol_c_mnt_logs"):
        assert "echo %s=%%%s%%" % (variable, variable) in record
    assert "created.txt" in record


def test_aliases_stay_unique():
    assert diskshadow.volume_aliases(["C:\\a_b", "C:\\a-b"]) == {"C:\\a_b": "vol_c_a_b", "C:\\a-b": "vol_c_a_b_2"}


@pytest.mark.parametrize("overrides, message", [
    ({"volumes": []}, "at least one volume"),
    ({"volumes": ["D:", "d:\\"]}, "listed twice"),
    ({"volumes": ["C:\\Program Files\\x"]}, "without spaces"),
    ({"volumes": ["\\\\server\\share"]}, "neither a drive letter"),
    ({"volumes": ["C:\\m%%path%%"]}, "neither a drive letter"),
    ({"volumes": ["C:\\m%d" % n for n in range(65)]}, "at most 64"),
    ({"backup_type": "incremental"}, "copy or full"),
    ({"run_id": "bad id"}, "run id"),
    ({"verify_writer_ids": ["SqlServerWriter"]}, "is not a GUID"),
    ({"exclude_writer_ids": [SQL_WRITER]}, "both required and excluded"),
])
def test_unsafe_plans_are_refused(overrides, message):
    with pytest.raises(diskshadow.SessionPlanError, match=message):
        diskshadow.session_files(plan(**overrides))


def test_created_record_round_trip_and_incomplete_records():
    record = ("VSS_SHADOW_SET={11111111-2222-3333-4444-555555555555}\r\n"
              "vol_d={AAAAAAAA-0000-0000-0000-000000000001}\r\nvol_e={aaaaaaaa-0000-0000-0000-000000000002}\r\n"
              "vol_c_mnt_logs={aaaaaaaa-0000-0000-0000-000000000003}\r\n")
    set_id, shadows = diskshadow.read_created_record(record).by_volume(plan())
    assert set_id == "{11111111-2222-3333-4444-555555555555}"
    assert shadows == {"D:": "{aaaaaaaa-0000-0000-0000-000000000001}", "E:": "{aaaaaaaa-0000-0000-0000-000000000002}",
                       "C:\\mnt\\logs": "{aaaaaaaa-0000-0000-0000-000000000003}"}
    with pytest.raises(diskshadow.SessionPlanError, match="no shadow id for E:"):
        diskshadow.read_created_record(record.replace("vol_e={aaaaaaaa-0000-0000-0000-000000000002}", "vol_e=")).by_volume(plan())
    with pytest.raises(diskshadow.SessionPlanError, match="no shadow set id"):
        diskshadow.read_created_record("VSS_SHADOW_SET=%VSS_SHADOW_SET%").by_volume(plan())


def test_run_script_records_the_exit_code_with_the_redirection_first():
    run = diskshadow.run_script(plan())
    assert '> "C:\\ProgramData\\shadowsnap\\runs\\ss-20261125T010203-0a1b2c3d\\exit.tmp" echo %ERRORLEVEL%' in run
    assert "%ERRORLEVEL%>" not in run


def test_components_are_verified_one_by_one_after_the_whole_writers():
    lines = commands(diskshadow.diskshadow_script(plan(verify_components=[(SQL_WRITER, "\\WIN-SQL-01\\shop"),
                                                                          (SQL_WRITER, "\\WIN-SQL-01\\Sales DB")])))
    verifies = [line for line in lines if line.startswith("writer verify")]
    assert verifies == ["writer verify {%s}" % SQL_WRITER, "writer verify {%s}:\\WIN-SQL-01\\shop" % SQL_WRITER,
                        'writer verify "{%s}:\\WIN-SQL-01\\Sales DB"' % SQL_WRITER]
    assert lines.index(verifies[-1]) < lines.index("add volume D: alias vol_d")


@pytest.mark.parametrize("path", ["WIN-SQL-01\\shop", "\\WIN-SQL-01\\50%", '\\WIN-SQL-01\\"x"', "\\WIN-SQL-01\\\u30c7\u30fc\u30bf",
                                  "\\WIN-SQL-01\\a\r\nexec evil.cmd"])
def test_a_component_a_script_line_cannot_carry_is_refused(path):
    with pytest.raises(diskshadow.SessionPlanError, match="cannot be named in a diskshadow script"):
        diskshadow.verify_target(SQL_WRITER, path)
    with pytest.raises(diskshadow.SessionPlanError, match="cannot be named"):
        diskshadow.session_files(plan(verify_writer_ids=[], verify_components=[(SQL_WRITER, path)]))


def test_a_writer_verified_by_its_components_cannot_be_excluded():
    with pytest.raises(diskshadow.SessionPlanError, match="both required and excluded"):
        diskshadow.session_files(plan(verify_writer_ids=[], verify_components=[(SQL_WRITER, "\\WIN-SQL-01\\shop")],
                                      exclude_writer_ids=[SQL_WRITER]))
