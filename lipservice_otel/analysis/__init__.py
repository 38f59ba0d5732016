"""The control path: merges patterns, finds anomalies and turns traffic into policy."""
