"""The redactor's shortcut (skip the regex when no anchor appears) never misses."""

from __future__ import annotations

import pytest

from replay import Redactor
from replay._cassette.redact import DEFAULT_PATTERNS, REDACTED

SAMPLES = {
    DEFAULT_PATTERNS[0]: "sk-ant-api03-" + "A1b2" * 6,
    DEFAULT_PATTERNS[1]: "sk-proj-" + "Zz9_" * 6,
    DEFAULT_PATTERNS[2]: "sk-" + "abcd1234" * 3,
    DEFAULT_PATTERNS[3]: "BeArEr eyJhbGciOiJIUzI1NiJ9.payload",
    DEFAULT_PATTERNS[4]: "AKIA" + "ABCDEFGHIJKLMNOP",
    DEFAULT_PATTERNS[5]: "ghs_" + "a" * 36,
    DEFAULT_PATTERNS[6]: "github_pat_" + "B" * 30,
    DEFAULT_PATTERNS[7]: "xoxb-" + "1234567890-abc",
    DEFAULT_PATTERNS[8]: "AIza" + "C" * 35,
}


def test_every_default_pattern_has_a_sample() -> None:
    assert set(SAMPLES) == set(DEFAULT_PATTERNS)


@pytest.mark.parametrize("secret", list(SAMPLES.values()))
def test_each_default_shape_is_masked_in_text_and_bytes(secret: str) -> None:
    red = Redactor()
    assert secret not in red.text(f"key: {secret} end")
    assert REDACTED in red.text(f"key: {secret} end")
    masked = red.data(f"x {secret} y".encode())
    assert secret.encode() not in masked and len(masked) == len(secret) + 4


def test_text_without_any_anchor_is_returned_unchanged() -> None:
    body = "The weather in Paris is mild; take a light jacket. " * 40
    assert Redactor().text(body) == body


def test_user_patterns_turn_the_shortcut_off() -> None:
    red = Redactor.with_patterns([r"corp-[0-9]{6}"])
    assert "corp-123456" not in red.text("token corp-123456 here")
