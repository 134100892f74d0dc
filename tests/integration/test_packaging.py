"""The Galaxy tarball as a user installs it: built with ansible-galaxy, inspected, installed into a clean path, used."""

import json
import os
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import REPO_ROOT

pytestmark = pytest.mark.integration

BIN = os.path.dirname(sys.executable)
MAX_TARBALL_BYTES = 512 * 1024
# What only development needs: the lab, the tests (but sanity's ignore files), dev requirements, tool caches.
FORBIDDEN_PREFIXES = ("tests/lab/", "tests/unit/", "tests/integration/", "tests/benchmarks/", "tests/fixtures/",
                      ".ansible/", ".venv/", "build/", ".ci/", ".pytest_cache/", ".hypothesis/")
FORBIDDEN_FILES = ("requirements-dev.txt", "Makefile", "pytest.ini", ".ansible-lint", ".gitignore")


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    # A stray tool cache in the work tree must not reach the tarball (ansible-lint leaves one).
    os.makedirs(os.path.join(REPO_ROOT, ".ansible", "probe"), exist_ok=True)
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out),
                    REPO_ROOT], check=True, capture_output=True, text=True)
    (path,) = out.glob("shadowsnap-ec2-*.tar.gz")
    return path


def test_the_tarball_holds_the_collection_and_nothing_of_its_development(tarball):
    with tarfile.open(tarball) as archive:
        names = [member.name.removeprefix("./") for member in archive.getmembers()]
        manifest = json.load(archive.extractfile("MANIFEST.json"))
    leaked = [n for n in names if n.startswith(FORBIDDEN_PREFIXES) or n in FORBIDDEN_FILES or "__pycache__" in n]
    assert leaked == []
    for needed in ("plugins/plugin_utils/agent/shadowsnap_agent.ps1", "meta/runtime.yml", "meta/execution-environment.yml",
                   "requirements.txt", "bindep.txt", "roles/backup/meta/argument_specs.yml", "playbooks/backup.yml"):
        assert needed in names
    assert os.path.getsize(tarball) < MAX_TARBALL_BYTES
    assert manifest["collection_info"]["dependencies"].keys() == {"amazon.aws", "ansible.windows"}


def test_the_execution_environment_metadata_names_files_that_ship(tarball):
    with tarfile.open(tarball) as archive:
        names = {member.name.removeprefix("./") for member in archive.getmembers()}
        metadata = yaml.safe_load(archive.extractfile("meta/execution-environment.yml"))
    assert set(metadata) == {"version", "dependencies"} and metadata["version"] == 1, "the collection form, not an EE definition"
    assert set(metadata["dependencies"]) == {"python", "system"}
    assert set(metadata["dependencies"].values()) <= names


def test_the_installed_tarball_documents_its_plugins_and_parses_its_playbooks(tarball, tmp_path):
    clean = tmp_path / "collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(clean), ANSIBLE_NOCOLOR="1")
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--offline", "--no-deps", "-p",
                    str(clean), str(tarball)], check=True, capture_output=True, text=True, env=env)
    installed = clean / "ansible_collections" / "shadowsnap" / "ec2"
    modules = sorted(p.stem for p in (installed / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    docs = subprocess.run([os.path.join(BIN, "ansible-doc"), "--json", "-t", "module"]
                          + ["shadowsnap.ec2." + m for m in modules], check=True, capture_output=True, text=True, env=env)
    assert sorted(name.split(".")[-1] for name in json.loads(docs.stdout)) == modules
    for playbook in sorted(p.stem for p in (installed / "playbooks").glob("*.yml")):
        check = subprocess.run([os.path.join(BIN, "ansible-playbook"), "--syntax-check", "shadowsnap.ec2." + playbook],
                               capture_output=True, text=True, env=env, cwd=tmp_path, check=False)
        assert check.returncode == 0, check.stderr
