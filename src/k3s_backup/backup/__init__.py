"""A backup run's work, for the commands that start one (`run`, and `setup` for its first
backup): take a snapshot, ship it to every target, rotate, report and record the run."""
