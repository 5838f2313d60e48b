"""The GPU page's inline charts (gpulab.hub.charts): numbers only, scaled into the box."""

import re
import xml.etree.ElementTree as ET

from gpulab.hub import charts


def numbers(svg, attr):
    return [
        float(v) for pts in re.findall(rf'{attr}="([^"]+)"', svg) for v in re.split("[ ,]", pts)
    ]


def test_a_gpus_hour_is_drawn_inside_its_box_newest_on_the_right():
    points = [(3600, 0.0, 0), (1800, 100.0, 8 << 30), (0, 50.0, 16 << 30)]
    svg = charts.sparkline(points, 16 << 30, width=160, height=32)
    ET.fromstring(svg)  # well-formed
    xs_ys = numbers(svg, "points")
    assert all(0 <= v <= 160 for v in xs_ys)
    util = re.search(r'<polygon points="([^"]+)"', svg).group(1).split()
    assert util[1] == "0.0,31.0" and util[-2] == "160.0,16.0", util  # oldest left at 0%, now at 50%
    mem = re.search(r'<polyline points="([^"]+)"', svg).group(1).split()
    assert mem[-1] == "160.0,1.0", mem  # memory full at the top
    assert charts.sparkline([], 1) == ""


def test_gpu_hours_per_day_as_bars_used_inside_held():
    svg = charts.day_bars([("2026-11-30", 4.0, 1.0), ("2026-12-01", 8.0, 8.0)], height=120)
    ET.fromstring(svg)
    heights = [float(h) for h in re.findall(r'height="([0-9.]+)"', svg)[1:]]
    assert heights == [52.0, 13.0, 104.0, 104.0]  # held, used; the busiest day fills the chart
    assert ">30<" in svg and ">1<" in svg and charts.day_bars([]) == ""
