"""The admin GPU page's table (gpulab.hub.pages.gpus: gpu_rows, render_rows and gpu_rows.html,
which gpus.html calls) and gpulab-status.json's GPUs, on a generated department
(benchmarks/scale.py): the rows are drawn synchronously, in an overlay of the hub's async Jinja
environment, and say what the async loop said; the status file builds no charts."""

import re

import jinja2
import pytest

from benchmarks import scale
from gpulab.hub import charts
from gpulab.hub.pages import gpus
from gpulab.hub.status import document

# the table's cells as gpus.html wrote them, with Jinja macros, before they became functions
MACROS = """{% macro hm(seconds) -%}
  {%- if seconds is none -%}–{%- elif seconds < 3600 -%}{{ (seconds // 60) | int }} min{%- else -%}{{ (seconds // 3600) | int }} h {{ ((seconds % 3600) // 60) | int }} min{%- endif -%}
{%- endmacro %}
{% macro pct(v) -%}{%- if v is none -%}–{%- else -%}{{ "%.0f" | format(v) }}%{%- endif -%}{%- endmacro %}"""


@pytest.fixture(scope="module")
def dep():
    scale._quiet()
    d = scale.Department(64, 32, 2, book_on_disk=False)
    d.warm_up(every=300)
    d.tick()
    yield d
    d.close()


def test_durations_and_percentages_read_as_the_macros_wrote_them():
    env = jinja2.Environment(autoescape=True)
    macros = env.from_string(MACROS).module
    for s in (None, 0, 59.9, 60, 61.5, 3599.99, 3600, 3661, 7322.7, 86400 * 3 + 125, -5):
        assert gpus._hm(s) == str(macros.hm(s)), s
    for v in (None, 0, 0.4, 0.5, 1.5, 42.0, 99.6, 100):
        assert gpus._pct(v) == str(macros.pct(v)), v


def test_the_page_shows_every_gpu_its_holders_and_the_admins_stop_buttons(dep):
    html = dep.run(dep._gpu_page(True))
    rows = gpus.gpu_rows(dep.service, True, dep.now)[0]
    tbody = html.split('<table class="table table-sm gpulab-gpu-table">')[1].split("</tbody>")[0]
    assert tbody.count("<tr data-gpu-uuid=") == len(rows) == 32
    assert tbody.count('<svg class="gpulab-spark"') == 32  # an hour of readings each
    held = [g for g in rows if g["holders"]]
    assert held and tbody.count("gpulab-stop") == sum(len(g["holders"]) for g in held)
    assert tbody.count('name="_xsrf" value="x"') == sum(len(g["holders"]) for g in held)
    g = held[0]
    h = g["holders"][0]
    row = tbody.split(f'<tr data-gpu-uuid="{g["uuid"]}">')[1].split("</tr>")[0]
    assert f"{h['user']}{'/' + h['server'] if h['server'] else ''}" in row
    assert f"<td>{gpus._hm(dep.now - h['since'])}" in row and " min" in row
    assert f'<td class="gpulab-util">{gpus._pct(g["utilization"])}</td>' in row
    free = [g for g in rows if not g["holders"]]
    for g in free:
        row = tbody.split(f'<tr data-gpu-uuid="{g["uuid"]}">')[1].split("</tr>")[0]
        assert '<td class="gpulab-holder">free' in row and "gpulab-stop" not in row
        assert '<td class="gpulab-idle">–</td>' in row
    # a user sees no stop buttons; the rest of the page is the async template's
    mine = dep.run(dep._gpu_page(False))
    assert "gpulab-stop" not in mine and mine.count("<tr data-gpu-uuid=") == 32
    assert "</tbody>" in mine and '<div class="container" id="gpulab-gpus">' in mine


def test_the_rows_are_escaped_and_an_empty_table_says_so(dep):
    env = dep.templates()
    rows = gpus.gpu_rows(dep.service, True, dep.now)[0][:1]
    evil = [
        {**rows[0], "model": "<b>x</b>", "holders": [{"user": "a&b", "server": "", "since": 0}]}
    ]
    out = str(gpus.render_rows(env, evil, True, '"q', dep.now))
    assert "&lt;b&gt;x&lt;/b&gt;" in out and "Stop a&amp;b" in out and 'value="&#34;q"' in out
    assert "<b>" not in out
    empty = str(gpus.render_rows(env, [], False, "x", dep.now))
    assert empty.strip() == '<tr><td colspan="11">No GPUs to hand out.</td></tr>'
    # compiled once per environment, in a sync overlay of it
    sync = env._gpulab_sync
    assert not sync.is_async and env.is_async and sync.loader is env.loader
    gpus.render_rows(env, rows, True, "x", dep.now)
    assert env._gpulab_sync is sync and sync.get_template("gpu_rows.html") is sync.get_template(
        "gpu_rows.html"
    )


def test_the_status_file_builds_no_charts_and_says_the_same(dep):
    with_charts = gpus.gpu_rows(dep.service, True, dep.now)[0]
    without = gpus.gpu_rows(dep.service, True, dep.now, charts=False)[0]
    assert all("chart" not in g and "hour" not in g for g in without)
    for a, b in zip(with_charts, without, strict=True):
        assert {k: v for k, v in a.items() if k not in ("chart", "hour")} == b
    dep.service.__dict__.setdefault("mode", "push")
    lab = type(
        "Lab",
        (),
        {
            "name": "lab",
            "backend": type("B", (), {"mode": "swarm"})(),
            "home_backups": type("H", (), {"jobs": {}})(),
            "saves_in_flight": [],
        },
    )()
    doc = document(lab, dep.service, dep.now)
    assert [g["uuid"] for g in doc["gpus"]] == [g["uuid"] for g in with_charts]
    assert set(doc["gpus"][0]) == {
        "uuid",
        "index",
        "model",
        "node",
        "memory_total",
        "memory_used",
        "utilization",
        "utilization_hour",
        "idle_for",
        "outside",
        "holders",
    }


def test_a_gpus_hour_as_columns_draws_the_same_chart(dep):
    uuid = dep.manager.allocator.order[0]
    points = dep.monitor.gpu_view(uuid, dep.now + 17)["hour"]
    columns = dep.monitor.gpu_view(uuid, dep.now + 17, hour="columns")["hour"]
    assert "hour" not in dep.monitor.gpu_view(uuid, dep.now + 17, hour=False)
    assert list(zip(*columns, strict=True)) == points and len(points) > 1
    assert charts.sparkline_columns(*columns, 80 << 30) == charts.sparkline(points, 80 << 30)
    assert re.match(r'<svg class="gpulab-spark"', charts.sparkline(points, 80 << 30))
    assert charts.sparkline_columns((), (), (), 1) == ""
