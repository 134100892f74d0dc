"""The RPO report's HTML template (playbooks/templates/rpo_report.html.j2) rendered by Ansible's own templar from the
rpo_report filter's output: self-contained, every user value escaped, every kind with its own shape and word."""

import os
import re

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.shadowsnap.ec2.plugins.filter.rpo_report import KINDS, rpo_report

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
TEMPLATE = os.path.join(ROOT, "playbooks", "templates", "rpo_report.html.j2")
NOW = "2026-06-30T12:00:00Z"
HOSTILE = "<script>alert('x')</script>\" onmouseover=\"alert(1)"


def summary(set_id, hours, consistency="application", status="completed", instance_id="i-sql"):
    """A set as ec2_snapshot_set_info returns it (the keys the filter reads)."""
    created = "2026-06-30T%02d:00:00Z" % (12 - hours)
    return {"set_id": set_id, "instance_id": instance_id, "consistency": consistency, "status": status,
            "created_at": created, "engine": "shadow", "policy": "default", "fallback_from": None,
            "missing_volume_ids": ["vol-1"] if status == "incomplete" else []}


def render(report):
    with open(TEMPLATE, encoding="utf-8") as handle:
        source = handle.read()
    return Templar(loader=DataLoader(), variables={"rpo_report": report}).template(trust_as_template(source))


def page(found, inventory, ec2_instances=()):
    return render(rpo_report(found, inventory=inventory, ec2_instances=list(ec2_instances), now=NOW))


def test_user_values_are_escaped_in_text_and_attributes():
    html = page([summary(HOSTILE, 2, instance_id="i-sql")], {HOSTILE: "i-sql"},
                [{"instance_id": "i-sql", "platform": "windows", "tags": {"Name": "R&D <db>"}}])
    assert "<script" not in html and 'onmouseover="' not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34; onmouseover=&#34;alert(1)" in html
    assert 'data-set-id="&lt;script&gt;' in html
    assert "R&amp;D &lt;db&gt;" in html


def test_the_page_fetches_nothing():
    html = page([summary("nightly", 2)], {"sql-01": "i-sql", "web-01": "i-web"})
    for reference in ("http:", "https:", "//", "<link", "<script", "<img", "<iframe", "@import", "url(", " src="):
        assert reference not in html.replace("<!DOCTYPE html>", ""), reference


def test_every_kind_has_a_shape_and_a_word_in_the_legend_and_on_its_marks():
    found = [summary("application", 1), summary("crash", 2, "crash"), summary("unverified", 3, "unverified"),
             summary("pending", 4, status="pending"), summary("incomplete", 5, status="incomplete")]
    html = page(found, {"sql-01": "i-sql"})
    for kind in KINDS:
        assert 'id="shape-%s"' % kind in html
        assert re.search(r'<li class="k-%s" data-kind="%s">.*?<strong>%s</strong>' % (kind, kind, kind), html, re.S)
        mark = re.search(r'<li class="set k-%s[^"]*" data-kind="%s"\s+data-set-id="%s".*?</li>' % (kind, kind, kind), html,
                         re.S)
        assert mark and '<use href="#shape-%s"/>' % kind in mark.group(0)
        assert '<span class="sr">%s set %s,' % (kind, kind) in mark.group(0), "a word beside the shape"


def test_each_row_says_its_verdict_in_words_and_rows_without_sets_say_so():
    html = page([summary("nightly", 2)], {"sql-01": "i-sql", "web-01": "i-web"})
    rows = dict(re.findall(r'<tr class="instance \w+" data-instance-id="([^"]*)" data-verdict="\w+">(.*?)</tr>', html, re.S))
    assert set(rows) == {"i-sql", "i-web"}
    assert '<span class="badge in_rpo">IN RPO</span>' in rows["i-sql"]
    assert '<span class="badge out_of_rpo">OUT OF RPO</span>' in rows["i-web"]
    assert "no snapshot set" in rows["i-web"] and 'class="set ' not in rows["i-web"]
    assert '<span class="badge out_of_rpo">1 OUT OF RPO</span>' in html


def test_a_last_good_set_older_than_the_timeline_shows_at_its_left_end_with_its_age():
    html = page([summary("ancient", 0) | {"created_at": "2026-06-01T12:00:00Z"}], {"sql-01": "i-sql"})
    assert re.search(r'<span class="offscale" data-set-id="ancient">&larr; last good 29 d 0 h ago</span>', html)
    assert 'data-set-id="ancient" data-good' not in html, "no mark for a set beyond the timeline"
