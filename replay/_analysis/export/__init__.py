"""Exports of a finished run, part of layer 4 (analysis): what leaves agent-replay.

Holds ``calls`` (one model call's facts as plain data: usage, cost, answer,
finish reasons), ``textconv`` (the stable text form ``git diff`` compares),
``jsonl`` (one JSON object per event or span, for scripts), ``otlp`` (OpenTelemetry
GenAI spans through the SDK and its OTLP/HTTP exporter, an optional extra) and
``report`` (the one-file HTML report).

May import: ``replay._cassette`` and the rest of ``replay._analysis``. Every value
that leaves through here was redacted first (``replay._cassette.redacted.shown``).
"""
