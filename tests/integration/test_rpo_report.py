"""The RPO report playbook through real ansible-playbook against the lab, and its HTML page in a real headless browser.

Sets are made by ec2_snapshot_set as the backup role makes them and back-dated through their created-at tags; the
page is loaded by Debian's chromium (``make browser`` installs it), which dumps the DOM it built and a screenshot.
"""

import datetime
import html.parser
import json
import os
import shutil
import struct
import subprocess
import zlib

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.integration

RPO_REPORT = "- ansible.builtin.import_playbook: shadowsnap.ec2.rpo_report\n"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT_COPY = os.path.join(REPO_ROOT, "tests", "output", "rpo_report.png")
STATS = {"ANSIBLE_SHOW_CUSTOM_STATS": "true"}
SQL, WEB, XEN = "win-sql-01", "win-web-01", "win-xen-01"

SEED = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Make the sets
      shadowsnap.ec2.ec2_snapshot_set:
        instance_id: "{{ item.instance_id }}"
        set_id: "{{ item.set_id }}"
        volumes: "{{ item.volumes | default('data') }}"
        engine: "{{ item.engine }}"
        consistency: "{{ item.consistency }}"
        fallback_from: "{{ item.fallback_from | default(omit) }}"
      loop: "{{ seeds }}"
"""

# (host, set id, engine, consistency, hours ago); extra keys go to ec2_snapshot_set.
SETS = [
    (SQL, "sql-app-50h", "shadow", "application", 50),
    (SQL, "sql-crash-30h", "crash", "crash", 30),
    (SQL, "sql-app-2h", "shadow", "application", 2),
    (WEB, "web-app-40h", "shadow", "application", 40),
    (WEB, "web-app-incomplete-5h", "shadow", "application", 5, {"volumes": "all"}),
    (WEB, "web-unverified-3h", "shadow", "unverified", 3),
    (WEB, "web-crash-1h", "crash", "crash", 1, {"fallback_from": "shadow"}),
]


def set_snapshots(ec2, set_id):
    return ec2.describe_snapshots(Filters=[{"Name": "tag:shadowsnap:set-id", "Values": [set_id]}])["Snapshots"]


def seed_sets(lab, ansible_playbook, sets):
    seeds = []
    for host, set_id, engine, consistency, _hours, *extra in sets:
        seeds.append(dict(extra[0] if extra else {}, instance_id=lab.instance(host)["instance_id"], set_id=set_id,
                          engine=engine, consistency=consistency))
    run = ansible_playbook(lab, SEED, {"seeds": seeds})
    assert run.rc == 0, run.stdout
    ec2 = lab.ec2()
    now = datetime.datetime.now(datetime.timezone.utc)
    for _host, set_id, _engine, _consistency, hours, *_extra in sets:
        created = (now - datetime.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        ec2.create_tags(Resources=[s["SnapshotId"] for s in set_snapshots(ec2, set_id)],
                        Tags=[{"Key": "shadowsnap:created-at", "Value": created}])


@pytest.fixture
def seeded(lab, ansible_playbook, tmp_path):
    """Three instances: SQL in RPO, WEB whose newest sets do not count and whose last
    good set is 40 h old, XEN without any set, only in EC2's list (tag Backup=daily), not in the inventory."""
    lab.ebs(per_volume_interval=0)
    seed_sets(lab, ansible_playbook, SETS)
    ec2 = lab.ec2()
    boot_snapshot = next(s for s in set_snapshots(ec2, "web-app-incomplete-5h")
                         if s["VolumeId"] == next(v["volume_id"] for v in lab.instance(WEB)["volumes"] if v["drive"] == "C:"))
    ec2.delete_snapshot(SnapshotId=boot_snapshot["SnapshotId"])
    ec2.create_tags(Resources=[lab.instance(name)["instance_id"] for name in (SQL, XEN)],
                    Tags=[{"Key": "Backup", "Value": "daily"}])
    inventory = tmp_path / "windows.ini"
    lab.write_inventory(str(inventory))
    return str(inventory)


def run_report(lab, ansible_playbook, inventory, tmp_path, **variables):
    paths = {"rpo_report_path": str(tmp_path / "rpo.json"), "rpo_html_path": str(tmp_path / "rpo.html")}
    run = ansible_playbook(lab, RPO_REPORT, dict(paths, **variables), inventory=inventory, environment=STATS)
    report = json.loads((tmp_path / "rpo.json").read_text(encoding="utf-8")) if (tmp_path / "rpo.json").exists() else None
    return run, report, json.loads(run.stdout).get("global_custom_stats", {}), tmp_path / "rpo.html"


def chromium(*arguments, profile):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("Debian's chromium is not installed: run `make browser`")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--user-data-dir=" + str(profile)]
    completed = subprocess.run(command + list(arguments), capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


# Measures the page as the browser laid it out, and writes what it measured into the DOM that --dump-dom prints.
LAYOUT_PROBE = """<script>
for (const track of document.querySelectorAll('.track')) {
  const box = track.getBoundingClientRect();
  for (const mark of track.querySelectorAll('.set')) {
    const r = mark.getBoundingClientRect();
    mark.dataset.x = String(r.left + r.width / 2 - box.left);
    mark.dataset.inside = String(r.width > 0 && r.left >= box.left - 1 && r.right <= box.right + 1
                                 && r.top >= box.top && r.bottom <= box.bottom);
  }
  track.dataset.width = String(box.width);
}
</script>"""


class PageReader(html.parser.HTMLParser):
    """The report's rows and each row's timeline marks, from the DOM chromium dumped."""

    def __init__(self):
        super().__init__()
        self.rows = {}
        self.row = None
        self.summary = None
        self.text = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "tr" and "data-instance-id" in attrs:
            self.row = self.rows.setdefault(attrs["data-instance-id"],
                                            {"verdict": attrs["data-verdict"], "sets": [], "text": []})
        elif tag == "li" and "set" in classes and self.row is not None:
            self.row["sets"].append(attrs)
        elif attrs.get("id") == "summary":
            self.summary = attrs

    def handle_endtag(self, tag):
        if tag == "tr":
            self.row = None

    def handle_data(self, data):
        (self.row["text"] if self.row is not None else self.text).append(data)


def read_dom(page, profile):
    reader = PageReader()
    reader.feed(chromium("--dump-dom", page.as_uri(), profile=profile))
    for row in reader.rows.values():
        row["text"] = " ".join(" ".join(row["text"]).split())
    return reader


def png_size(path):
    """(width, height) of a PNG whose chunks are intact and whose image data inflates to the size IHDR declares."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "a PNG signature"
    offset, chunks, idat = 8, [], b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])[0]
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        offset += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and idat
    channels = {2: 3, 6: 4}[colour]
    assert depth == 8 and len(zlib.decompress(idat)) == height * (1 + width * channels)
    return width, height


def test_the_report_judges_each_instance_fails_the_job_and_the_browser_shows_it(lab, ansible_playbook, seeded,
                                                                                tmp_path):
    sql, web, xen = (lab.instance(name)["instance_id"] for name in (SQL, WEB, XEN))
    run, report, stats, page = run_report(lab, ansible_playbook, seeded, tmp_path, target_hosts=",".join([SQL, WEB]),
                                          rpo_hours="24", rpo_timeline_days="7", rpo_instance_filters='{"tag:Backup": "daily"}')

    assert run.rc != 0, "an instance out of its RPO fails the job"
    failure = run.result("Fail when an instance is out of its RPO")
    assert failure["failed"] and "2 of 3 instances" in failure["msg"] and WEB in failure["msg"] and XEN in failure["msg"]
    assert report["counts"] == {"instances": 3, "in_rpo": 1, "out_of_rpo": 2}
    assert report["rpo_hours"] == 24.0
    rows = {row["instance_id"]: row for row in report["instances"]}
    assert [row["instance_id"] for row in report["instances"]] == [xen, web, sql], "the stalest first"

    assert (rows[sql]["verdict"], rows[sql]["hosts"], rows[sql]["sources"]) == ("in_rpo", [SQL], ["inventory", "ec2"])
    assert rows[sql]["last_good"]["set_id"] == "sql-app-2h"
    assert abs(rows[sql]["last_good"]["age_seconds"] - 2 * 3600) < 300
    assert rows[sql]["newest"]["set_id"] == "sql-app-2h"
    assert rows[sql]["reason"] == "last good set 2.0 h old, within the RPO of 24 h"

    assert (rows[web]["verdict"], rows[web]["in_rpo"]) == ("out_of_rpo", False)
    assert rows[web]["last_good"]["set_id"] == "web-app-40h"
    assert abs(rows[web]["last_good"]["age_seconds"] - 40 * 3600) < 300, "the age of the older application set"
    assert (rows[web]["newest"]["set_id"], rows[web]["newest"]["kind"]) == ("web-crash-1h", "crash")
    assert "older than the RPO of 24 h" in rows[web]["reason"] and "newest: crash" in rows[web]["reason"]
    web_sets = {s["set_id"]: s for s in rows[web]["sets"]}
    assert {set_id: s["kind"] for set_id, s in web_sets.items()} == {
        "web-crash-1h": "crash", "web-unverified-3h": "unverified", "web-app-incomplete-5h": "incomplete",
        "web-app-40h": "application"}
    assert [set_id for set_id, s in web_sets.items() if s["good"]] == ["web-app-40h"]
    assert "fallback" in web_sets["web-crash-1h"]["note"]
    assert "incomplete" in web_sets["web-app-incomplete-5h"]["note"]

    assert (rows[xen]["verdict"], rows[xen]["hosts"], rows[xen]["name"], rows[xen]["sources"]) == (
        "out_of_rpo", [], XEN, ["ec2"]), "found by the tag filter only"
    assert (rows[xen]["sets"], rows[xen]["last_good"], rows[xen]["reason"]) == ([], None, "no snapshot set at all")

    published = stats["shadowsnap_rpo"]
    assert published["counts"] == report["counts"]
    assert [(r["instance_id"], r["verdict"]) for r in published["instances"]] == [(xen, "out_of_rpo"), (web, "out_of_rpo"),
                                                                                  (sql, "in_rpo")]
    assert all("sets" not in r for r in published["instances"]), "the figures, without the timelines"

    text = page.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "<link" not in text and " src=" not in text, \
        "one file, nothing fetched"
    dom = read_dom(page, tmp_path / "chromium-profile")
    assert (dom.summary["data-instances"], dom.summary["data-in-rpo"], dom.summary["data-out-of-rpo"]) == ("3", "1", "2")
    assert list(dom.rows) == [xen, web, sql]
    assert {i: r["verdict"] for i, r in dom.rows.items()} == {sql: "in_rpo", web: "out_of_rpo", xen: "out_of_rpo"}
    assert "OUT OF RPO" in dom.rows[web]["text"] and "40.0 h ago" in dom.rows[web]["text"]
    assert "IN RPO" in dom.rows[sql]["text"] and "OUT OF RPO" not in dom.rows[sql]["text"]
    assert "no snapshot set" in dom.rows[xen]["text"] and dom.rows[xen]["sets"] == []
    marks = {i: {m["data-set-id"]: m["data-kind"] for m in r["sets"]} for i, r in dom.rows.items()}
    assert marks[web] == {s: web_sets[s]["kind"] for s in web_sets}
    assert marks[sql] == {"sql-app-2h": "application", "sql-crash-30h": "crash", "sql-app-50h": "application"}
    assert [m["data-set-id"] for m in dom.rows[web]["sets"] if m["data-good"] == "true"] == ["web-app-40h"]

    probed = tmp_path / "rpo-probed.html"
    probed.write_text(text.replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    laid_out = read_dom(probed, tmp_path / "chromium-profile")
    for instance_id in (sql, web):
        placed = laid_out.rows[instance_id]["sets"]
        assert placed and all(m["data-inside"] == "true" for m in placed), "every mark inside its timeline"
        ages = {s["set_id"]: s["age_seconds"] for s in rows[instance_id]["sets"]}
        by_x = [m["data-set-id"] for m in sorted(placed, key=lambda m: float(m["data-x"]))]
        assert by_x == sorted(ages, key=ages.get, reverse=True), "older sets further left"

    screenshot = tmp_path / "rpo_report.png"
    chromium("--screenshot=" + str(screenshot), "--window-size=1280,900", page.as_uri(),
             profile=tmp_path / "chromium-profile")
    assert png_size(screenshot) == (1280, 900)
    os.makedirs(os.path.dirname(SCREENSHOT_COPY), exist_ok=True)
    shutil.copyfile(screenshot, SCREENSHOT_COPY)


def test_every_instance_in_rpo_passes_and_bad_input_is_refused(lab, ansible_playbook, tmp_path):
    """WEB and SQL from the inventory, XEN from EC2's list by a filter given as survey text (YAML)."""
    lab.ebs(per_volume_interval=0)
    seed_sets(lab, ansible_playbook, [(name, name + "-app", "shadow", "application", 1) for name in (SQL, WEB, XEN)])
    lab.ec2().create_tags(Resources=[lab.instance(XEN)["instance_id"]], Tags=[{"Key": "Backup", "Value": "daily"}])
    inventory = tmp_path / "windows.ini"
    lab.write_inventory(str(inventory))
    run, report, stats, page = run_report(lab, ansible_playbook, str(inventory), tmp_path, rpo_hours="1.5",
                                          target_hosts=",".join([SQL, WEB]), rpo_instance_filters="tag:Backup: daily")
    assert run.rc == 0, run.stdout
    assert report["counts"] == {"instances": 3, "in_rpo": 3, "out_of_rpo": 0}
    xen = next(row for row in report["instances"] if row["instance_id"] == lab.instance(XEN)["instance_id"])
    assert (xen["sources"], xen["last_good"]["set_id"]) == (["ec2"], XEN + "-app"), "the sets of what EC2 listed"
    assert stats["shadowsnap_rpo"]["counts"] == report["counts"]
    assert page.exists()

    for variables, expected in (({"rpo_hours": "0"}, "rpo_hours (0)"), ({"rpo_hours": "a day"}, "rpo_hours (a day)"),
                                ({"target_hosts": "no-such-host"}, "matched 0 hosts"),
                                ({"target_hosts": ""}, "matched 0 hosts")):
        (tmp_path / "rpo.json").unlink(missing_ok=True)
        run, report, _stats, _page = run_report(lab, ansible_playbook, str(inventory), tmp_path, **variables)
        assert run.rc != 0 and report is None
        assert expected in run.result("Check the inputs")["msg"]
