"""The aws_vss engine's decisions: AWS's verdict, the AwsVssConfig set id, the document's parameters, the polling."""

import pytest

from ansible_collections.shadowsnap.ec2.plugins.modules import ec2_vss_snapshot_set as module


@pytest.mark.parametrize("config, expected", [
    ("Version=2.3.1;SnapshotSetId={D0114E8F-7087-474F-A5C7-868215A1B270};CopyOnly=True", "d0114e8f-7087-474f-a5c7-868215a1b270"),
    ('{"snapshotSetId": "d0114e8f-7087-474f-a5c7-868215a1b270"}', "d0114e8f-7087-474f-a5c7-868215a1b270"),
    ("AwsVssComponentsVersion=2.3.1", None),
    ("", None),
    (None, None),
])
def test_the_set_id_is_read_from_aws_vss_config_when_present(config, expected):
    assert module.vss_set_id(config) == expected


@pytest.mark.parametrize("tags, no_writers, expected", [
    ([{"AppConsistent": "true"}, {"AppConsistent": "True"}], False, (True, "application")),
    ([{"AppConsistent": "true"}, {"AppConsistent": "false"}], False, (False, "crash")),
    ([{"AppConsistent": "true"}, {}], False, (False, "crash")),
    ([{"AppConsistent": "true"}], True, (True, "crash")),
    ([], False, (False, "crash")),
])
def test_application_only_when_every_member_says_so_and_writers_took_part(tags, no_writers, expected):
    assert module.verdict(tags, no_writers) == expected


def test_document_parameters_are_the_documented_strings():
    parameters = module.document_parameters(True, True, False, 600, "d")
    assert parameters == {"ExcludeBootVolume": ["True"], "CopyOnly": ["True"], "NoWriters": ["False"],
                          "CreateAmi": ["False"], "description": ["d"], "executionTimeout": ["600"]}
    assert "executionTimeout" not in module.document_parameters(False, False, False, None, "d")
    assert not set(module.RESERVED_AWS_TAGS) & set(parameters)


class FakeSsm:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.calls = 0

    def get_command_invocation(self, **kwargs):
        self.calls += 1
        return {"Status": self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]}


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds

    def __call__(self):
        return self.now


def test_polling_waits_for_a_terminal_status_with_growing_delays():
    clock = Clock()
    ssm = FakeSsm(["Pending", "InProgress", "InProgress", "Success"])
    assert module.wait_for_command(ssm, "c", "i", 60, sleep=clock.sleep, clock=clock)["Status"] == "Success"
    assert ssm.calls == 4 and clock.now < 10


def test_polling_is_bounded():
    clock = Clock()
    with pytest.raises(module.VssCommandError, match="still InProgress after 30 s"):
        module.wait_for_command(FakeSsm(["InProgress"]), "c", "i", 30, sleep=clock.sleep, clock=clock)
    assert clock.now <= 31
