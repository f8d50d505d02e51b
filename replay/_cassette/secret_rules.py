"""What a secret looks like: the rules that redaction and ``replay scan`` share.

Three kinds of rule find secrets in text (``str`` and ``bytes`` alike), each
finding a span and a label:

* **shapes**: known key formats (OpenAI ``sk-...``, Stripe ``sk_live_...``,
  JWTs, PEM private keys, ...; :data:`SHAPES`), each with the literal anchors
  every match contains;
* **names**: the value after a sensitive name, ``"password": "..."``,
  ``client_secret=...``, ``--api-key=...``, ``Authorization: Basic ...``;
  :func:`sensitive_name` decides, and it is also what makes a map key or a
  header name sensitive;
* **URL parameters**: values of the query parameters the caller names.

Speed: this runs on the recorder's per-event path. One Aho-Corasick automaton
of every anchor (``ahocorasick_rs``: compiled, SIMD-prefiltered, about ten
times faster over a 2 KB body than the same anchors as one ``re`` trie, which
tries a branch at every character that starts an anchor, a quarter of the
characters of English text) finds the candidate places in one pass; a rule's
own expression runs only where its anchor is. A text with no anchor and no
``=`` costs that one pass.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, AnyStr

import ahocorasick_rs

Span = tuple[int, int, str]
"""(start, end, label) of one secret in a text."""


@dataclass(frozen=True)
class Shape:
    """A known secret format."""

    label: str
    """What ``replay scan`` calls it (``openai-key``, ``jwt``...)."""
    pattern: str
    """The expression of a whole match."""
    anchors: tuple[str, ...]
    """Literals, one of which every match contains ``lead`` characters in. Chosen to
    start with a character rare in prose and JSON (``k-`` for ``sk-``): the anchor
    scan costs more for every common first character."""
    lead: int = 0
    """How many characters of a match come before its anchor."""
    secret: str | None = None
    """A named group: only that part is the secret (the rest is kept)."""
    wide: tuple[str, ...] = ()
    """Where an anchor is shorter than 3 characters: longer literals, one of which
    every match contains too, for the yes/no scan (:attr:`_Compiled.quick`); the
    SIMD prefilter makes far fewer false starts on prose with 3-byte literals."""
    also: str = ""
    """Another literal every match contains: a short anchor with no ``wide`` is left
    out of the yes/no scan and looked for where this one is found (:attr:`_Compiled.pairs`)."""


_B = r"(?<![A-Za-z0-9_\-])"  # not in the middle of a longer word

SHAPES: tuple[Shape, ...] = (
    Shape("anthropic-key", _B + r"sk-ant-[A-Za-z0-9_\-]{8,}", ("k-",), 1, wide=("sk-",)),
    Shape("openai-project-key", _B + r"sk-proj-[A-Za-z0-9_\-]{8,}", ("k-",), 1, wide=("sk-",)),
    Shape("openai-service-key", _B + r"sk-(?:svcacct|admin)-[A-Za-z0-9_\-]{8,}", ("k-",), 1,
          wide=("sk-",)),
    Shape("openai-key", _B + r"sk-[A-Za-z0-9_\-]{16,}", ("k-",), 1, wide=("sk-",)),
    Shape("stripe-secret-key", _B + r"sk_(?:live|test)_[A-Za-z0-9]{10,}", ("k_",), 1,
          wide=("sk_",)),
    Shape("stripe-restricted-key", _B + r"rk_(?:live|test)_[A-Za-z0-9]{10,}", ("k_",), 1,
          wide=("rk_",)),
    Shape("stripe-webhook-secret", r"whsec_[A-Za-z0-9+/=]{16,}", ("whsec_",)),
    Shape("bearer-token", r"(?i:bearer)[ \t]+[A-Za-z0-9_\-.=:/+~]{8,}",
          ("Bearer", "bearer", "BEARER")),
    Shape("aws-access-key", r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])",
          ("AKIA", "ASIA")),
    Shape("github-token", r"gh[pousr]_[A-Za-z0-9]{20,}", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    Shape("github-pat", r"github_pat_[A-Za-z0-9_]{20,}", ("github_pat_",)),
    Shape("gitlab-token", r"glpat-[A-Za-z0-9_\-]{20,}", ("glpat-",)),
    Shape("slack-token", r"xox[abeoprs]-[A-Za-z0-9\-]{10,}", ("xox",)),
    Shape("slack-webhook", r"hooks\.slack\.com/services/[A-Za-z0-9/_\-]{16,}", ("ks.slack",), 3),
    Shape("google-api-key", r"AIza[0-9A-Za-z_\-]{35}", ("AIza",)),
    Shape("google-oauth-token", r"ya29\.[0-9A-Za-z_\-]{20,}", ("ya29.",)),
    Shape("google-client-secret", r"GOCSPX-[0-9A-Za-z_\-]{20,}", ("GOCSPX-",)),
    Shape("jwt", _B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
          ("yJ",), 1, wide=("eyJ",)),
    Shape("huggingface-token", _B + r"hf_[A-Za-z0-9]{30,}", ("f_",), 1, wide=("hf_",)),
    Shape("npm-token", _B + r"npm_[A-Za-z0-9]{36}", ("pm_",), 1),
    Shape("pypi-token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}", ("ypi-A",), 1),
    Shape("sendgrid-key", r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}", ("SG.",)),
    Shape("groq-key", _B + r"gsk_[A-Za-z0-9]{20,}", ("k_",), 2, wide=("sk_",)),
    Shape("xai-key", _B + r"xai-[A-Za-z0-9]{20,}", ("xai-",)),
    Shape("perplexity-key", _B + r"pplx-[A-Za-z0-9]{20,}", ("x-",), 3, wide=("lx-",)),
    Shape("replicate-token", _B + r"r8_[A-Za-z0-9]{20,}", ("8_",), 1, wide=("r8_",)),
    Shape("langsmith-key", _B + r"lsv2_(?:pt|sk)_[A-Za-z0-9_]{20,}", ("v2_",), 2),
    Shape("tavily-key", _B + r"tvly-[A-Za-z0-9_\-]{16,}", ("vly-",), 1),
    Shape("private-key", r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[^\"']*?"
          r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?=[\"'])|\Z)", ("-----B",)),
    Shape("url-password", r"//[^\s/:@\"'<>]{0,256}:(?P<password>[^\s/@\"'<>]{1,256})@",
          ("//",), 0, "password", also="@"),
)
"""Known secret formats, the more specific of two that overlap first."""

AWS_SECRET_LABEL = "aws-secret-key"
_AWS_SECRET = r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
_AWS_NEAR = 160  # characters either side of an access key id searched for its secret

_STEMS = ("passw", "Passw", "PASSW", "passph", "Passph", "PASSPH", "cret", "CRET", "_key",
          "-key", "Key", "pikey", "_KEY", "-KEY", "PIKEY", "ken", "KEN", "uth", "UTH",
          "dential", "DENTIAL")
"""Literals one of which every sensitive name contains."""

_NAME_TAIL = (
    r"[A-Za-z0-9_.\-]*(?P<close>\\?[\"']?)"
    r"(?:(?P<pre>[ \t]*)(?P<sep>[:=])[ \t]*|(?P<ws>[ \t]+))"
    r"(?:\\\"(?P<edq>[^\"\\\n]{1,4096})\\\""
    r"|\"(?P<dq>(?:[^\"\\\n]|\\.){1,4096})\""
    r"|'(?P<sq>(?:[^'\\\n]|\\.){1,4096})'"
    r"|(?P<bare>\[REDACTED\](?:#\d+)?|(?:(?:Basic|Bearer|Token|Digest|Bot|ApiKey|Negotiate)"
    r"[ \t]+)?[^\s\"'&,;{}\[\])<>\\][^\s\"'&,;}\])<>\\]{0,4095}))")
"""What follows a name's anchor: the rest of the name, a separator, a value."""
_VALUE_GROUPS = ("edq", "dq", "sq", "bare")
_NAME_BACK = r"[A-Za-z0-9_.\-]{0,64}"  # matched on the reversed text before an anchor
_URL_PARAM = r"([?&;])([^=&;#\s\"']+)=([^&;#\s\"']*)"
_MASKED = r"\[REDACTED\](?:#\d+)?|\*+"

# -- names ---------------------------------------------------------------------------------

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_ANYWHERE = frozenset({"password", "passwd", "passphrase", "secret", "secrets", "apikey",
                       "apikeys", "privatekey", "accesstoken", "refreshtoken", "authtoken",
                       "clientsecret", "secretkey"})
_LAST = frozenset({"auth", "authorization", "credential", "credentials", "cookie", "cookies"})
_KEY_AFTER = frozenset({"api", "private", "secret", "access", "signing", "encryption", "master",
                        "account", "shared", "subscription", "license", "client", "app",
                        "service", "admin", "auth", "storage", "root", "ssh", "deploy",
                        "webhook", "session", "consumer", "ingestion"})
_TOKEN_NOT_AFTER = frozenset({"next", "page", "continuation", "cursor", "sync", "pagination",
                              "eos", "bos", "pad", "unk", "sep", "cls", "mask", "special",
                              "max", "min", "num", "stop", "start", "end", "prev", "previous",
                              "last", "first", "sentinel", "delimiter", "image", "audio"})


@functools.lru_cache(maxsize=8192)
def sensitive_name(name: str) -> bool:
    """True when a field, header, parameter or flag called ``name`` holds a secret.

    By words (``client_secret``, ``clientSecret`` and ``CLIENT-SECRET`` alike):
    any ``password``/``secret``..., a last word ``auth``/``authorization``/
    ``credentials``/``cookie``, ``token`` last (not after ``next``, ``page``,
    ``max``..., so ``max_tokens`` and ``next_page_token`` stay), ``key`` last
    after ``api``, ``private``, ``access``, ``signing``... (so ``sort_key``
    stays). ``usage``, ``prompt_tokens`` and ids are never sensitive.
    """
    words = [w.lower() for w in _WORD.findall(name)]
    if not words:
        return False
    if any(w in _ANYWHERE for w in words):
        return True
    last = words[-1]
    prev = words[-2] if len(words) > 1 else ""
    if last in _LAST:
        return True
    if last == "token":
        return prev not in _TOKEN_NOT_AFTER
    if last in ("key", "keys"):
        return prev in _KEY_AFTER
    return False


def is_masked(value: str | bytes) -> bool:
    """True for what redaction leaves: ``[REDACTED]`` or ``****``."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return _MASKED_RX.fullmatch(text) is not None


_MASKED_RX = re.compile(_MASKED)

# -- the finder ------------------------------------------------------------------------------


class _Compiled:
    """The rules compiled for one text type: ``conv`` is ``str`` or ``str.encode``."""

    def __init__(self, conv: Callable[[str], Any], shapes: tuple[Shape, ...],
                 extra: tuple[str, ...], names: bool, params: bool) -> None:
        def rx(pattern: str) -> re.Pattern[Any]:
            return re.compile(conv(pattern))

        self.by_anchor: dict[Any, list[tuple[Shape, re.Pattern[Any]]]] = {}
        for shape in shapes:
            compiled = rx(shape.pattern)
            for a in shape.anchors:
                self.by_anchor.setdefault(conv(a), []).append((shape, compiled))
        self.stems = frozenset(conv(s) for s in _STEMS) if names else frozenset()
        literals = sorted({a for s in shapes for a in s.anchors} | set(_STEMS if names else ()))
        self.literals: list[Any] = [conv(a) for a in literals]
        """The anchors, by their index in the automaton."""
        self.anchors: Any = None
        """Finds the anchors: leftmost-longest, not overlapping (as ``re`` would)."""
        kind = ahocorasick_rs.MATCHKIND_LEFTMOST_LONGEST
        if literals:
            self.anchors = (ahocorasick_rs.AhoCorasick(literals, matchkind=kind)
                            if conv is str else
                            ahocorasick_rs.BytesAhoCorasick(self.literals, matchkind=kind))
        quick = set(_STEMS if names else ())
        self.pairs: list[tuple[Any, Any]] = []
        """(``also``, anchor) of each shape the yes/no scan leaves to two finds."""
        for shape in shapes:
            if all(len(a) >= 3 for a in shape.anchors):
                quick.update(shape.anchors)
            elif shape.wide or not shape.also:
                quick.update(shape.wide or shape.anchors)
            else:
                self.pairs += [(conv(shape.also), conv(a)) for a in shape.anchors]
        self.quick: Any = None
        """Finds, if any is there, a literal that the text must hold for :meth:`Finder.find`
        to find anything but the ``pairs``: the anchors, or their longer ``wide`` ones."""
        if quick:
            self.quick = (ahocorasick_rs.AhoCorasick(sorted(quick), matchkind=kind)
                          if conv is str else ahocorasick_rs.BytesAhoCorasick(
                              [conv(a) for a in sorted(quick)], matchkind=kind))
        self.extra = rx("|".join(f"(?:{p})" for p in extra)) if extra else None
        self.extra_each = [rx(p) for p in extra]
        self.tail, self.back, self.aws = rx(_NAME_TAIL), rx(_NAME_BACK), rx(_AWS_SECRET)
        self.params = rx(_URL_PARAM) if params else None
        self.eq: Any = conv("=")
        self.qs: tuple[Any, ...] = (conv("?"), conv("&"), conv(";"))
        self.masked = rx(_MASKED)
        self.plural: tuple[Any, ...] = (conv("ken"), conv("KEN"))
        self.s_chars: tuple[Any, ...] = (conv("s"), conv("S"))
        self.blank: tuple[Any, ...] = (conv(" "), conv("\t"))
        self.newline: tuple[Any, ...] = (conv("\n"), conv("\r"))

    @staticmethod
    def text(x: str | bytes) -> str:
        return x.decode("latin-1") if isinstance(x, bytes) else x


class Finder:
    """Finds secrets in text with the shapes, extra patterns, names and parameters given."""

    def __init__(self, shapes: Iterable[Shape], extra: Iterable[str] = (), *,
                 names: Callable[[str], bool] | None = sensitive_name,
                 params: frozenset[str] = frozenset()) -> None:
        self.shapes = tuple(shapes)
        self.extra = tuple(extra)
        self.names = names
        self.params = params
        self._str: _Compiled = _Compiled(str, self.shapes, self.extra, names is not None,
                                              bool(params))
        self._bytes: _Compiled = _Compiled(str.encode, self.shapes, self.extra,
                                                  names is not None, bool(params))

    def find(self, s: str | bytes) -> list[Span]:
        """The secrets in ``s``, in order, none overlapping."""
        if isinstance(s, bytes):
            return self._find(s, self._bytes)
        return self._find(s, self._str)

    def _find(self, s: AnyStr, c: _Compiled) -> list[Span]:
        spans: list[Span] = []
        if c.anchors is not None:
            covered = -1
            literals = c.literals
            for k, pos, end in c.anchors.find_matches_as_indexes(s):
                if pos < covered:
                    continue
                lit = literals[k]
                if lit in c.stems:
                    if lit in c.plural and s[end:end + 1] in c.s_chars:
                        continue  # "prompt_tokens": counts, never a secret
                    found = self._name(s, c, pos)
                    if found is not None:
                        spans.append(found)
                    continue
                for shape, rx in c.by_anchor.get(lit, ()):
                    if pos < shape.lead:
                        continue
                    hit = rx.match(s, pos - shape.lead)
                    if hit is None:
                        continue
                    if shape.secret is not None:
                        a, b = hit.span(shape.secret)
                        if not c.masked.fullmatch(s, a, b):
                            spans.append((a, b, shape.label))
                    else:
                        spans.append((hit.start(), hit.end(), shape.label))
                        if shape.label == "aws-access-key":
                            spans.extend(self._aws_secret(s, c, hit.start(), hit.end()))
                    covered = hit.end()
                    break
        if c.extra is not None:
            for m in c.extra.finditer(s):
                if m.end() > m.start():
                    spans.append((m.start(), m.end(), self._extra_label(m.group(), c)))
        if c.params is not None and c.eq in s and any(q in s for q in c.qs):
            for m in c.params.finditer(s):
                name = c.text(m.group(2)).lower()
                if name in self.params and m.group(3) and not c.masked.fullmatch(m.group(3)):
                    spans.append((m.start(3), m.end(3), f"param:{name}"))
        if len(spans) > 1:
            spans = _disjoint(spans)
        return spans

    def _name(self, s: AnyStr, c: _Compiled, pos: int) -> Span | None:
        assert self.names is not None
        tail = c.tail.match(s, pos)
        if tail is None:
            return None
        before = s[max(0, pos - 64):pos][::-1]
        back = c.back.match(before)
        start = pos - (back.end() if back is not None else 0)
        raw = c.text(s[start:tail.start("close")])
        name = raw.rsplit(".", 1)[-1].strip("-")  # "body.password"; never "secrets.py"
        group = next(g for g in _VALUE_GROUPS if tail.group(g) is not None)
        if group == "bare" and not _bare_allowed(s, c, start, raw, tail):
            return None
        if group != "bare" and tail.group("ws") is not None and not _spaced_allowed(
                s, c, start, raw):
            return None
        if not name or not self.names(name):
            return None
        value = tail.group(group)
        if c.masked.fullmatch(value):
            return None
        return tail.start(group), tail.end(group), f"field:{name.lower()}"

    def _aws_secret(self, s: AnyStr, c: _Compiled, start: int, end: int) -> list[Span]:
        near = c.aws.search(s, end, min(len(s), end + _AWS_NEAR))
        if near is None:
            lo = max(0, start - _AWS_NEAR)
            near = c.aws.search(s, lo, start)
        return [(near.start(), near.end(), AWS_SECRET_LABEL)] if near is not None else []

    def _extra_label(self, found: AnyStr, c: _Compiled) -> str:
        for i, rx in enumerate(c.extra_each):
            if rx.fullmatch(found):
                return f"pattern-{i}"
        return "pattern"


def _bare_allowed(s: Any, c: _Compiled, start: int, raw: str, tail: re.Match[Any]) -> bool:
    """Whether an unquoted value after a name is one: ``client_secret=x`` (forms, env,
    flags), ``--password x``, ``password: x`` at the start of a line (YAML, headers).
    Not after a quoted name (a JSON ``null`` or number stays valid JSON), nor in code
    (``token = make()``, ``def f(token: str)``)."""
    if tail.group("close"):
        return False
    if tail.group("ws") is not None:
        return raw.startswith("-")  # "--password x"; not "token count"
    if tail.group("sep") in ("=", b"="):
        return not tail.group("pre")
    i = start
    while i > 0 and s[i - 1:i] in c.blank:
        i -= 1
    return i == 0 or s[i - 1:i] in c.newline


def _spaced_allowed(s: Any, c: _Compiled, start: int, raw: str) -> bool:
    """Whether a quoted value after a name and a space (no ``:`` or ``=``) is one:
    ``--token "x"`` or ``password "x"`` at the start of a line. Not in running text,
    where the quote is often the end of the string that holds the name: in the
    JSON ``{"content": "... a token "}, "usage": ...`` it would mask ``}, `` and
    break the body the program reads on replay."""
    if raw.startswith("-"):
        return True
    i = start
    while i > 0 and s[i - 1:i] in c.blank:
        i -= 1
    return i == 0 or s[i - 1:i] in c.newline


def _rank(label: str) -> int:
    return 3 if label.startswith("field:") else 2 if label.startswith("param:") else (
        1 if label.startswith("pattern") else 0)


def _disjoint(spans: list[Span]) -> list[Span]:
    """Overlapping spans merged; the merged span keeps the most specific label
    (a shape before a user pattern before a URL parameter before a field name)."""
    spans.sort()
    out: list[Span] = []
    for a, b, label in spans:
        if out and a < out[-1][1]:
            pa, pb, plabel = out[-1]
            out[-1] = (pa, max(pb, b), label if _rank(label) < _rank(plabel) else plabel)
        else:
            out.append((a, b, label))
    return out


SHAPE_BY_PATTERN = {s.pattern: s for s in SHAPES}
"""Each default shape by its expression (a Redactor's ``patterns`` are expressions)."""
