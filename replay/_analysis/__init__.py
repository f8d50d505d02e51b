"""Layer 4, analysis: reading finished runs.

Holds the run diff (``diff``: alignment; ``rundiff``: its result and
renderings; ``payloads``: what is compared; ``align``: sequence alignment;
``compare``: the one comparison model, noise / input / behaviour),
drift detection (``drift``, ``fingerprint``, ``probe``), model-call reading
(``usage``: tokens and cost; ``wire``, ``gemini``: provider wire formats;
``toolcalls``: tool calls and results by id), agent steps (``steps``; ``context``:
what each model call read; ``stepview``: their text and JSON), run summaries
(``summary``), the secret scan (``scan``) and, in ``export/``, what leaves
agent-replay (``show --json``'s model calls, the textconv form, JSONL, OTLP, the
HTML report).

May import: ``replay._cassette``, ``replay._capture``, ``replay._runs`` (drift
replays a run). Contract to the surfaces: ``diff``, ``RunDiff``, ``drift``,
``DriftReport``, ``fingerprint``, ``model_call``, ``Usage``, ``summarize``, ``steps``,
``Step``, ``context_diff``, ``ContextDiff``;
``compare.Kind``, ``compare.Comparer`` and ``compare.classify`` for divergence reports.
"""
