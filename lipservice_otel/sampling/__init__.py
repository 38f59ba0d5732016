"""The per-record work: sign, decide, annotate, count; the error context kept beside it."""
