"""The yes/no anchor scan of ``Redactor.clean`` (the recorder's per-event shortcut).

It looks for 3-byte literals (``Shape.wide``) where a shape's anchor is shorter,
and for ``//`` (url-password) only where an ``@`` is too: it must still say
"maybe a secret" wherever the full rules find one.
"""

from __future__ import annotations

import re

import msgpack
import pytest

from replay._cassette.redact import DEFAULT
from replay._cassette.secret_rules import _B, SHAPES
from tests._secret_samples import shape_samples


def test_every_short_anchor_has_a_longer_literal_or_a_partner() -> None:
    for shape in SHAPES:
        if all(len(a) >= 3 for a in shape.anchors):
            assert not shape.wide, shape.label
            continue
        assert shape.wide or shape.also, shape.label
        assert all(len(w) >= 3 for w in shape.wide), shape.label
        if shape.wide:
            # every match starts with this literal text (then the expression's syntax)
            head = re.match(r"[A-Za-z0-9_\-]*", shape.pattern.removeprefix(_B))
            assert head is not None
            text = head.group().replace("\\", "")
            assert any(w in text for w in shape.wide), (shape.label, text)
        else:
            assert shape.also in shape.pattern, shape.label


def test_the_scan_holds_only_literals_of_three_bytes_or_more() -> None:
    compiled = DEFAULT.finder._bytes
    scan = compiled.quick
    assert scan is not None
    assert [(a, b) for a, b in compiled.pairs] == [(b"@", b"//")]
    for lit in compiled.literals:  # each anchor, or a longer literal each match holds
        if len(lit) >= 3:
            assert scan.find_matches_as_indexes(lit), lit


@pytest.mark.parametrize("label", sorted(shape_samples()))
def test_the_scan_flags_every_sample_alone_and_in_prose(label: str) -> None:
    secret = shape_samples()[label]
    for text in (secret, f"see {secret} here", f'{{"k": "{secret}"}}'):
        assert DEFAULT.finder.find(text), (label, text)
        packed = msgpack.packb(text)
        assert not DEFAULT.clean(packed, text), (label, text)


@pytest.mark.parametrize("text", ["see https://example.com/x for it", "mail a@b.c",
                                  "the order shipped; tracking says so",
                                  "a pink-ish plan", "the back_up flag", "a ToyJar",
                                  "the half_way 8_ and x- marks"])
def test_clean_text_passes_including_a_lone_slash_pair_or_at(text: str) -> None:
    assert DEFAULT.value(text) == text
    assert DEFAULT.clean(msgpack.packb(text), text)


def test_a_slash_pair_beside_an_at_is_looked_at() -> None:
    text = "https://admin:pw12345@db.example/x"
    assert DEFAULT.value(text) != text
    assert not DEFAULT.clean(msgpack.packb(text), text)
    harmless = "see https://example.com/x, ask a@b.c"
    assert DEFAULT.value(harmless) == harmless
    assert not DEFAULT.clean(msgpack.packb(harmless), harmless)  # then value() decides
