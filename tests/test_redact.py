"""The redactor's rules, one by one: every shape, the names that hold secrets and the
ones that only look like it, keys, argv, and the anchor shortcut that never misses."""

from __future__ import annotations

import pytest

from replay import Redactor
from replay._cassette.redact import DEFAULT, DEFAULT_PATTERNS, REDACTED
from replay._cassette.secret_rules import SHAPES, sensitive_name
from replay._cassette.structdiff import Change
from tests._secret_samples import Plants, benign, needle, shape_samples

SAMPLES = shape_samples()


def test_every_shape_has_a_sample() -> None:
    assert set(SAMPLES) == {s.label for s in SHAPES}
    assert len(DEFAULT_PATTERNS) == len(SHAPES) >= 30


@pytest.mark.parametrize("label", sorted(SAMPLES))
def test_each_shape_is_masked_in_text_and_bytes_and_named(label: str) -> None:
    secret = SAMPLES[label]
    text = DEFAULT.text(f"key: {secret} end")
    assert needle(label, secret) not in text and REDACTED in text
    masked = DEFAULT.data(f"x {secret} y".encode())
    assert needle(label, secret).encode() not in masked and len(masked) == len(secret) + 4
    assert label in {kind for _, _, kind in DEFAULT.find(secret)}
    assert DEFAULT.text(text) == text and DEFAULT.find(text) == []  # redacting twice: no-op


def test_an_aws_secret_key_beside_its_id_is_masked_either_side() -> None:
    plants = Plants()
    key_id = plants.shapes["aws-access-key"]
    for text in (f"{key_id} / {plants.aws_secret}", f"secret={plants.aws_secret}, id={key_id}",
                 f'{{"AccessKeyId": "{key_id}", "Secret": "{plants.aws_secret}"}}'):
        out = DEFAULT.text(text)
        assert plants.aws_secret not in out and key_id not in out, text


@pytest.mark.parametrize("text", [
    '{"password": "%s", "n": 1}', "grant_type=x&client_secret=%s", "client_secret=%s&x=1",
    "OPENAI_API_KEY=%s", "password: %s", "--password %s", "--api-key=%s",
    "Authorization: Basic %s", "X-Custom-Auth-Token: %s", "{'clientSecret': '%s'}",
    '"arguments": "{\\"password\\": \\"%s\\"}"', "https://u:" + "%s@host/x", "/v1?key=%s&page=2",
])
def test_values_after_sensitive_names_are_masked(text: str) -> None:
    value = "v4lue-" + "q" * 12
    assert value not in DEFAULT.text(text % value)
    assert value.encode() not in DEFAULT.data((text % value).encode())


@pytest.mark.parametrize("name", [
    "password", "db_password", "client_secret", "clientSecret", "SecretAccessKey",
    "aws_secret_access_key", "api_key", "apiKey", "APIKey", "x-api-key", "X-Goog-Api-Key",
    "access_token", "refresh_token", "GITHUB_TOKEN", "token", "Authorization",
    "proxy_authorization", "private_key", "credentials", "session_token", "x-auth-token"])
def test_sensitive_names(name: str) -> None:
    assert sensitive_name(name)


@pytest.mark.parametrize("name", [
    "max_tokens", "prompt_tokens", "completion_tokens", "total_tokens", "usage", "id",
    "tool_call_id", "call_id", "next_page_token", "eos_token", "token_type", "token_count",
    "sort_key", "idempotency_key", "partition_key", "author", "keyboard", "secretary"])
def test_names_that_only_look_sensitive(name: str) -> None:
    assert not sensitive_name(name)


def test_benign_fields_survive_and_secret_keys_do_not() -> None:
    plants = Plants()
    doc = plants.document()
    out = DEFAULT.value(doc)
    assert benign(out) == benign(doc)
    assert plants.dict_key not in out and REDACTED in out
    assert out["password"] == REDACTED and out["client_secret"] == REDACTED
    two = DEFAULT.value({plants.dict_key: 1, plants.argv_key: 2})
    assert sorted(two.values()) == [1, 2]  # two secret keys stay two entries
    assert DEFAULT.value(out) == out  # nothing left to do


def test_header_pairs_and_lists_that_only_look_like_them() -> None:
    pairs = [["X-Custom-Auth-Token", "v4lue"], ["Content-Type", "text/plain"]]
    assert DEFAULT.value(pairs) == [["X-Custom-Auth-Token", REDACTED], pairs[1]]
    assert DEFAULT.value(["secret", "sauce"]) == ["secret", "sauce"]


def test_argv_masks_shapes_and_the_value_after_a_secret_flag() -> None:
    plants = Plants()
    argv = ["agent.py", *plants.argv(), "--max-tokens", "64", "--token=" + plants.password]
    assert DEFAULT.argv(argv) == ("agent.py", "--api-key", REDACTED, "--password", REDACTED,
                                  "--max-tokens", "64", "--token=" + REDACTED)


def test_a_shown_change_masks_both_sides() -> None:
    plants = Plants()
    change = DEFAULT.change(Change("args.password", "changed", plants.password, "other-pw"))
    assert plants.password not in str(change) and "other-pw" not in str(change)
    change = DEFAULT.change(Change("args.note", "changed", "x", plants.shapes["jwt"]))
    assert plants.shapes["jwt"] not in str(change) and "'x'" in str(change)


def test_text_without_any_anchor_is_returned_unchanged() -> None:
    body = "The weather in Paris is mild; take a light jacket. " * 40
    assert Redactor().text(body) is body
    assert Redactor().data(body.encode()) == body.encode()


def test_user_patterns_turn_the_shortcut_off() -> None:
    red = Redactor.with_patterns([r"corp-[0-9]{6}"])
    assert "corp-123456" not in red.text("token corp-123456 here")
    assert {k for _, _, k in red.find("a corp-123456 b")} == {"pattern-0"}


def test_names_can_be_turned_off() -> None:
    red = Redactor(names=None)
    assert red.text('{"password": "hunter2-hunter2"}') == '{"password": "hunter2-hunter2"}'
    assert red.value({"Authorization": "x"}) == {"Authorization": REDACTED}  # the header set


@pytest.mark.parametrize("label", sorted(SAMPLES))
def test_anchor_scan_keeps_offsets_after_wide_characters(label: str) -> None:
    # the anchor automaton reports str offsets in characters, bytes offsets in bytes
    secret = SAMPLES[label]
    prefix = "日本語 ü € 🙂 tokens max_tokens "
    text = DEFAULT.text(f"{prefix}{secret} end")
    assert text.startswith(prefix) and text.endswith(" end")
    assert needle(label, secret) not in text and REDACTED in text
    raw = f"{prefix}{secret} end".encode()
    masked = DEFAULT.data(raw)
    assert len(masked) == len(raw) and masked.startswith(prefix.encode())
    assert needle(label, secret).encode() not in masked


@pytest.mark.parametrize("text", [
    '{"content": "ask for a new token ", "usage": {"total_tokens": 9}}',
    '{"content": "the password "}, {"role": "user", "content": "hi"}',
    "he said the secret 'is out' and left",
])
def test_a_quote_after_a_name_in_running_text_is_not_a_value(text: str) -> None:
    """The quote after ``token `` ends the JSON string holding the word: masking up to
    the next quote broke the response body the program parsed on replay."""
    assert DEFAULT.text(text) == text
    assert DEFAULT.data(text.encode()) == text.encode()


@pytest.mark.parametrize("text", ['--token "%s"', "password '%s'", 'x\n  api_key "%s"'])
def test_a_quoted_value_after_a_flag_or_at_a_line_start_is_still_masked(text: str) -> None:
    value = "v4lue-" + "q" * 12
    assert value not in DEFAULT.text(text % value)
    assert value.encode() not in DEFAULT.data((text % value).encode())
