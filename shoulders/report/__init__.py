"""Metrics, figures and the self-contained ``report.html`` of a run."""

from shoulders.report.evaluation import write_evaluation
from shoulders.report.metrics import compute_metrics, expected_calibration_error, most_confused, top_losses
from shoulders.report.page import render_report
from shoulders.report.plots import plot_confusion_matrix, plot_history, plot_top_losses, read_history

__all__ = [
    "compute_metrics",
    "expected_calibration_error",
    "most_confused",
    "plot_confusion_matrix",
    "plot_history",
    "plot_top_losses",
    "read_history",
    "render_report",
    "top_losses",
    "write_evaluation",
]
