"""ApiKey: the origin the key may go to, and its redaction from error texts."""

from __future__ import annotations

import pytest

from loadtests.harness.credentials import ApiKey

KEY = "sk-0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "sent"),
    [
        ("https://API.example.com:443", True),  # same origin, default port spelled out
        ("https://api.example.com/v2", True),
        ("http://api.example.com", False),  # another scheme
        ("https://api.example.com:8443", False),  # another port
        ("https://evil.example.com", False),
        ("not a url", False),
    ],
)
def test_the_key_goes_only_to_its_origin(url: str, sent: bool) -> None:
    key = ApiKey.for_host(KEY, "https://api.example.com/v1")
    assert key.headers_for(url) == ({"Authorization": f"Bearer {KEY}"} if sent else {})
    assert key.withheld_from(url) is not sent


def test_a_key_given_without_a_host_goes_nowhere() -> None:
    key = ApiKey.for_host(KEY, None)
    assert key.headers_for("http://127.0.0.1:8000") == {}


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"bad key Bearer {KEY}!", "bad key Bearer REDACTED!"),
        (f"{KEY} and {KEY}", "REDACTED and REDACTED"),
        (f"cut at the bound: {KEY[:10]}", "cut at the bound: REDACTED"),  # a truncated echo
        ("sk-0123 is too short a tail to be the key", "sk-0123 is too short a tail to be the key"),
        ("nothing here", "nothing here"),
    ],
)
def test_redact(text: str, redacted: str) -> None:
    assert ApiKey.for_host(KEY, "https://h").redact(text) == redacted
    assert ApiKey.for_host("", "https://h").redact(text) == text
