"""The progress bar draws only for a terminal and only for large inputs."""

from __future__ import annotations

import io

from udfcollection.progress import Progress


class Terminal(io.StringIO):
    """A text stream that says it is a terminal, as stderr on a tty does."""

    def isatty(self) -> bool:
        return True


def test_draws_on_a_terminal_and_erases_itself():
    term = Terminal()
    bar = Progress(1000, stream=term, min_items=100, interval=0.0, width=10)
    assert list(bar.wrap(range(1000))) == list(range(1000))
    text = term.getvalue()
    assert "\r[##########] 1,000/1,000 points" in text
    assert "\r[#####-----] 500/1,000 points" in text
    assert text.endswith("\r")  # erased: the next line starts at column 0
    assert text.splitlines()[-1].strip() == ""


def test_silent_when_not_a_terminal_or_small():
    pipe = io.StringIO()
    bar = Progress(10**6, stream=pipe, min_items=100, interval=0.0)
    for _ in bar.wrap(range(1000)):
        pass
    assert pipe.getvalue() == "" and bar.done == 1000
    term = Terminal()
    small = Progress(99, stream=term, min_items=100, interval=0.0)
    for _ in small.wrap(range(99)):
        pass
    assert term.getvalue() == ""


def test_counts_only_what_the_count_function_says():
    term = Terminal()
    bar = Progress(3, stream=term, min_items=1, interval=0.0, label="points")
    items = ["begin", "point", "point", "end", "begin", "point", "end"]
    list(bar.wrap(items, lambda k: 1 if k == "point" else 0))
    assert bar.done == 3
    assert "3/3 points" in term.getvalue()
