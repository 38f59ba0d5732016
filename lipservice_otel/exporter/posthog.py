"""PostHog preset: OTLP/HTTP to PostHog's logs ingestion, with its contract built in.

The contract: `POST /i/v1/logs` with the project token as `Authorization: Bearer phc_...`
(a `phx_` personal key is refused when settings load), gzip welcome, no request larger than
2 MiB before or after decompression, 429 with `Retry-After` when rate limited, and
`service.name` on every resource (the one resource attribute PostHog treats specially).
"""

from __future__ import annotations

from lipservice_otel.exporter.config import POSTHOG_MAX_REQUEST_BYTES, PosthogExporterConfig
from lipservice_otel.exporter.otlp_http import HttpTarget, OtlpHttpExporter


def posthog_exporter(config: PosthogExporterConfig) -> OtlpHttpExporter:
    target = HttpTarget(
        url=config.url,
        headers={"Authorization": f"Bearer {config.api_key}"},
        gzip=True,
        timeout_s=config.timeout_s,
        max_request_bytes=POSTHOG_MAX_REQUEST_BYTES,
        ensure_service_name=True,
    )
    return OtlpHttpExporter(target, name="posthog")
