"""A run as OpenTelemetry spans, sent over OTLP/HTTP (``replay export otlp``).

The span tree (:mod:`replay._analysis.export.trace`) is replayed into the
OpenTelemetry SDK with the recorded start and end times, then handed to the SDK's
OTLP/HTTP exporter (or any ``SpanExporter`` you pass). Both come with the ``otel``
extra (``pip install 'agent-replay[otel]'``): the SDK does the protobuf encoding,
retries and headers, nothing here is hand-written wire format.

Trace and span ids are derived from the run (its header and events), so exporting
the same run twice gives the same ids: a backend sees one trace, not two.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from replay._analysis.export.jsonl import load_shown
from replay._analysis.export.trace import SpanNode, epoch_ns, run_name, span_tree
from replay._analysis.steps import Step
from replay._cassette.errors import ExportError
from replay._cassette.layout import Cassette

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

INSTALL = "pip install 'agent-replay[otel]'"
"""What to run when the OpenTelemetry SDK is missing."""

BATCH = 512
"""Spans per export request."""


def _sdk() -> Any:
    try:
        import opentelemetry.sdk.trace as sdk_trace
    except ImportError as exc:
        raise ExportError(f"OpenTelemetry export needs the otel extra: {INSTALL}") from exc
    return sdk_trace


def _ids(seed: bytes) -> Any:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class RunIds(IdGenerator):
        """Ids from a hash of the run: the same run gets the same ids."""

        def __init__(self) -> None:
            self.n = 0

        def _next(self, size: int) -> int:
            self.n += 1
            digest = hashlib.sha256(seed + self.n.to_bytes(8, "big")).digest()
            return int.from_bytes(digest[:size], "big") or 1

        def generate_span_id(self) -> int:
            return self._next(8)

        def generate_trace_id(self) -> int:
            return self._next(16)

    return RunIds()


def _seed(cassette: Cassette) -> bytes:
    h = cassette.header
    text = repr((h.created, h.argv, len(cassette.events),
                 [(e.seq, e.channel, e.start_ns) for e in cassette.events[:64]]))
    return hashlib.sha256(text.encode()).digest()


def to_spans(cassette: Cassette, *, content: bool = True, service_name: str | None = None,
             run_steps: Sequence[Step] | None = None) -> list[ReadableSpan]:
    """The run's spans, finished, in the order they ended (children before parents).

    Pass a redacted cassette (``shown(cassette)``). ``content=False`` leaves
    prompts, answers, tool arguments and results out.
    """
    sdk_trace = _sdk()
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, Status, StatusCode

    root = span_tree(cassette, content=content, run_steps=run_steps)
    base = epoch_ns(cassette)
    limits = sdk_trace.SpanLimits(max_span_attributes=256, max_events=100_000,
                                  max_event_attributes=64, max_attribute_length=None)
    resource = Resource.create({"service.name": service_name or run_name(cassette),
                                "replay.created": cassette.header.created})
    provider = sdk_trace.TracerProvider(resource=resource, id_generator=_ids(_seed(cassette)),
                                        span_limits=limits)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("agent-replay")

    def emit(node: SpanNode, parent: Any) -> None:
        span = tracer.start_span(node.name, context=parent,
                                 kind=SpanKind.CLIENT if node.client else SpanKind.INTERNAL,
                                 attributes=node.attributes, start_time=base + node.start_ns)
        for ev in node.events:
            span.add_event(ev.name, ev.attributes, timestamp=base + ev.at_ns)
        if node.error is not None:
            span.set_status(Status(StatusCode.ERROR, f"{node.error[0]}: {node.error[1]}"))
        inner = trace.set_span_in_context(span, parent)
        for child in node.children:
            emit(child, inner)
        span.end(end_time=base + max(node.end_ns, node.start_ns))

    emit(root, otel_context.Context())
    provider.shutdown()
    return list(memory.get_finished_spans())


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for ``endpoint`` (a base URL gets ``/v1/traces``)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def export_spans(spans: Sequence[ReadableSpan], endpoint: str | None = None, *,
                 headers: Mapping[str, str] | None = None, timeout: float = 10.0,
                 exporter: SpanExporter | None = None) -> int:
    """Send ``spans`` to an OTLP/HTTP ``endpoint`` (or through ``exporter``); how many.

    Without an endpoint, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` name it, as for any OpenTelemetry exporter.
    Raises :class:`~replay.ExportError` when the receiver refuses or cannot be reached.
    """
    _sdk()
    from opentelemetry.sdk.trace.export import SpanExportResult

    where = "the exporter"
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise ExportError(f"OTLP export needs the otel extra: {INSTALL}") from exc
        if endpoint is None:
            env = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            endpoint = env or (traces_url(base) if base else None)
            if endpoint is None:
                raise ExportError("no OTLP endpoint: pass --endpoint URL (endpoint=) or set "
                                  "OTEL_EXPORTER_OTLP_ENDPOINT")
        else:
            endpoint = traces_url(endpoint)
        where = endpoint
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}),
                                    timeout=timeout)
    sent = 0
    try:
        for at in range(0, len(spans), BATCH):
            batch = spans[at:at + BATCH]
            if exporter.export(batch) is not SpanExportResult.SUCCESS:
                raise ExportError(f"{where} did not accept the spans ({sent} of {len(spans)} "
                                  "sent); is an OTLP/HTTP receiver listening there?")
            sent += len(batch)
    finally:
        exporter.shutdown()
    return sent


def export_otlp(run: str | os.PathLike[str] | Cassette, endpoint: str | None = None, *,
                headers: Mapping[str, str] | None = None, timeout: float = 10.0,
                content: bool = True, service_name: str | None = None,
                exporter: SpanExporter | None = None) -> int:
    """Send a run (a cassette path or :class:`~replay.Cassette`) as OpenTelemetry
    GenAI spans to an OTLP/HTTP ``endpoint`` (or through ``exporter``); how many spans.

    Everything is redacted with the default rules first. ``content=False`` leaves
    prompts, answers, tool arguments and results out. Raises
    :class:`~replay.ExportError` without the ``otel`` extra, or when the receiver
    refuses or cannot be reached.
    """
    spans = to_spans(load_shown(run), content=content, service_name=service_name)
    return export_spans(spans, endpoint, headers=headers, timeout=timeout, exporter=exporter)
