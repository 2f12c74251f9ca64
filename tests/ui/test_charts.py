"""Server-side SVG charts: stacking, scale, the limit and its % axis, empty bars, escaping."""

from __future__ import annotations

import re

from deployteq_salesforce.ui import charts


def bar_heights(svg: str) -> list[float]:
    return [float(h) for h in re.findall(r'<rect [^>]*height="([\d.]+)" fill="[^"]+" class="bar"', svg)]


def test_chart_stacks_series_and_escapes_text():
    figure = charts.stacked_bar_chart(["a", "b"], [charts.Series("x<y", [1, 2]), charts.Series("z", [3, 0])], title="T & U")
    assert figure.startswith('<figure class="chart-figure">') and figure.endswith("</figure>")
    assert figure.count('class="bar"') == 3  # the zero value draws nothing
    assert "x&lt;y" in figure and "T &amp; U" in figure and "x<y" not in figure
    assert '<ul class="legend"><li>' in figure  # an HTML legend: it wraps instead of being cut off


def test_a_limit_far_above_the_data_does_not_flatten_the_bars():
    figure = charts.stacked_bar_chart(["a", "b"], [charts.Series("s", [47, 20])], title="t", limit=3600, limit_label="hourly budget")
    assert 'class="limit"' not in figure  # off the scale: not drawn...
    assert "hourly budget 3,600 is above the scale; the busiest bar is 47 (1.3 % of it)" in figure  # ...but said
    assert max(bar_heights(figure)) > 100  # the busiest bar uses most of the 186 px plot
    assert ">50 %<" not in figure and ">1.4 %<" in figure  # the right axis: % of the budget at each grid line


def test_a_limit_near_the_data_is_drawn_on_the_scale():
    figure = charts.stacked_bar_chart(["a"], [charts.Series("s", [90])], title="t", limit=100, limit_label="budget")
    assert 'class="limit"' in figure and "budget 100" in figure and "above the scale" not in figure


def test_empty_bars_can_be_marked():
    figure = charts.stacked_bar_chart(["a", "b"], [charts.Series("s", [0, 5])], title="t", mark_zero=True, tooltips=["run a: no records", "run b"])
    assert 'class="bar zero"><title>run a: no records</title>' in figure


def test_chart_without_data_says_so():
    assert "no data yet" in charts.stacked_bar_chart(["a"], [], title="t")
