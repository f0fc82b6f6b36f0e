"""Progress bars in a log file: one line per refresh, no carriage returns; live tqdm on a terminal."""

import io

from codec.progress import LogLines, progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_whole_lines():
    log = io.StringIO()
    bar = progress(range(5), desc="train", stream=log)
    for _ in bar:
        bar.refresh()  # what a refresh after LOG_INTERVAL writes
    bar.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) >= 5 and all(line.startswith("train:") for line in lines)
    assert "5/5" in lines[-1]


def test_terminal_keeps_carriage_returns():
    term = _Terminal()
    bar = progress(range(3), desc="x", stream=term)
    for _ in bar:
        pass
    bar.close()
    assert "\r" in term.getvalue()


def test_log_lines_splits_refreshes():
    out = io.StringIO()
    LogLines(out).write("\ra 1/3\ra 2/3\n")
    assert out.getvalue() == "a 1/3\na 2/3\n"
