"""A background task that failed does not cut the stop short; policy file edits under the
embedded analysis do not pile up tasks.

Tried before the fix: a report sink that raised once killed the interval-report task, and
Service.stop() then re-raised that exception from its task cancellation, so the final report,
the queue drain and the analyzer stop never ran; and every edit of the policy file appended one
more (finished) task to the service's task list, for the life of the process.
"""

from __future__ import annotations

import time

from tests.support.log_requests import request_with_bodies
from tests.support.otlp_http import post
from tests.support.running_service import make_settings


class FailsOnce:
    """A report sink whose first call fails, as a broken analysis ingest would."""

    def __init__(self) -> None:
        self.reports = []

    def __call__(self, report) -> None:
        self.reports.append(report)
        if len(self.reports) == 1:
            raise RuntimeError("first report refused")


def test_stop_reports_drains_and_stops_the_analysis_after_a_task_failed(sink, start_service):
    reports = FailsOnce()
    settings = make_settings(sink.endpoint, **{"sampler.report_interval_s": 0.05})
    running = start_service(settings, report_sink=reports)
    deadline = time.monotonic() + 10
    while not reports.reports and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reports.reports, "the report task ran"
    assert (
        post(running.http_url, request_with_bodies("after", "the failure").SerializeToString())[0]
        == 200
    )
    analyzer = running.service.analyzer
    assert running.stop() == 0
    final = reports.reports[-1]
    assert len(reports.reports) == 2, "the failed task's report, then the final one"
    assert sum(counts.received for counts in final.counts) == 2
    assert len(sink.records()) == 2
    assert all(task.done() for task in analyzer._tasks) and not analyzer._tasks


def test_policy_file_edits_do_not_accumulate_tasks(sink, start_service, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("default_rate: 1.0\n")
    settings = make_settings(
        sink.endpoint, **{"policy.file": str(path), "policy.reload_interval_s": 0.02}
    )
    running = start_service(settings)
    service = running.service
    before = len(service._tasks), len(service.analyzer._tasks)
    for n in range(1, 4):
        rate = n / 10
        path.write_text(f"default_rate: {rate}\n{'#' * n}\n")
        deadline = time.monotonic() + 10
        while service.sampler.policy.default_rate != rate and time.monotonic() < deadline:
            time.sleep(0.02)
        assert service.sampler.policy.default_rate == rate
    assert (len(service._tasks), len(service.analyzer._tasks)) == before
