"""One policy version cut to what one receiver uses: the rules of the patterns it reports.

A receiver decides a record by its signature: the alias to a merged pattern, that pattern's
rule, the signature's own rule within it. A slice keeps those for every pattern id the
receiver reported (a signature id or, once aliased, the merged id it reports under), and
everything that is not per pattern (mode, floors, defaults, exemptions) whole. A pattern
outside the slice is new to that receiver, as one the analysis never saw, until it reports
it (control.policy_slices).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from lipservice_otel.policy.model import PatternRule, Policy


class PolicySlicer:
    """Slices of one version; built once per version for every stream."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # Merged pattern -> its signatures: a receiver reports the merged id once aliased.
        self._members: dict[str, list[str]] = defaultdict(list)
        for signature, merged in policy.pattern_aliases.items():
            self._members[merged].append(signature)

    def covers(self, pattern_id: str) -> bool:
        policy = self.policy
        return (
            pattern_id in policy.pattern_rules
            or pattern_id in policy.pattern_aliases
            or pattern_id in policy.signature_rules
        )

    def slice(self, pattern_ids: Iterable[str]) -> Policy:
        """The version with the rules of `pattern_ids` only: for each, its pattern (the
        merged one when it is aliased), and every signature of that pattern, aliases and own
        rules, since the receiver may see any of them."""
        policy = self.policy
        rules: dict[str, PatternRule] = {}
        aliases: dict[str, str] = {}
        signature_rules: dict[str, PatternRule] = {}
        for pid in pattern_ids:
            pattern = policy.pattern_aliases.get(pid, pid)
            rule = policy.pattern_rules.get(pattern)
            if rule is not None:
                rules[pattern] = rule
            for signature in (pattern, *self._members.get(pattern, ())):
                if signature != pattern:
                    aliases[signature] = pattern
                own = policy.signature_rules.get(signature)
                if own is not None:
                    signature_rules[signature] = own
        return replace(
            policy, pattern_rules=rules, pattern_aliases=aliases, signature_rules=signature_rules
        )
