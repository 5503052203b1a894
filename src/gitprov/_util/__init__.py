"""Small private helpers with no dependencies: timestamps, pid locks, log files."""
