"""The upload progress bar: in place on a terminal, one final line elsewhere."""

from __future__ import annotations

import io

from services.cli.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_is_redrawn_in_place_up_to_100_percent() -> None:
    out = Terminal()
    bar = ProgressBar("photo.jpg", 4_000_000, out)
    bar.advance(1_000_000)
    bar.advance(3_000_000)
    bar.finish()
    frames = out.getvalue().split("\r")[1:]
    assert frames[0] == "photo.jpg [######..................]  25% 1.0/4.0 MB"
    assert frames[1] == "photo.jpg [########################] 100% 4.0/4.0 MB\n"


def test_elsewhere_only_the_final_line_is_written() -> None:
    out = io.StringIO()
    bar = ProgressBar("photo.jpg", 2_000_000, out)
    bar.advance(2_000_000)
    bar.finish()
    assert out.getvalue() == "photo.jpg [########################] 100% 2.0/2.0 MB\n"


def test_an_empty_file_does_not_divide_by_zero() -> None:
    assert ProgressBar("empty", 0, io.StringIO()).render().endswith("0% 0.0/0.0 MB")
