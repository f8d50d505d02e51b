"""Started by ``replay record/play -- python ...`` through PYTHONPATH.

Starts the recorder or replayer in the child interpreter before the user's
program runs, then hands over to any other ``sitecustomize`` on the path.
The setting is removed from the environment at once, so processes that the
program starts are not recorded (see docs/cli.md).
"""

import importlib.machinery
import importlib.util
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
_pp = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
       if p and os.path.abspath(p) != _here]
if _pp:
    os.environ["PYTHONPATH"] = os.pathsep.join(_pp)
else:
    os.environ.pop("PYTHONPATH", None)

_spec = os.environ.pop("AGENT_REPLAY_BOOT", None)
if _spec:
    try:
        from replay._runs.bootstrap import start
    except ImportError as _exc:  # another interpreter, without agent-replay installed
        sys.stderr.write(
            f"agent-replay: cannot import 'replay' in {sys.executable} ({_exc}); run the "
            "program with the Python that has agent-replay installed\n")
        sys.exit(70)
    start(_spec)

_next = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
if _next is not None and _next.origin and os.path.dirname(_next.origin) != _here:
    _mod = importlib.util.module_from_spec(_next)
    if _next.loader is not None:
        _next.loader.exec_module(_mod)
