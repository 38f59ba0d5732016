"""otel-gen: an OTLP logs load generator, flag-compatible with the Collector's telemetrygen.

A record's way through it, by file name: `config.py` (flags, checked) -> `profiles.py` or
`replay.py` (what each record says) -> `records.py` (one ExportLogsServiceRequest per batch)
-> `pacing.py` (when to send it) -> `transport.py` (OTLP/gRPC or OTLP/HTTP) -> `report.py`
(what the receiver acknowledged, how fast, how long each request took). `runner.py` runs the
workers and `cli.py` is the `otel-gen` command.
"""
