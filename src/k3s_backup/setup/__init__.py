"""Setup's parts: its options and the configuration they make (values), the lines the backup
host needs for this node's key (host_lines), the schedule's files as a plan (schedule), and the
six steps (steps; remote for the backup host's, first_backup for the recovery key and the
first backup). `commands/setup.py` is the command's door to them."""
