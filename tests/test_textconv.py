"""``replay show --textconv``: cassettes reviewable with ``git diff``.

A real git repository in a temporary folder is set up with docs/pytest.md's
recipe; a real agent (openai SDK against the local emulator, a tool, clock and
uuid reads) is recorded with ``replay record``, committed, and recorded again:
with the same inputs ``git diff`` shows nothing, with a changed tool result it
shows that change and nothing of the noise (ids, times, the emulator's port).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import replay
from fixtures.emulator import Emulator, ToolCall, Turn
from replay._analysis.export.textconv import NOISE, textconv

ROOT = Path(__file__).resolve().parent.parent

# docs/pytest.md shows these lines (an excerpt of this file): they are what the test runs.
RECIPE = """
echo '*.replay diff=replay' >> .gitattributes
git config diff.replay.textconv 'replay show --textconv'
"""

# docs/pytest.md shows this hunk (an excerpt of this file): the diff this test makes.
HUNK = """
 response:
   order_id: "A-1"
   read_at: ~noise~
-  total: 49.9
+  total: 4990.0
   trace: ~noise~
"""

AGENT = '''
import datetime, os, uuid
import openai
import replay

@replay.tool
def lookup_order(order_id):
    return {"order_id": order_id, "total": float(os.environ["ORDER_TOTAL"]),
            "read_at": datetime.datetime.now().isoformat(), "trace": str(uuid.uuid4())}

client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-test-123456",
                       max_retries=0)
messages = [{"role": "system", "content": "You refund orders.\\nUse the tools."},
            {"role": "user", "content": "Refund A-1 please (request " + str(uuid.uuid4()) + ")"}]
first = client.chat.completions.create(model="gpt-4o", messages=messages)
call = first.choices[0].message.tool_calls[0]
messages += [first.choices[0].message.model_dump(exclude_none=True),
             {"role": "tool", "tool_call_id": call.id,
              "content": str(lookup_order("A-1"))}]
for chunk in client.chat.completions.create(model="gpt-4o", messages=messages, stream=True):
    pass
print("done")
'''


def sh(command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    full = dict(os.environ, PYTHONPATH=str(ROOT), PATH=path, GIT_CONFIG_NOSYSTEM="1",
                HOME=str(cwd), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
                GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid", **env)
    res = subprocess.run(["bash", "-c", command], cwd=cwd, env=full, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, f"{command}\n{res.stdout}\n{res.stderr}"
    return res


def turns() -> list[Turn]:
    return [Turn(tool_calls=[ToolCall("lookup_order", {"order_id": "A-1"})]),
            Turn(text="Refunded.\nAnything else?")]


def record(repo: Path, emu: Emulator, total: str) -> None:
    sh(f"{sys.executable} -m replay._cli record -o run.replay -- python agent.py", repo,
       OPENAI_BASE_URL=emu.openai_base_url, ORDER_TOTAL=total)


def changed_lines(diff: str) -> list[str]:
    return [ln for ln in diff.splitlines()
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


@pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode,
                    reason="no git")
def test_git_diff_of_a_rerecorded_cassette_shows_the_changed_tool_result(
        tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "agent.py").write_text(AGENT)
    sh("git init -q . && " + RECIPE.strip().replace("\n", " && "), repo)
    record(repo, emulator(*turns()), "49.9")
    sh("git add .gitattributes agent.py run.replay && git commit -qm v1", repo)

    # Same inputs, another emulator (another port), new ids, times and uuids: no diff.
    record(repo, emulator(*turns()), "49.9")
    assert sh("git status --porcelain", repo).stdout.strip() == "M run.replay"
    assert changed_lines(sh("git diff", repo).stdout) == []

    # Another tool result: git diff shows it (the tool's answer, and the prompt that
    # carried it to the model), and nothing else.
    record(repo, emulator(*turns()), "4990.0")
    diff = sh("git diff", repo).stdout
    changed = changed_lines(diff)
    assert HUNK.strip("\n") in diff, diff
    assert len(changed) == 4, diff
    assert all(("49.9" in ln) != ("4990.0" in ln) for ln in changed), diff
    assert sum("'total': 4990.0" in ln for ln in changed) == 1, diff  # the second prompt
    assert "lookup_order" in diff  # the hunk names its event
    assert "sk-test-123456" not in sh("replay show --textconv run.replay", repo).stdout


def test_text_form_marks_noise_and_is_stable(tmp_path: Path,
                                             emulator: Callable[..., Emulator]) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    record(tmp_path, emulator(*turns()), "12.5")
    cassette = replay.load(tmp_path / "run.replay")
    text = "\n".join(textconv(cassette))
    assert text == "\n".join(textconv(replay.load(tmp_path / "run.replay")))
    # uuid and clock answers, and where they reappear (a prompt, a tool result)
    assert "=== uuid  task main" in text and "response: ~noise~" in text
    assert "(request ~noise~)" in text and "read_at: ~noise~" in text
    assert "trace: ~noise~" in text
    assert f"url: \"http://127.0.0.1:{NOISE}/v1/chat/completions\"" in text
    assert "id: ~noise~" in text and "created: ~noise~" in text
    # multi-line strings are split into lines; keys sorted
    assert "content: |\n          You refund orders.\n          Use the tools." in text
    assert "output: |\n      Refunded.\n      Anything else?" in text
    assert "_ns" not in text  # no times
    lookup = text.split("=== tool:lookup_order", 1)[1].split("\n\n", 1)[0]
    assert lookup.index("order_id:") < lookup.index("total:")


def test_damaged_and_bad_files(tmp_path: Path, emulator: Callable[..., Emulator]) -> None:
    (tmp_path / "agent.py").write_text(AGENT)
    record(tmp_path, emulator(*turns()), "1.0")
    data = (tmp_path / "run.replay").read_bytes()
    (tmp_path / "cut.replay").write_bytes(data[: len(data) * 2 // 3])
    res = sh("replay show --textconv cut.replay", tmp_path)  # exit 0: git diff still works
    assert "damaged:" in res.stdout
    (tmp_path / "not.replay").write_text("hello")
    bad = subprocess.run([sys.executable, "-m", "replay._cli", "show", "--textconv",
                          str(tmp_path / "not.replay")], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert bad.returncode == 2 and "is not a cassette" in bad.stderr
    assert "Traceback" not in bad.stderr
