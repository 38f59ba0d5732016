"""The savings report: what the sampling saves, as a table, JSON or one HTML page."""
