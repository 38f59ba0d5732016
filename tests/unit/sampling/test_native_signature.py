"""The compiled signature gives text/signature.py's template for every body.

The extension masks tokens through its own memos filled by signature.py's `_mask_token` and
hands whole bodies to signature.py where it has no path (non-ASCII, quotes, JSON), so any
difference here is a bug in the compiled splitting, memo keying, prefix or join.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lipservice_otel.text.signature import template_of_text
from tests.support.log_families import log_bodies, log_families
from tests.support.native import native_module


@settings(max_examples=400, deadline=None)
@given(family=log_families())
def test_log_families_sign_alike(family):
    native = native_module()
    for body in family:
        assert native.template_of_text(body, 2048) == template_of_text(body, 2048), body


@settings(max_examples=600, deadline=None)
@given(body=log_bodies, max_chars=st.sampled_from([16, 40, 2048]))
def test_any_text_signs_alike(body, max_chars):
    native = native_module()
    assert native.template_of_text(body, max_chars) == template_of_text(body, max_chars)


def test_memo_hits_give_what_a_miss_gave():
    native = native_module()
    bodies = [f"worker {n} took {n}.5 ms on host-{n}.example.com" for n in range(3000)]
    first = [native.template_of_text(b, 2048) for b in bodies]
    again = [native.template_of_text(b, 2048) for b in reversed(bodies)]
    assert first == list(reversed(again)) == [template_of_text(b, 2048) for b in bodies]


def test_the_common_body_stays_native():
    native = native_module()
    native.template_of_text("warm 12 up", 2048)
    bodies_before, _ = native.signature_calls()
    for n in range(1000):
        native.template_of_text(f"request {n} served in {n % 50} ms", 2048)
    bodies_after, _ = native.signature_calls()
    assert bodies_after == bodies_before
