"""Started by ``replay record/play -- python ...`` through PYTHONPATH.

Starts the recorder or replayer in the child interpreter before the user's
program runs, then hands over to any other ``sitecustomize`` on the path.
The setting is removed from the environment at once, so processes that the
program starts are not recorded (see docs/cli.md).

If the session cannot start, for any reason, the process ends here with exit
code 70, before the program's first line: the reason goes to the parent's
result file (or to stderr when there is none). A program is never run
unrecorded, or with the network open, by mistake.
"""

import importlib.machinery
import importlib.util
import json
import os
import sys
from typing import NoReturn

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_pp = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
       if p and os.path.abspath(p) != _here]
if _pp:
    os.environ["PYTHONPATH"] = os.pathsep.join(_pp)
else:
    os.environ.pop("PYTHONPATH", None)


def _refuse(spec_text: str, why: str) -> NoReturn:
    """End the process before the program runs, saying why to the parent."""
    try:
        spec = json.loads(spec_text)
        mode, result = str(spec.get("mode", "")), spec.get("result")
    except Exception:  # a spec that is not a JSON object
        mode, result = "", None
    reason = f"the {mode + ' ' if mode else ''}session did not start: {why}"
    try:
        with open(result, "w", encoding="utf-8") as f:
            json.dump({"boot_error": reason}, f)
    except Exception:  # no parent waiting (or its file is gone): say it here
        sys.stderr.write(f"agent-replay: {reason}; the program was not run\n")
    sys.stderr.flush()
    os._exit(70)  # SystemExit here would only make the interpreter report a fatal error


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if not text or isinstance(exc, OSError) else text


_spec = os.environ.pop("AGENT_REPLAY_BOOT", None)
if _spec:
    try:
        from replay._runs.bootstrap import start
    except BaseException as _exc:  # another interpreter, without agent-replay installed
        _refuse(_spec, f"cannot import 'replay' in {sys.executable} ({_exc}); run the "
                "program with the Python that has agent-replay installed")
    try:
        start(_spec)
    except BaseException as _exc:
        _refuse(_spec, _why(_exc))

_next = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
if _next is not None and _next.origin and os.path.dirname(_next.origin) != _here:
    _mod = importlib.util.module_from_spec(_next)
    if _next.loader is not None:
        _next.loader.exec_module(_mod)
