"""HTTP interception: every HTTP call of a run becomes one ``http`` event.

* ``_common``     canonical request/response forms, matching, replay settings
* ``_httpx``      httpx and httpx2 transports (sync, async, streamed)
* ``_vcr``        requests, urllib3 and aiohttp through vcrpy's stubs
* ``_netblock``   strict replay refuses real socket connections
* ``_import_vcr`` vcrpy cassettes turned into ours
* ``_scan``       secret-shaped strings in a cassette

Importing this package registers its patches with ``replay._patch`` (so they
are installed and removed with all the others, as one unit) and a session
hook that reads ``Run.options`` (``speed``, ``match_on``, ``allow_hosts``).
See docs/http.md.
"""

from __future__ import annotations

from replay import _api, _patch
from replay._http import _httpx, _netblock, _vcr
from replay._http._common import CHANNEL, config_from_options, make_matcher, set_config
from replay._http._httpx import httpx_transport
from replay._session import Session

__all__ = ["httpx_transport"]


def _on_session(session: Session, run: _api.Run) -> None:
    """Give a new session its HTTP settings and, on replay, the HTTP request matcher."""
    set_config(session, config_from_options(run.options))
    if session.matcher is not None:
        session.matcher.set_matcher(CHANNEL, make_matcher(run.options.get("match_on")))


_patch.register(_vcr.patches)
_patch.register(_httpx.patches)
_patch.register(_netblock.patches)
if _on_session not in _api.SESSION_HOOKS:
    _api.SESSION_HOOKS.append(_on_session)
