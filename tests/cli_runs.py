"""Running the real command line in tests, and checking a refusal: exit status 2, one line that
names what is wrong, no traceback, every file kept."""

from pathlib import Path

from toolchain.cli import main

DIGITS = "examples/digits_mlp.toml"


def snapshot(*paths: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


def run(argv: list) -> int:
    return main([str(a) for a in argv])


def refused(capsys, argv: list, *fragments: str, keep: dict[Path, bytes] | None = None):
    """Runs the command and checks the refusal; returns the message."""
    assert run(argv) == 2, argv
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    for path, content in (keep or {}).items():
        assert path.read_bytes() == content, f"{path} changed"
    return err


def report_text(path: Path, images: int) -> str:
    """A report.html's text, once checked self-contained: no script, nothing fetched from a
    network, `images` plots embedded as data URIs."""
    import re

    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count('src="data:image/png;base64,') == images
    assert len(re.findall(r"<img ", page)) == images
    return re.sub(r"<[^>]+>", " ", re.sub(r"<img [^>]+>", "", page))
