"""Surface: the pytest plugin's machinery (``replay.pytest_plugin`` is its entry point).

Holds the per-test run (``run``: marker, fixture, modes, divergence and drift
as test results), the terminal summary (``summary``) and model-call helpers
for assertions (``llm``).

May import every layer below (``_cassette``, ``_capture``, ``_runs``,
``_analysis``) and ``replay.testing``; nothing imports it but the plugin entry
point and ``replay.testing``.
"""
