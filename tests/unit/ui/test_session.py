"""Sessions expire, are bounded, and carry their own CSRF token."""

from __future__ import annotations

from lipservice_otel.ui.session import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_expires_after_its_ttl():
    clock = Clock()
    sessions = Sessions(ttl_s=60, max_sessions=10, clock=clock)
    session = sessions.open(admin=True)
    clock.now += 59.9
    assert sessions.get(session.id) == session
    clock.now += 0.1
    assert sessions.get(session.id) is None
    assert len(sessions) == 0


def test_sessions_are_bounded_oldest_first():
    sessions = Sessions(ttl_s=60, max_sessions=3, clock=Clock())
    opened = [sessions.open(admin=False) for _ in range(5)]
    assert len(sessions) == 3
    assert [sessions.get(s.id) is not None for s in opened] == [False, False, True, True, True]


def test_expired_sessions_are_dropped_when_new_ones_open():
    clock = Clock()
    sessions = Sessions(ttl_s=10, max_sessions=100, clock=clock)
    for _ in range(50):
        sessions.open(admin=False)
    clock.now += 11
    sessions.open(admin=False)
    assert len(sessions) == 1


def test_ids_and_csrf_tokens_are_random_and_distinct():
    sessions = Sessions(ttl_s=10, max_sessions=100, clock=Clock())
    a, b = sessions.open(admin=False), sessions.open(admin=False)
    assert len({a.id, a.csrf, b.id, b.csrf}) == 4
    assert len(a.id) >= 40 and len(a.csrf) >= 40


def test_the_csrf_token_must_match_exactly():
    session = Sessions(ttl_s=10, max_sessions=1, clock=Clock()).open(admin=True)
    assert session.csrf_matches(session.csrf)
    assert not session.csrf_matches(None)
    assert not session.csrf_matches("")
    assert not session.csrf_matches(session.csrf[:-1])


def test_unknown_or_closed_sessions_are_none():
    sessions = Sessions(ttl_s=10, max_sessions=5, clock=Clock())
    session = sessions.open(admin=False)
    assert sessions.get(None) is None
    assert sessions.get("made-up") is None
    sessions.close(session.id)
    assert sessions.get(session.id) is None
