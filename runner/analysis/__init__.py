"""The analysis half: what is read back from a run's files and shown (report.html, runner.view)."""
