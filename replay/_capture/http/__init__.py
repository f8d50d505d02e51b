"""HTTP interception: every HTTP call of a run becomes one ``http`` event.

* ``common``     canonical request/response forms, matching, replay settings
* ``httpx``      httpx and httpx2 transports (sync, async, streamed)
* ``recording``  one live response recorded, its event written once (the short path)
* ``vcr``        requests, urllib3 and aiohttp through vcrpy's stubs
* ``stdlib``     ``http.client`` (and so ``urllib.request``): its real classes' methods
* ``stdwire``    the stand-in socket a replayed ``http.client`` connection reads from
* ``lm15``       lm15's own socket transports (DSPy's default engine)
* ``netblock``   strict replay refuses real socket connections

(vcrpy cassette import is ``replay._runs.import_vcr``; the secret scan is
``replay._analysis.scan``.)

Importing this package registers its patches with ``replay._capture.patch`` (so they
are installed and removed with all the others, as one unit) and a session
hook that reads ``Run.options`` (``speed``, ``match_on``, ``allow_hosts``).
See docs/http.md.
"""

from __future__ import annotations

from replay._capture import patch as _patch
from replay._capture.http import httpx as _httpx
from replay._capture.http import lm15 as _lm15
from replay._capture.http import netblock as _netblock
from replay._capture.http import stdlib as _stdlib
from replay._capture.http import vcr as _vcr
from replay._capture.http.common import CHANNEL, config_from_options, make_matcher, set_config
from replay._capture.http.httpx import httpx_transport
from replay._capture.session import SESSION_HOOKS, RunSettings, Session

__all__ = ["httpx_transport"]


def _on_session(session: Session, run: RunSettings) -> None:
    """Give a new session its HTTP settings and, on replay, the HTTP request matcher."""
    set_config(session, config_from_options(run.options))
    if session.matcher is not None:
        session.matcher.set_matcher(CHANNEL, make_matcher(run.options.get("match_on")))


for _name, _provider in {**_vcr.MODULE_PATCHES, **_lm15.MODULE_PATCHES}.items():
    _patch.register_module(_name, _provider)
_patch.register(_httpx.patches)
_patch.register(_stdlib.patches)
_patch.register(_netblock.patches)
if _on_session not in SESSION_HOOKS:
    SESSION_HOOKS.append(_on_session)
