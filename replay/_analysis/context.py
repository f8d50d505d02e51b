"""What the model read: each model call's context against the previous call of its conversation.

A model call's *context* is what it sent: the system prompt (as a ``system``
message) and the conversation's messages, as :class:`~replay._analysis.usage.ModelCall`
reads them for every API (tool calls as ``-> name(args)``, results as text). An
OpenAI Responses call that names a ``previous_response_id`` (the server keeps
the conversation) read that call's context and answer before what it sent.

Calls are grouped into *conversations*: a call that carries back a tool result
continues the call whose answer asked for that tool (by call id); else, by
message-prefix overlap, it continues the earlier call with which it shares the
longest run of leading
messages, the system prompt left aside (a handoff to another agent changes
it; two agents with the same instructions but different questions are two
conversations); ties go to the same system prompt, then to the most recent.
The first call of a conversation has no previous call and its whole context
counts as added.

The diff aligns the two contexts message by message (longest common
subsequence of equal ``(role, text)`` messages, :mod:`replay._analysis.align`);
in each gap, messages of the same role pair up in order as *truncated* (the
new text is a shortened part of the old one) or *changed* (with a unified
diff); the rest are *added* or *removed*. Sizes are in characters; tokens are
the prompt tokens the provider reported (``usage``), when it did.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from replay._analysis.align import lcs
from replay._analysis.payloads import text_diff
from replay._analysis.source import Source, events_of
from replay._analysis.usage import ModelCall, Prices, model_call
from replay._cassette.events import Event

Message = tuple[str, str]
"""``(role, text)``."""
WINDOW = 64
"""Earlier calls searched for a partial prefix overlap (a truncated or edited history)."""


class MessageStatus(enum.Enum):
    """How a message of a call's context relates to the previous call's."""

    ADDED = "added"
    """New in this call."""
    CHANGED = "changed"
    """At the same place, with another text."""
    REMOVED = "removed"
    """Sent before, left out now."""
    TRUNCATED = "truncated"
    """Sent again, shortened (its new text is a part of the old one)."""


@dataclass(frozen=True, slots=True)
class MessageChange:
    """One message added, changed, removed or truncated between two calls."""

    status: MessageStatus
    """What happened to it."""
    role: str
    """``system``, ``user``, ``assistant``, ``tool``..."""
    index: int | None
    """Its position in this call's context (None when removed)."""
    previous_index: int | None
    """Its position in the previous call's context (None when added)."""
    text: str
    """Its text now ("" when removed)."""
    previous_text: str = ""
    """Its text in the previous call ("" when added)."""
    diff: str = ""
    """Unified diff of the two texts (changed and truncated messages)."""

    @property
    def chars(self) -> int:
        """Characters gained (negative: lost)."""
        return len(self.text) - len(self.previous_text)


@dataclass(frozen=True, slots=True)
class ContextDiff:
    """A model call's context against the previous call of the same conversation."""

    seq: int
    """The model call's event number."""
    previous_seq: int | None
    """The previous call of its conversation; None for a conversation's first call."""
    conversation: int
    """Conversation number, from 1, in the order conversations started."""
    changes: tuple[MessageChange, ...]
    """Every message added, changed, removed or truncated, in context order."""
    kept: int
    """Messages sent again unchanged."""
    messages: int
    """Messages in this call's context (the system prompt counts as one)."""
    chars: int
    """Characters of this call's context (message texts)."""
    previous_chars: int
    """Characters of the previous call's context (0 for a first call)."""
    input_tokens: int | None = None
    """Prompt tokens of this call, as its usage reports (None when it reports none)."""
    previous_input_tokens: int | None = None
    """Prompt tokens of the previous call."""

    def _of(self, status: MessageStatus) -> tuple[MessageChange, ...]:
        return tuple(c for c in self.changes if c.status is status)

    @property
    def added(self) -> tuple[MessageChange, ...]:
        """Messages new in this call."""
        return self._of(MessageStatus.ADDED)

    @property
    def changed(self) -> tuple[MessageChange, ...]:
        """Messages whose text changed."""
        return self._of(MessageStatus.CHANGED)

    @property
    def removed(self) -> tuple[MessageChange, ...]:
        """Messages no longer sent."""
        return self._of(MessageStatus.REMOVED)

    @property
    def truncated(self) -> tuple[MessageChange, ...]:
        """Messages sent shortened."""
        return self._of(MessageStatus.TRUNCATED)

    @property
    def chars_delta(self) -> int:
        """Characters gained since the previous call."""
        return self.chars - self.previous_chars

    @property
    def tokens_delta(self) -> int | None:
        """Prompt tokens gained since the previous call, when both calls report usage
        (for a first call: its prompt tokens)."""
        if self.input_tokens is None:
            return None
        if self.previous_seq is None:
            return self.input_tokens
        if self.previous_input_tokens is None:
            return None
        return self.input_tokens - self.previous_input_tokens


def context_of(call: ModelCall) -> list[Message]:
    """A call's context: the system prompt (when any) then its messages."""
    out: list[Message] = [("system", call.system)] if call.system else []
    return out + list(call.messages)


def contexts(calls: Iterable[tuple[Event, ModelCall]]) -> dict[int, list[Message]]:
    """Every call's context as the model read it, by event number: what it sent; for a
    Responses call that names a ``previous_response_id`` (the server keeps the rest),
    the earlier call's context and answer, then what it sent."""
    out: dict[int, list[Message]] = {}
    by_id: dict[str, int] = {}
    answers: dict[int, str] = {}
    for ev, call in sorted(calls, key=lambda p: p[0].seq):
        own = context_of(call)
        prev = call.params.get("previous_response_id")
        if isinstance(prev, str) and prev in by_id:
            seq = by_id[prev]
            _, earlier = _split(out[seq])
            said = [("assistant", answers[seq])] if answers[seq] else []
            system, mine = _split(own)
            own = ([("system", system)] if system is not None else []) + earlier + said + mine
        out[ev.seq] = own
        answers[ev.seq] = call.output
        if call.response_id is not None:
            by_id[call.response_id] = ev.seq
    return out


def _prefix(a: Sequence[Message], b: Sequence[Message]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _keys(msgs: list[Message]) -> list[int]:
    """A hash of each prefix of ``msgs`` (``[i]``: of the first ``i + 1`` messages)."""
    out: list[int] = []
    h = 0
    for m in msgs:
        h = hash((h, m))
        out.append(h)
    return out


def _split(ctx: list[Message]) -> tuple[str | None, list[Message]]:
    if ctx and ctx[0][0] == "system":
        return ctx[0][1], ctx[1:]
    return None, ctx


def conversations(calls: Iterable[tuple[Event, ModelCall]]) -> dict[int, tuple[int, int | None]]:
    """Each model call's ``(conversation, previous call's seq)``, by event number.

    A call that carries back the result of a tool call an earlier answer asked
    for (by call id) continues the latest such call. Else it continues the
    earlier call whose messages (the system prompt aside: a handoff to another
    agent changes it) share the longest prefix with its own, when that prefix
    holds at least one message; ties go to the same system prompt, then to the
    most recent call. A call whose messages extend an earlier call's whole
    messages is found at once; other overlaps are looked for among the last
    :data:`WINDOW` calls.
    """
    seen: list[tuple[int, str | None, list[Message]]] = []
    whole: dict[int, list[tuple[int, str | None, list[Message]]]] = {}  # by _keys()[-1]
    asked: dict[str, int] = {}  # tool call id -> seq of the call whose answer asked it
    conv: dict[int, int] = {}
    out: dict[int, tuple[int, int | None]] = {}
    ordered = sorted(calls, key=lambda p: p[0].seq)
    read = contexts(ordered)
    answered: dict[str, int] = {}  # response id -> seq
    for ev, call in ordered:
        system, msgs = _split(read[ev.seq])
        best: tuple[int, bool, int] | None = None  # (prefix length, same system, seq)
        linked = [asked[r.id] for r in call.tool_results if r.id is not None and r.id in asked]
        prev_id = call.params.get("previous_response_id")
        if isinstance(prev_id, str) and prev_id in answered:
            linked.append(answered[prev_id])
        if linked:  # it carries results of tool calls an earlier answer asked for
            best = (0, True, max(linked))
        keys = _keys(msgs)
        if best is None:  # an earlier call's whole messages are a prefix of these: it grew
            for n in range(len(msgs), 0, -1):
                for seq, prev_system, prev in whole.get(keys[n - 1], ()):
                    if len(prev) == n and _prefix(prev, msgs) == n:
                        score = (n, prev_system == system, seq)
                        if best is None or score > best:
                            best = score
                if best is not None:
                    break
        for seq, prev_system, prev in seen[-WINDOW:] if best is None else ():
            n = _prefix(prev, msgs)
            score = (n, prev_system == system, seq)
            if n and (best is None or score > best):
                best = score
        if keys:
            whole.setdefault(keys[-1], []).append((ev.seq, system, msgs))
        asked.update((t.id, ev.seq) for t in call.tool_calls if t.id is not None)
        if call.response_id is not None:
            answered[call.response_id] = ev.seq
        if best is None:
            conv[ev.seq] = len(set(conv.values())) + 1
            out[ev.seq] = (conv[ev.seq], None)
        else:
            conv[ev.seq] = conv[best[2]]
            out[ev.seq] = (conv[ev.seq], best[2])
        seen.append((ev.seq, system, msgs))
    return out


def _shortened(old: str, new: str) -> bool:
    return 0 < len(new) < len(old) and (old.startswith(new.rstrip(".… \n")) or new in old
                                        or old.endswith(new.lstrip(".… \n")))


def diff_contexts(seq: int, call: ModelCall, previous_seq: int | None,
                  previous: ModelCall | None, conversation: int,
                  read: dict[int, list[Message]] | None = None) -> ContextDiff:
    """The context diff of ``call`` (event ``seq``) against ``previous`` (None: a first call);
    ``read``: the contexts :func:`contexts` gives, by seq (else what each call sent)."""
    new = read[seq] if read is not None else context_of(call)
    old = ((read[previous_seq] if read is not None and previous_seq is not None
            else context_of(previous)) if previous is not None else [])
    pairs = lcs(old, new)
    changes: list[tuple[float, MessageChange]] = []
    pi = pj = 0
    for i, j in [*pairs, (len(old), len(new))]:
        changes += _gap(old, new, pi, i, pj, j, seq, previous_seq)
        pi, pj = i + 1, j + 1
    changes.sort(key=lambda c: c[0])
    return ContextDiff(
        seq=seq, previous_seq=previous_seq, conversation=conversation,
        changes=tuple(c for _, c in changes), kept=len(pairs), messages=len(new),
        chars=sum(len(t) for _, t in new), previous_chars=sum(len(t) for _, t in old),
        input_tokens=call.usage.input_tokens if call.usage is not None else None,
        previous_input_tokens=(previous.usage.input_tokens if previous is not None
                               and previous.usage is not None else None))


def _gap(old: Sequence[Message], new: Sequence[Message], alo: int, ahi: int, blo: int, bhi: int,
         seq: int, previous_seq: int | None) -> list[tuple[float, MessageChange]]:
    """Changes in one gap, each with a sort key (its place in the new context; a removed
    message just after where the old message before it went)."""
    out: list[tuple[float, MessageChange]] = []
    rest_new = list(range(blo, bhi))
    last = blo - 1.0  # where the previous old message went in the new context
    for i in range(alo, ahi):
        role, text = old[i]
        j = next((j for j in rest_new if new[j][0] == role), None)
        if j is None:
            last += 1 / (2 * (ahi - alo + 1))
            out.append((last, MessageChange(MessageStatus.REMOVED, role, None, i, "", text)))
            continue
        last = j
        rest_new.remove(j)
        now = new[j][1]
        status = MessageStatus.TRUNCATED if _shortened(text, now) else MessageStatus.CHANGED
        where = f"#{previous_seq} [{i}] {role}"
        out.append((j, MessageChange(status, role, j, i, now, text,
                                     text_diff(text + "\n", now + "\n", where,
                                               f"#{seq} [{j}] {role}"))))
    for j in rest_new:
        out.append((j, MessageChange(MessageStatus.ADDED, new[j][0], j, None, new[j][1])))
    return out


def context_diffs(calls: Iterable[tuple[Event, ModelCall]]) -> dict[int, ContextDiff]:
    """The context diff of every model call, by event number."""
    ordered = sorted(calls, key=lambda p: p[0].seq)
    by_seq = {ev.seq: call for ev, call in ordered}
    convs = conversations(ordered)
    read = contexts(ordered)
    out: dict[int, ContextDiff] = {}
    for ev, call in ordered:
        conv, prev = convs[ev.seq]
        out[ev.seq] = diff_contexts(ev.seq, call, prev, by_seq.get(prev) if prev is not None
                                    else None, conv, read)
    return out


def context_diff(source: Source, seq: int, *, prices: Prices | None = None
                 ) -> ContextDiff | None:
    """What model call ``seq`` read, against the previous call of its conversation;
    None when event ``seq`` is not a model call.

    ``source`` is a cassette path, a :class:`~replay.Cassette` or a list of events.
    """
    events = events_of(source, "context_diff")
    calls = [(ev, call) for ev in events if ev.channel.startswith("http")
             and (call := model_call(ev, prices)) is not None]
    if not any(ev.seq == seq for ev, _ in calls):
        return None
    return context_diffs(calls)[seq]


def run_context_diffs(source: Source, *, prices: Prices | None = None) -> dict[int, ContextDiff]:
    """The context diff of every model call of a run, by event number, in one pass
    (:func:`context_diff` reads the whole run for one call; a viewer stepping through
    every call wants them all).

    ``source`` is a cassette path, a :class:`~replay.Cassette` or a list of events.
    """
    events = events_of(source, "run_context_diffs")
    return context_diffs([(ev, call) for ev in events if ev.channel.startswith("http")
                          and (call := model_call(ev, prices)) is not None])
