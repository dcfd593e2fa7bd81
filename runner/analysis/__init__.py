"""The analysis half: what a run wrote, as tables, a report, plots and a history to compare runs with."""
