"""Doctor's checks, one module per area (schedule and history, this node, the datastore, keys,
targets); `k3s-backup doctor` (commands/doctor.py) runs them in order and prints them."""
