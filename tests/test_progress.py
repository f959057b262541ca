"""Progress of the long loops: plain lines off a terminal, a redrawn bar on one, a log copy."""

from __future__ import annotations

import io

import pytest

from nfp_steps import progress
from nfp_steps.progress import Progress, track


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_at_the_first_step_and_each_tenth(monkeypatch):
    monkeypatch.setattr(progress, "LOG", None)
    out = io.StringIO()
    assert list(track(range(100), "heads", stream=out)) == list(range(100))
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["1/100"] + [f"{10 * k}/100"
                                                               for k in range(1, 11)]
    assert all(line.startswith("[progress] heads: ") for line in lines)
    assert "\r" not in out.getvalue()


def test_a_terminal_gets_one_redrawn_bar(monkeypatch):
    monkeypatch.setattr(progress, "LOG", None)
    out = FakeTTY()
    bar = Progress(4, "layers", stream=out)
    for _ in range(4):
        bar.update()
    text = out.getvalue()
    assert text.count("\r") == 4 and text.endswith("\n") and text.count("\n") == 1
    assert "[" + "#" * 30 + "] layers: 4/4 (100%)" in text


def test_lines_are_copied_to_the_log(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(progress, "LOG", log)
    list(track(["a", "b"], "x", stream=FakeTTY()))
    assert [line.split()[2] for line in log.getvalue().splitlines()] == ["1/2", "2/2"]


def test_an_empty_loop_prints_nothing(monkeypatch):
    monkeypatch.setattr(progress, "LOG", None)
    out = io.StringIO()
    assert list(track([], "none", stream=out)) == []
    assert out.getvalue() == ""


@pytest.mark.parametrize("total", [1, 3, 7])
def test_small_loops_report_every_step(monkeypatch, total):
    monkeypatch.setattr(progress, "LOG", None)
    out = io.StringIO()
    list(track(range(total), "s", stream=out))
    assert len(out.getvalue().splitlines()) == total


def test_the_stage_runner_detaches_its_log_when_done(tmp_path, monkeypatch):
    """run_stage points LOG at the job's log and must reset it when the log closes, or a later
    loop in the same process (tests, the CLI) would write to a closed file."""
    from nfp_steps import run_stage

    monkeypatch.setattr(run_stage, "run", lambda args, report: {"arrays": {}, "timing": {}})
    log = tmp_path / "x.log"
    assert run_stage.main(["prompt", "--model", "m", "--config-json", "{}", "--results",
                           str(tmp_path), "--log", str(log)]) == 0
    assert progress.LOG is None
    list(track(range(3), "after", stream=io.StringIO()))  # no "I/O operation on closed file"
