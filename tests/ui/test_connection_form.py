"""The account form's logic: secrets write-only, other settings kept, the sandbox switch, the stock extra prefix."""

from __future__ import annotations

from deployteq_salesforce.ui.connection_form import CurrentConnection, apply_form, form_values

STORED = CurrentConnection(
    conn_type="salesforce", login="me@example.com", has_password=True,
    extras={"extra__salesforce__security_token": "tok", "domain": "test", "hourly_budget": 900},
)


def test_form_values_show_no_secret():
    values = form_values(STORED)
    assert values == {"login": "me@example.com", "environment": "sandbox", "custom_domain": "", "has_password": True,
                      "has_token": True, "password_is_session": False}


def test_empty_secrets_keep_the_stored_ones_and_other_extras_stay():
    change = apply_form(STORED, {"login": "me@example.com", "password": "", "security_token": "", "environment": "production"})
    assert not change.problems and change.password is None
    assert change.extras == {"extra__salesforce__security_token": "tok", "hourly_budget": 900}  # domain gone: production
    assert change.conn_type == "salesforce"


def test_a_new_token_goes_where_the_connection_keeps_it_and_can_be_removed():
    change = apply_form(STORED, {"login": "me@example.com", "security_token": "new", "environment": "sandbox"})
    assert change.extras["extra__salesforce__security_token"] == "new" and "security_token" not in change.extras
    cleared = apply_form(STORED, {"login": "me@example.com", "clear_token": "yes", "environment": "sandbox"})
    assert "extra__salesforce__security_token" not in cleared.extras and cleared.extras["domain"] == "test"


def test_a_custom_my_domain_is_kept():
    stored = CurrentConnection(login="me@example.com", has_password=True, extras={"domain": "acme.my"})
    assert form_values(stored)["environment"] == "custom"
    assert apply_form(stored, {"login": "me@example.com", "environment": "custom"}).extras == {"domain": "acme.my"}


def test_what_is_missing_is_named():
    change = apply_form(CurrentConnection(), {"login": " ", "environment": "moon"})
    assert [str(p) for p in change.problems] == [
        "User name: enter the Salesforce user name (it looks like an e-mail address)",
        "Password: enter the password of the Salesforce user",
        "Org: choose production or sandbox, not 'moon'",
    ]
    assert apply_form(CurrentConnection(), {"login": "a@b.c", "password": "x", "environment": "sandbox"}).conn_type == "deployteq_salesforce"
