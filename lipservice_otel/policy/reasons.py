"""Every reason a record can be kept or dropped for: the values of `lipservice.reason`.

Public API (docs/sampling.md): dashboards group by these strings, so each is written once,
here. The decision order they come from is in policy/model.py; the analysis gives the learned
ones (budget, rare, override, error_like, llm, anomaly/*) to its rules.
"""

from __future__ import annotations

# The policy's own decision steps (policy/model.py).
REASON_SEVERITY = "severity"
REASON_PATTERN = "pattern"
REASON_SEVERITY_DEFAULT = "severity_default"
REASON_DEFAULT = "default"
REASON_EXEMPT_PREFIX = "exempt/"

# Anomalies: the receiver's own (burst, a pattern a learned policy has never seen) and the
# analysis' boosts, one per anomaly kind (analysis/anomaly.py).
ANOMALY_REASON_PREFIX = "anomaly/"
KIND_SPIKE = "spike"
KIND_NEW_PATTERN = "new_pattern"
KIND_ERROR_SURGE = "error_surge"
REASON_BURST = ANOMALY_REASON_PREFIX + "burst"
REASON_NEW_PATTERN = ANOMALY_REASON_PREFIX + KIND_NEW_PATTERN
BOOST_REASONS = {
    kind: ANOMALY_REASON_PREFIX + kind for kind in (KIND_SPIKE, KIND_NEW_PATTERN, KIND_ERROR_SURGE)
}

# A dropped record forwarded after an error of its trace (sampling/error_context.py).
REASON_ERROR_CONTEXT = "error_context"

# The learned rules (analysis/rules.py).
REASON_BUDGET = "budget"
REASON_RARE = "rare"
REASON_OVERRIDE = "override"
REASON_ERROR_LIKE = "error_like"
REASON_LLM = "llm"
