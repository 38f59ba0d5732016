"""Conversions between a `SavingsReport` and the control plane's `Savings` messages."""

from __future__ import annotations

from lipservice_otel._proto.lipservice.v1 import control_pb2
from lipservice_otel.report.savings import (
    Figures,
    PatternSavings,
    Price,
    SavingsReport,
    ServiceSavings,
    TenantSavings,
)


def savings_to_proto(report: SavingsReport) -> control_pb2.SavingsReport:
    return control_pb2.SavingsReport(
        mode=report.mode,
        basis=report.basis,
        policy_version=report.policy_version,
        price_per_gib=report.price.per_gib,
        currency=report.price.currency,
        services=[
            control_pb2.ServiceSavings(
                tenant=s.tenant,
                service=s.service,
                figures=_figures_to_proto(s.figures),
                record_share=s.record_share,
                byte_share=s.byte_share,
                patterns=[_pattern_to_proto(p) for p in s.patterns],
            )
            for s in report.services
        ],
        totals=_figures_to_proto(report.totals),
        tenants=[
            control_pb2.TenantSavings(
                tenant=t.tenant,
                figures=_figures_to_proto(t.figures),
                record_share=t.record_share,
                byte_share=t.byte_share,
            )
            for t in report.tenants
        ],
    )


def savings_from_proto(message: control_pb2.SavingsReport) -> SavingsReport:
    return SavingsReport(
        mode=message.mode,
        basis=message.basis,
        policy_version=message.policy_version,
        price=Price(message.price_per_gib, message.currency),
        services=tuple(
            ServiceSavings(
                tenant=s.tenant,
                service=s.service,
                figures=_figures_from_proto(s.figures),
                record_share=s.record_share,
                byte_share=s.byte_share,
                patterns=tuple(_pattern_from_proto(p) for p in s.patterns),
            )
            for s in message.services
        ),
        totals=_figures_from_proto(message.totals),
        tenants=tuple(
            TenantSavings(
                tenant=t.tenant,
                figures=_figures_from_proto(t.figures),
                record_share=t.record_share,
                byte_share=t.byte_share,
            )
            for t in message.tenants
        ),
    )


def _figures_to_proto(figures: Figures) -> control_pb2.SavingsFigures:
    return control_pb2.SavingsFigures(
        records_per_second=figures.records_per_second,
        bytes_per_second=figures.bytes_per_second,
        kept_records_per_second=figures.kept_records_per_second,
        kept_bytes_per_second=figures.kept_bytes_per_second,
    )


def _figures_from_proto(message: control_pb2.SavingsFigures) -> Figures:
    return Figures(
        message.records_per_second,
        message.bytes_per_second,
        message.kept_records_per_second,
        message.kept_bytes_per_second,
    )


def _pattern_to_proto(pattern: PatternSavings) -> control_pb2.PatternSavings:
    return control_pb2.PatternSavings(
        tenant=pattern.tenant,
        service=pattern.service,
        pattern_id=pattern.pattern_id,
        template=pattern.template,
        example=pattern.example,
        rate=pattern.rate,
        reason=pattern.reason,
        figures=_figures_to_proto(pattern.figures),
        record_share=pattern.record_share,
        byte_share=pattern.byte_share,
    )


def _pattern_from_proto(message: control_pb2.PatternSavings) -> PatternSavings:
    return PatternSavings(
        tenant=message.tenant,
        service=message.service,
        pattern_id=message.pattern_id,
        template=message.template,
        example=message.example,
        rate=message.rate,
        reason=message.reason,
        figures=_figures_from_proto(message.figures),
        record_share=message.record_share,
        byte_share=message.byte_share,
    )
