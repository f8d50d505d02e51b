"""The context fingerprint: what a run's behaviour depended on besides its inputs.

Two halves. The *process context* is taken when a recording starts and written
into the cassette header as ``meta["fingerprint"]`` (by the ``HEADER_META``
provider this module registers): Python and platform, versions of packages that
shape agent behaviour, the agent's own package, the git commit and dirty flag
of the working directory, environment variable *names* (values only for
:data:`ENV_VALUES`, with credentials stripped). The *event half* is derived from
the events when a cassette is read: models asked for and served, OpenAI system
fingerprints, hashes of system prompts and tool schemas, endpoints and tools.

``replay.fingerprint(cassette)`` returns both; ``replay.fingerprint()`` the live
process context (no events). Drift compares the two.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from replay._analysis.usage import iter_calls
from replay._cassette import Cassette, read_cassette
from replay._cassette.events import Event, Value
from replay._cassette.redact import DEFAULT as _REDACTOR
from replay._runs import headers as _headers

FORMAT = 1
"""Version of the ``meta["fingerprint"]`` map."""

PACKAGES = ("openai", "anthropic", "httpx", "httpx2", "agent-replay", "pydantic", "tiktoken",
            "litellm", "langchain-core", "langgraph", "llama-index-core", "instructor", "mcp",
            "requests", "aiohttp")
"""Distributions whose versions are recorded (when installed)."""

ENV_VALUES = frozenset({
    "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_API_VERSION", "OPENAI_API_TYPE",
    "AZURE_OPENAI_ENDPOINT", "ANTHROPIC_BASE_URL", "OPENAI_MODEL", "ANTHROPIC_MODEL",
    "OPENAI_LOG", "ANTHROPIC_LOG", "TZ", "LANG", "LC_ALL",
})
"""Environment variables whose *values* are recorded (never secrets; URLs lose
any user:password part and key-like strings are masked). Of every other
variable only the name is recorded."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The context a run happened in: process context plus what its events show."""

    python: str | None = None
    """Python version (``3.11.7``)."""
    implementation: str | None = None
    """``CPython``, ``PyPy``..."""
    platform: str | None = None
    """``platform.platform()``."""
    packages: Mapping[str, str] = field(default_factory=dict)
    """Installed versions of :data:`PACKAGES`, by distribution name."""
    agent: Mapping[str, str] | None = None
    """The agent's own package (``name``, ``version``, ``source``) when detected."""
    git_commit: str | None = None
    """HEAD commit of the working directory's repository."""
    git_dirty: bool | None = None
    """True when tracked files had uncommitted changes."""
    env_names: tuple[str, ...] = ()
    """Names of every environment variable, sorted."""
    env_values: Mapping[str, str] = field(default_factory=dict)
    """Values of the allow-listed variables (:data:`ENV_VALUES`) that were set."""
    models_requested: tuple[str, ...] = ()
    """Model ids the run asked for, sorted."""
    models_served: tuple[str, ...] = ()
    """Model ids the answers named, sorted."""
    system_fingerprints: tuple[str, ...] = ()
    """OpenAI ``system_fingerprint`` values the answers carried, sorted."""
    system_prompts: tuple[str, ...] = ()
    """Short SHA-256 hashes of every distinct system prompt, sorted."""
    tool_schemas: Mapping[str, str] = field(default_factory=dict)
    """Short SHA-256 hash of each model tool's schema, by tool name."""
    endpoints: tuple[str, ...] = ()
    """``METHOD scheme://host/path`` of every HTTP endpoint called, sorted."""
    tools: tuple[str, ...] = ()
    """Tool and capture channels the run used, sorted."""

    def as_dict(self) -> dict[str, Value]:
        """JSON form: every field by name."""
        return {
            "python": self.python, "implementation": self.implementation,
            "platform": self.platform, "packages": dict(self.packages),
            "agent": dict(self.agent) if self.agent is not None else None,
            "git_commit": self.git_commit, "git_dirty": self.git_dirty,
            "env_names": list(self.env_names), "env_values": dict(self.env_values),
            "models_requested": list(self.models_requested),
            "models_served": list(self.models_served),
            "system_fingerprints": list(self.system_fingerprints),
            "system_prompts": list(self.system_prompts),
            "tool_schemas": dict(self.tool_schemas), "endpoints": list(self.endpoints),
            "tools": list(self.tools),
        }


def short_hash(value: Any) -> str:
    """16 hex digits of SHA-256 of ``value`` (strings as UTF-8, others as sorted JSON)."""
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:16]


# -- the live process context -------------------------------------------------------
def _clean_value(value: str) -> str:
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and parts.hostname and ("@" in parts.netloc):
        host = parts.hostname + (f":{parts.port}" if parts.port else "")
        value = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return _REDACTOR.text(value)


@functools.lru_cache(maxsize=1)
def _packages() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        except Exception:  # a broken installation must never stop a recording
            continue
    return out


def _pyproject(start: str) -> dict[str, str] | None:
    import tomllib
    here = os.path.abspath(start)
    for _ in range(6):
        path = os.path.join(here, "pyproject.toml")
        if os.path.isfile(path):
            try:
                with open(path, "rb") as f:
                    project = tomllib.load(f).get("project") or {}
            except (OSError, ValueError):
                return None
            name, version = project.get("name"), project.get("version")
            if isinstance(name, str):
                return {"name": name, "version": str(version or "dynamic"),
                        "source": "pyproject"}
            return None
        if os.path.isdir(os.path.join(here, ".git")):
            return None
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    return None


def _agent() -> dict[str, str] | None:
    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    script = sys.argv[0] if sys.argv and sys.argv[0] not in ("", "-c", "-m") else None
    found = _agent_of(name if isinstance(name, str) else None, script, os.getcwd())
    return dict(found) if found is not None else None


@functools.lru_cache(maxsize=16)
def _agent_of(name: str | None, script: str | None, cwd: str) -> dict[str, str] | None:
    """The agent's distribution or pyproject, once per (main module, script, cwd): a
    service records a run per request, and scanning every installed distribution
    costs hundreds of milliseconds."""
    if name and not name.startswith(("pytest", "replay")):
        top = name.split(".", 1)[0]
        try:
            dists = importlib.metadata.packages_distributions().get(top) or []
            if dists:
                return {"name": dists[0], "version": importlib.metadata.version(dists[0]),
                        "source": "distribution"}
        except Exception:
            pass
    found = _pyproject(os.path.dirname(os.path.abspath(script))) if script else None
    return found or _pyproject(cwd)


_GIT_TTL_S = 10.0
_git_cache: dict[str, tuple[float, tuple[str | None, bool | None]]] = {}


def _git(cwd: str) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the working tree at ``cwd``; asked of git at most every
    few seconds per directory, so a suite of many short runs does not spawn two
    git processes per run."""
    now = time.monotonic()
    hit = _git_cache.get(cwd)
    if hit is not None and now - hit[0] < _GIT_TTL_S:
        return hit[1]
    found = _ask_git(cwd)
    _git_cache[cwd] = (now, found)
    return found


def _ask_git(cwd: str) -> tuple[str | None, bool | None]:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, env=env, timeout=3,
                              capture_output=True, text=True)
        if head.returncode != 0:
            return None, None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=cwd, env=env, timeout=3, capture_output=True, text=True)
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


def live_context() -> dict[str, Value]:
    """The process context now, as stored in ``meta["fingerprint"]``."""
    commit, dirty = _git(os.getcwd())
    # PYTHONHASHSEED is agent-replay's own: replay record sets it in the child and
    # keeps it in meta["hashseed"]; replay play hands it back.
    names = sorted(k for k in os.environ if k != "PYTHONHASHSEED")
    values = {k: _clean_value(os.environ[k]) for k in names if k in ENV_VALUES}
    agent = _agent()
    out: dict[str, Value] = {
        "format": FORMAT,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": dict(_packages()),
        "env_names": list[Value](names),
        "env_values": dict(values),
    }
    if agent is not None:
        out["agent"] = dict(agent)
    if commit is not None:
        out["git"] = {"commit": commit, "dirty": dirty}
    return out


def _header_meta() -> dict[str, Value]:
    try:
        return {"fingerprint": live_context()}
    except Exception:  # never stop a recording for its fingerprint
        return {}


if _header_meta not in _headers.HEADER_META:
    _headers.HEADER_META.append(_header_meta)


# -- reading ---------------------------------------------------------------------------
def _strs(v: Any) -> tuple[str, ...]:
    return tuple(x for x in v if isinstance(x, str)) if isinstance(v, list | tuple) else ()


def _str_map(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        return {}
    return {str(k): str(x) for k, x in v.items() if isinstance(x, str | int | float)}


def context_from(meta: Mapping[str, Value]) -> dict[str, Any]:
    """Typed process-context fields from a header's ``meta["fingerprint"]`` (untrusted)."""
    fp = meta.get("fingerprint")
    if not isinstance(fp, dict):
        return {}
    raw_git = fp.get("git")
    git: dict[str, Any] = raw_git if isinstance(raw_git, dict) else {}
    agent = _str_map(fp.get("agent")) or None
    out: dict[str, Any] = {
        "python": fp.get("python") if isinstance(fp.get("python"), str) else None,
        "implementation": fp.get("implementation") if isinstance(
            fp.get("implementation"), str) else None,
        "platform": fp.get("platform") if isinstance(fp.get("platform"), str) else None,
        "packages": _str_map(fp.get("packages")),
        "agent": agent,
        "git_commit": git.get("commit") if isinstance(git.get("commit"), str) else None,
        "git_dirty": git.get("dirty") if isinstance(git.get("dirty"), bool) else None,
        "env_names": tuple(sorted(_strs(fp.get("env_names")))),
        "env_values": _str_map(fp.get("env_values")),
    }
    return out


def from_events(events: Iterable[Event]) -> dict[str, Any]:
    """The event half of a fingerprint."""
    events = list(events)
    requested: set[str] = set()
    served: set[str] = set()
    sysfp: set[str] = set()
    prompts: set[str] = set()
    schemas: dict[str, str] = {}
    endpoints: set[str] = set()
    tools: set[str] = set()
    for ev in events:
        if ev.channel.startswith(("tool:", "capture:")):
            tools.add(ev.channel)
        req = ev.request
        if ev.channel.startswith("http") and isinstance(req, dict):
            url, method = req.get("url"), req.get("method")
            if isinstance(url, str):
                parts = urlsplit(url)
                endpoints.add(f"{method if isinstance(method, str) else '?'} "
                              f"{parts.scheme}://{parts.netloc}{parts.path}")
    for _ev, call in iter_calls(events):
        if call.model:
            requested.add(call.model)
        if call.served_model:
            served.add(call.served_model)
        if call.system_fingerprint:
            sysfp.add(call.system_fingerprint)
        if call.system:
            prompts.add(short_hash(call.system))
        for name, schema in call.tools.items():
            schemas[name] = short_hash(schema)
    return {"models_requested": tuple(sorted(requested)), "models_served": tuple(sorted(served)),
            "system_fingerprints": tuple(sorted(sysfp)), "system_prompts": tuple(sorted(prompts)),
            "tool_schemas": dict(sorted(schemas.items())), "endpoints": tuple(sorted(endpoints)),
            "tools": tuple(sorted(tools))}


def live_fingerprint() -> Fingerprint:
    """The process context now (no event half)."""
    return Fingerprint(**context_from({"fingerprint": live_context()}))


def fingerprint(cassette: str | os.PathLike[str] | Cassette | None = None, *,
                allow_damaged: bool = False) -> Fingerprint:
    """The combined fingerprint of a cassette (header context + what its events show),
    or, with no argument, of the live process."""
    if cassette is None:
        return live_fingerprint()
    if not isinstance(cassette, Cassette):
        cassette = read_cassette(cassette, strict=not allow_damaged)
    header = cassette.header
    context = context_from(header.meta)
    if context.get("python") is None:  # recorded without a fingerprint: the header's own
        impl, _, version = header.python.partition(" ")
        context.update(python=version or None, implementation=impl or None,
                       platform=header.platform or None)
    return Fingerprint(**context, **from_events(cassette.events))
