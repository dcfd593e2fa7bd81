"""The analysis half: what a run wrote, as tables, a report (report.md, report.html), plots and a history to compare
runs with, and the pages that show them (runner.view)."""
