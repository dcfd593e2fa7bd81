"""The calls half of a run: each job's cells through the engine, under limits, retries, cache and budget."""
