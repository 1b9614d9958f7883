"""Progress: bars at a terminal, a line per tenth in logs and CI, nothing under --quiet."""

import logging

from lungfast import progress


def test_logs_get_a_line_per_tenth_and_quiet_gets_nothing(caplog, monkeypatch):
    monkeypatch.setattr(progress, "interactive", lambda: False)
    with caplog.at_level(logging.INFO, logger="lungfast"):
        shown = progress.bar(100, "stored")
        for n in range(1, 101):
            shown(n)
    assert [r.getMessage() for r in caplog.records] == [f"stored {n}/100" for n in range(10, 101, 10)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lungfast"):  # what --quiet sets
        shown = progress.bar(100, "stored")
        for n in range(1, 101):
            shown(n)
    assert caplog.records == []


def test_no_terminal_no_bars(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert progress.interactive() is False
