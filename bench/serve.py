"""Benchmark: from saving a one-sentence edit to the reloaded page, with `publish serve` running.

Run on demand (not part of the test suite):

    python3 bench/serve.py [--runs 5]

It serves a copy of the B12 article, listens to the server's events as an
open page does, then saves a one-sentence edit several times and measures,
from each save, the time until the page is told to reload after (a) the
large-print page, (b) the PDF and EPUB and (c) the narration were rebuilt:
the moment the edited sentence can be read on the page, seen in the PDF
preview and heard in the player. It prints the medians against the targets
and writes bench/serve-results.json, with the load average at each save
(other work on the machine stretches every figure), the seconds each
build took by the server's own account, which leaves the rest of each
figure to noticing the save, waiting for a core and reloading, and the
processor time each build used (its helper programs' included), which is
about what it would take on an idle machine.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "b12-lower-back-pain.yaml"
SENTENCE = "with one study noting a 32%"
TARGETS = {"html": 1.0, "pdf": 1.0, "audio": 3.0}          # seconds from the save
DEADLINE = 300.0                                            # seconds: give up on a save after this
PHASE_NAMES = {"html": "large-print page", "pdf": "PDF preview", "audio": "narration in the player"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as folder:
        project = Path(folder)
        (project / "source").mkdir()
        source = project / "source" / SOURCE.name
        shutil.copy(SOURCE, source)
        shutil.copytree(ROOT / "themes", project / "themes")      # its own theme: edits elsewhere do not reach it
        env = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600", "PYTHONPATH": str(ROOT)}
        log = (project / "serve.out").open("w+")
        told = project / "serve.err"
        server = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", str(source), "--port", "0",
                                   "--out", str(project / "output"), "--cache", str(project / "cache")],
                                  cwd=project, env=env, stdout=log, stderr=told.open("w"))
        try:
            port = _wait_for_port(project / "serve.out", server)
            events = _open_events(port)
            timings: dict[str, list[float]] = {name: [] for name in TARGETS}
            builds: dict[str, list[float]] = {name: [] for name in TARGETS}
            processor: dict[str, list[float]] = {name: [] for name in TARGETS}
            loads: list[float] = []
            text = source.read_text("utf-8")
            for run in range(args.runs):
                seen = len(told.read_text().splitlines())
                loads.append(round(os.getloadavg()[0], 2))
                edited = text.replace(SENTENCE, SENTENCE.replace("32%", f"{40 + run}%"))
                if edited == text:
                    raise SystemExit(f"the source no longer says {SENTENCE!r}: choose another sentence to edit")
                saved = time.perf_counter()
                source.write_text(edited, "utf-8")
                waiting = set(TARGETS)
                while waiting:
                    event, data = _next_event(events, saved + DEADLINE)
                    if event == "reload":
                        for name in set(data["formats"]) & waiting:
                            timings[name].append(time.perf_counter() - saved)
                            waiting.discard(name)
                    elif event == "problems":
                        raise SystemExit(f"the edit did not build:\n{data['text']}")
                for line in told.read_text().splitlines()[seen:]:
                    found = re.match(r"rebuilt \S+ \((\w+)\) in ([\d.]+) s \(([\d.]+) s of processor time\)", line)
                    if found and found.group(1) in builds and len(builds[found.group(1)]) == run:
                        builds[found.group(1)].append(float(found.group(2)))
                        processor[found.group(1)].append(float(found.group(3)))
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
    results = {name: {"median_s": round(statistics.median(values), 3), "runs_s": [round(v, 3) for v in values],
                      "build_s": builds[name], "build_processor_s": processor[name], "target_s": TARGETS[name],
                      "met": statistics.median(values) < TARGETS[name]}
               for name, values in timings.items()}
    print(f"{'from the save until the reload of':<40} {'median':>8} {'target':>8}")
    for name, result in results.items():
        print(f"{PHASE_NAMES[name]:<40} {result['median_s']:>7.2f}s {'<' + str(result['target_s']) + 's':>8}"
              f"  {'met' if result['met'] else 'NOT met'}   each save: {result['runs_s']}, of which building: "
              f"{result['build_s']}, using the processor for {result['build_processor_s']}")
    print(f"load average (1 minute) at each save: {loads}, on {os.cpu_count()} cores")
    (ROOT / "bench" / "serve-results.json").write_text(json.dumps(
        {"cpus": os.cpu_count(), "load_average": os.getloadavg(), "load_at_each_save": loads, "results": results},
        indent=2) + "\n")
    return 0


def _wait_for_port(log: Path, server: subprocess.Popen) -> int:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = re.search(r"at http://[\d.]+:(\d+)/", log.read_text())
        if found:
            return int(found.group(1))
        if server.poll() is not None:
            raise SystemExit("publish serve ended before serving")
        time.sleep(0.2)
    raise SystemExit("publish serve did not start serving within 10 minutes")


def _open_events(port: int):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request("GET", "/__publish__/events")
    return connection.getresponse()


def _next_event(response, deadline: float) -> tuple[str, dict]:
    event = None
    for raw in response:
        if time.perf_counter() > deadline:
            raise SystemExit(f"no reload within {DEADLINE:.0f} s of the save")
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event:
            return event, json.loads(line[6:])
    raise SystemExit("the event stream ended")


if __name__ == "__main__":
    sys.exit(main())
