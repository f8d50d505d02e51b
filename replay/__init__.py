"""agent-replay."""
