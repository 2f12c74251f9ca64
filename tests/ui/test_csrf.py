"""The CSRF form token and the same-origin check."""

from __future__ import annotations

from deployteq_salesforce.ui import csrf


def test_csrf_token_and_origin_checks():
    token = csrf.form_token("secret", "op:op")
    assert csrf.token_matches("secret", "op:op", token)
    assert not csrf.token_matches("secret", "viewer:viewer", token)
    assert not csrf.token_matches("other", "op:op", token)
    assert csrf.cross_origin_reason({"origin": "http://a:8080", "sec-fetch-site": "same-origin"}, host="a:8080") is None
    assert "another site" in csrf.cross_origin_reason({"sec-fetch-site": "cross-site"}, host="a:8080")
    assert "another origin" in csrf.cross_origin_reason({"origin": "http://evil"}, host="a:8080")
