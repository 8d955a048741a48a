"""The HTML report (issue 5): one self-contained file, charts as inline SVG.

    >>> from flowkit.report import write_report
    >>> write_report("capture.pcap", "report.html")

``write_report(source, path, **flow_options)`` accepts capture path(s), a FlowTable,
a DataFrame of flows, or a batch-mode dataset directory; ``render_html(flows_df,
ledger=None, title=...)`` returns the page as a string. Sections: docs/report.md.
"""
from flowkit.report.page import SECTIONS, render_html, write_report

render = render_html  # short alias for callers that think of it as "render"

__all__ = ["SECTIONS", "render", "render_html", "write_report"]
