"""Shared test helpers: run the real `publish` command, build the B12 article once per format set."""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
B12 = ROOT / "source" / "b12-lower-back-pain.yaml"
SEED = ROOT / "tests" / "fixtures" / "b12-seed.txt"
EPOCH = "1767225600"   # 2026-01-01T00:00:00Z, fixed so outputs are comparable

# Lines of the original web page that are page chrome, not article text, or
# belong to its empty reference list (see the comments in the source file).
SEED_CHROME = {"Skip to content", "4 min read", "In This Article", "References"}
EMPTY_REFERENCE = re.compile(r"\d+\.?\s*\d*")      # "1. 1": a numbered reference with no text


def run_publish(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600,
                input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the real command line, as a user would (python -m pipeline is the `publish` script)."""
    full_env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout, input=input)


def narrate(source: Path, *extra: str, env: dict | None = None) -> tuple[dict, str]:
    """Build the narration of *source* alone, into out/ with its cache in cache/ beside it; returns the audio
    stage's report and what the command printed on its error output."""
    folder = source.parent
    report = folder / "report.json"
    result = run_publish("build", str(source), "--format", "audio", "--out", str(folder / "out"),
                         "--cache", str(folder / "cache"), "--report", str(report), *extra, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(report.read_text())["articles"][0]["stages"][0], result.stderr


def folder_bytes(folder: Path) -> int:
    """What every file in *folder* holds now (one removed meanwhile counts as gone)."""
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            total += path.lstat().st_size if path.is_file() else 0
    return total


@contextlib.contextmanager
def small_filesystem(mount: Path, size: str | int):
    """A tmpfs of *size* bytes (or "16k", "1m") at *mount*: a real full disk, or one to remount read-only.
    Needs root, as CI runs; failing to mount fails the test with the reason (never a skip)."""
    mount.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"cannot mount a small tmpfs for a disk test (run the tests as root): {result.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def require_tool(name: str, install: str) -> str:
    """The path of a tool, on the PATH or installed beside this Python (a virtual environment's programs);
    a missing tool fails the test with the install command (never a skip)."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if not path:
        pytest.fail(f"`{name}` is not installed; the test needs it. Install it with: {install}")
    return path


def seed_sentences() -> list[str]:
    """Every sentence of the original article text, in order, without page chrome."""
    from pipeline.text import sentence_bounds
    out = []
    for line in SEED.read_text("utf-8").splitlines():
        line = line.strip().lstrip("•").strip()
        if not line or line in SEED_CHROME or EMPTY_REFERENCE.fullmatch(line):
            continue
        for cell in line.split("\t"):          # table rows are tab-separated in the seed
            cell = cell.strip()
            out.extend(cell[s:e] for s, e in sentence_bounds(cell))
    return out


def normalise(text: str) -> str:
    """Compare text as a reader sees it: one space for any white space, straight quotes."""
    text = text.replace("\u00ad", "").replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return re.sub(r"\s+", " ", text).strip()


def assert_in_order(sentences: list[str], text: str) -> None:
    """Each sentence occurs in *text*, each after the previous one."""
    text = normalise(text)
    pos = 0
    for sentence in sentences:
        found = text.find(normalise(sentence), pos)
        assert found >= 0, f"missing or out of order: {sentence!r}\n(searched from: {text[pos:pos + 200]!r})"
        pos = found + len(normalise(sentence))


@pytest.fixture(scope="session")
def build_b12(tmp_path_factory):
    """build_b12("pdf") → the output folder of a real build of the B12 article with those formats."""
    cache: dict[tuple, Path] = {}

    def build(*formats: str) -> Path:
        if formats not in cache:
            out = tmp_path_factory.mktemp("out-" + "-".join(formats))
            result = run_publish("build", str(B12), "--format", ",".join(formats), "--out", str(out))
            assert result.returncode == 0, f"build failed:\n{result.stdout}\n{result.stderr}"
            cache[formats] = out / B12.stem
        return cache[formats]
    return build


@contextlib.contextmanager
def web_server(folder: Path):
    """*folder* on a loopback web server answering byte-range requests, as real web servers do (a browser
    seeks in audio only with them); yields its address, ending in a slash."""
    import functools
    import io
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class RangeHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_head(self):
            match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            path = Path(self.translate_path(self.path))
            if not match or not path.is_file():
                return super().send_head()
            data = path.read_bytes()
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            self.send_response(206)
            self.send_header("Content-Type", self.guess_type(str(path)))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            return io.BytesIO(data[start:end + 1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
