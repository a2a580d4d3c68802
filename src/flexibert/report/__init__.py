"""Reports of a design-space search: figures, tables and one self-contained interactive HTML page.

Built from a plain in-memory :class:`ReportData`, so a report never depends on how
a run stored its results; a confirmed :class:`Answer` makes the report lead with it.
"""

from flexibert.report.analysis import pareto_front
from flexibert.report.data import Answer, ReportData
from flexibert.report.writer import ReportFiles, write_report

__all__ = ["Answer", "ReportData", "ReportFiles", "pareto_front", "write_report"]
