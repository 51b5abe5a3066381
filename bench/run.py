"""Benchmark: `publish build` against the chain a user would script by hand.

Run on demand (not part of the test suite):

    python3 bench/run.py [--runs 5] [--batch 100]

It measures, on the B12 article, with the median of several runs:
  (a) a cold build of all four outputs (empty output and cache folders);
  (b) the hand-scripted peer: pandoc to standalone HTML and to EPUB, WeasyPrint on
      pandoc's HTML, espeak-ng on pandoc's plain text, ffmpeg to MP3; and a/b;
  (c) a rebuild with no change, as a fraction of (a);
  (d) a one-sentence edit: time as a fraction of (a), and utterances synthesized;
  (e) a batch of N generated variants of the article, against N × (a);
  (f) peak memory (PSS) of the whole process tree during (a) and (e).
It prints a table and writes bench/results.json.

    python3 bench/run.py --voices

measures each speech engine instead (bench/voices.json), on the short
article of the voice tests: CPU seconds per minute of speech, publish's
synthesis against the engine's own command-line program on the same
sentences, a cold narration and a one-sentence edit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "source" / "b12-lower-back-pain.yaml"
SEED = ROOT / "tests" / "fixtures" / "b12-seed.txt"
ENV = {**os.environ, "SOURCE_DATE_EPOCH": "1767225600"}
TARGETS = {"a_over_b": 1.0, "c_over_a": 0.05, "d_over_a": 0.25, "e_over_100a": 0.60, "f_peak_mib": 300}


def tree_memory_mib(pid: int) -> float:
    """Memory of a process and all its descendants: the sum of their proportional set sizes (PSS).

    Build workers are forked and share most of their pages with the parent;
    summing resident sizes would count those pages once per process. PSS
    divides each shared page among the processes that share it.

    A helper program (ffmpeg) is started with vfork: until it has replaced
    itself with the program, the child runs in its parent's memory, and its
    PSS is the whole worker's a second time. Such a child still has its
    parent's name, so a worker's child with the worker's name, or one that
    changes name while it is being read, is left out for that sample.
    """
    total, stack = 0, [(pid, None)]
    while stack:
        p, parent_name = stack.pop()
        try:
            name = _name(p)
            with open(f"/proc/{p}/smaps_rollup") as f:
                pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:")) * 1024
            if _name(p) == name and name != parent_name:
                total += pss
            stack.extend((child, None if p == pid else name) for child in _children(p))
        except (OSError, StopIteration):
            pass
    return total / 2**20


def _children(pid: int) -> list[int]:
    """Every child of a process: /proc lists them by the thread that started them (the narration's encoders
    start ffmpeg from threads of their own), so every thread is asked."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:                      # the thread has ended meanwhile
            pass
    return found


def _name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def timed(cmd: list[str] | str, cwd: Path = ROOT, shell: bool = False, sample: float = 0.0) -> tuple[float, float]:
    """Wall time, and peak memory (MiB, whole process tree) read every *sample* seconds if asked for.

    Reading PSS walks every process's page tables, which takes CPU from the
    build being measured: runs timed for (a) to (d) are not sampled.
    """
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0.0
    done = threading.Event()

    def sampler():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_memory_mib(proc.pid))
            time.sleep(sample)
    watcher = threading.Thread(target=sampler)
    if sample:
        watcher.start()
    _, err = proc.communicate()
    done.set()
    if sample:
        watcher.join()
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {cmd}\n{err.decode()[-2000:]}")
    return elapsed, peak


def publish(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "build", *args]


def cold_build(work: Path, n: int, sample: float = 0.0) -> tuple[float, float]:
    out, cache = work / f"cold-out-{n}", work / f"cold-cache-{n}"
    return timed(publish(str(SOURCE), "--out", str(out), "--cache", str(cache), "--quiet"), sample=sample)


def peer_chain(work: Path, n: int, sample: float = 0.0) -> tuple[float, float]:
    """What a user would script by hand, one tool after the other."""
    folder = work / f"peer-{n}"
    folder.mkdir()
    shutil.copy(SEED, folder / "article.md")
    pandoc = shutil.which("pandoc") or _pypandoc_binary()
    script = (
        f'"{pandoc}" article.md -s --metadata title="Is B12 Good for Lower Back Pain?" -o article.html && '
        f'"{pandoc}" article.md --metadata title="Is B12 Good for Lower Back Pain?" -o article.epub && '
        f'"{sys.executable}" -m weasyprint article.html article.pdf && '
        f'"{pandoc}" article.md -t plain -o article.txt && '
        'espeak-ng -f article.txt -w article.wav && '
        'ffmpeg -loglevel error -y -i article.wav -ac 1 -b:a 64k article.mp3'
    )
    return timed(script, cwd=folder, shell=True, sample=sample)


def _pypandoc_binary() -> str:
    try:
        import pypandoc
        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        raise SystemExit("pandoc is needed for the peer chain: pip install pypandoc-binary (or apt-get install pandoc)")


def report_of(path: Path) -> dict:
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (median is reported)")
    parser.add_argument("--batch", type=int, default=100, help="articles in the batch measurement (e)")
    parser.add_argument("--voices", action="store_true", help="measure the speech engines instead")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="publish-bench-"))
    try:
        if args.voices:
            voices = measure_voices(work)
            (ROOT / "bench" / "voices.json").write_text(json.dumps(voices, indent=2) + "\n")
            print(json.dumps(voices, indent=2))
            return
        results = measure(work, args.runs, args.batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)


def measure(work: Path, runs: int, batch: int) -> dict:
    # warm the file system cache and the interpreter's byte code once, measuring memory; then time
    _, a_peak = cold_build(work, -1, sample=0.02)
    _, b_peak = peer_chain(work, -1, sample=0.02)
    # alternately: this machine's speed drifts over minutes, and a/b should compare the two at one speed
    a_runs, b_runs = [], []
    for n in range(runs):
        a_runs.append(cold_build(work, n))
        b_runs.append(peer_chain(work, n))
    a = statistics.median(t for t, _ in a_runs)
    b = statistics.median(t for t, _ in b_runs)

    # (c) nothing changed: rebuild into the first cold build's folders
    out, cache = work / "cold-out-0", work / "cold-cache-0"
    c = statistics.median(timed(publish(str(SOURCE), "--out", str(out), "--cache", str(cache), "--quiet"))[0]
                          for _ in range(runs))

    # (d) one sentence edited
    d_times, synthesized = [], []
    for n in range(runs):
        folder = work / f"edit-{n}"
        folder.mkdir()
        source = folder / SOURCE.name
        shutil.copy(SOURCE, source)
        build = publish(str(source), "--out", str(folder / "out"), "--cache", str(folder / "cache"), "--quiet")
        timed(build)
        source.write_text(SOURCE.read_text().replace(
            "Another accessible source of dietary B12.", f"Another accessible source of dietary B12, edit {n}."))
        t, _ = timed(build + ["--report", str(folder / "report.json")])
        d_times.append(t)
        audio = [s for s in report_of(folder / "report.json")["articles"][0]["stages"] if s["format"] == "audio"]
        synthesized.append(audio[0].get("synthesized") if audio else None)
    d = statistics.median(d_times)

    # (e) a batch of generated variants: each has its own title and one sentence of its own
    sources = work / "batch"
    sources.mkdir()
    text = SOURCE.read_text()
    for n in range(batch):
        variant = text.replace("title: Is B12 Good for Lower Back Pain?", f"title: Is B12 Good for Lower Back Pain? (variant {n})")
        variant = variant.replace("Easy to take at home.", f"Easy to take at home (variant {n}).")
        (sources / f"variant-{n:03d}.yaml").write_text(variant)
    e, e_peak = timed(publish(*sorted(str(p) for p in sources.glob("*.yaml")),
                              "--out", str(work / "batch-out"), "--cache", str(work / "batch-cache"), "--quiet"),
                      sample=0.5)

    peak = max(a_peak, e_peak)
    return {
        "runs": runs, "batch": batch, "cores": os.cpu_count(),
        "a_cold_build_s": round(a, 3), "b_peer_chain_s": round(b, 3), "a_over_b": round(a / b, 3),
        "c_no_change_s": round(c, 3), "c_over_a": round(c / a, 3),
        "d_one_sentence_s": round(d, 3), "d_over_a": round(d / a, 3), "d_utterances_synthesized": synthesized,
        "e_batch_s": round(e, 3), "e_over_100a": round(e / (batch * a), 3),
        "f_peak_mib": round(peak, 1), "f_peak_cold_mib": round(a_peak, 1), "f_peak_batch_mib": round(e_peak, 1),
        "b_peer_peak_mib": round(b_peak, 1),
        "targets": TARGETS,
    }


VOICE_ARTICLE = ROOT / "tests" / "fixtures" / "voice" / "folate.yaml"


def children_cpu() -> float:
    """CPU seconds (user and system) of every finished child process so far."""
    import resource
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_voices(work: Path) -> dict:
    sys.path.insert(0, str(ROOT))
    from pipeline.source import load_article
    from pipeline.stages.audio.engines import PIPER_NOISE, choose, config_of, length_scale, piper_program
    from pipeline.stages.audio.lexicon import load_lexicon
    from pipeline.stages.audio.script import write_script
    from pipeline.stages.audio.synth import Synthesizer
    from pipeline.theme import load_theme
    theme, article = load_theme(ROOT / "themes" / "default"), load_article(VOICE_ARTICLE)
    utterances, _ = write_script(article, load_lexicon(theme.root, "en").with_article(article), theme.organisation)
    lines = work / "sentences.txt"
    lines.write_text("\n".join(" ".join(u.spoken.split()) for u in utterances) + "\n")
    results = {}
    for engine in ("system", "piper"):
        choice = choose(engine, theme.voices, "en", theme.root)
        # publish's synthesis alone (helper processes included), then the engine's own program on the same lines
        started, cpu = time.perf_counter(), children_cpu() + time.process_time()
        synth = Synthesizer(choice, "en", theme.voice_rate, work / f"speech-{engine}")
        wavs = [synth.wav(u.spoken) for u in utterances]
        synth.close()
        ours = children_cpu() + time.process_time() - cpu
        ours_wall = time.perf_counter() - started
        if engine == "piper":
            own = [piper_program(), "--model", str(choice.model), "--config", str(config_of(choice.model)),
                   "--input-file", str(lines), "--output-file", str(work / "own.wav"),
                   "--length-scale", str(length_scale(theme.voice_rate)),
                   "--noise-scale", str(PIPER_NOISE), "--noise-w-scale", str(PIPER_NOISE)]
        else:
            own = ["espeak-ng", "-v", "en-us", "-s", str(theme.voice_rate), "-f", str(lines), "-w", str(work / "own.wav")]
        cpu = children_cpu()
        subprocess.run(own, check=True, capture_output=True)
        theirs = children_cpu() - cpu
        import wave
        speech = sum(wave.open(str(w)).getnframes() / wave.open(str(w)).getframerate() for w in wavs)
        # a cold narration of the article, and a one-sentence edit
        folder = work / f"article-{engine}"
        folder.mkdir()
        source = folder / VOICE_ARTICLE.name
        shutil.copy(VOICE_ARTICLE, source)
        build = publish(str(source), "--format", "audio", "--voice-engine", engine, "--out", str(folder / "out"),
                        "--cache", str(folder / "cache"), "--quiet", "--report", str(folder / "report.json"))
        cold, _ = timed(build)
        source.write_text(source.read_text().replace("Beans, peas and lentils.", "Beans, peas and chickpeas."))
        edit, _ = timed(build)
        results[engine] = {
            "voice": choice.voice, "speech_s": round(speech, 1),
            "cpu_s_per_minute_of_speech": round(ours / speech * 60, 2),
            "synthesis_wall_s": round(ours_wall, 2),
            "overhead_over_own_cli": round(ours / theirs - 1, 3),
            "cold_narration_s": round(cold, 2), "one_sentence_edit_s": round(edit, 2),
            "edit_synthesized": report_of(folder / "report.json")["articles"][0]["stages"][0]["synthesized"],
        }
    return results


def print_table(r: dict) -> None:
    rows = [
        ("(a) cold build, four outputs", f"{r['a_cold_build_s']:.2f} s", ""),
        ("(b) hand-scripted peer chain", f"{r['b_peer_chain_s']:.2f} s", ""),
        ("    a / b", f"{r['a_over_b']:.2f}", f"≤ {TARGETS['a_over_b']}"),
        ("(c) no-change rebuild / a", f"{r['c_over_a']:.1%}", f"≤ {TARGETS['c_over_a']:.0%}"),
        ("(d) one-sentence edit / a", f"{r['d_over_a']:.1%}", f"≤ {TARGETS['d_over_a']:.0%}"),
        ("    utterances synthesized", " ".join(map(str, r["d_utterances_synthesized"])), "1 in each run"),
        (f"(e) batch of {r['batch']} / {r['batch']} × a", f"{r['e_over_100a']:.1%}", f"≤ {TARGETS['e_over_100a']:.0%}"),
        ("(f) peak memory", f"{r['f_peak_mib']:.0f} MiB", f"≤ {TARGETS['f_peak_mib']} MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    values = max(len(r[1]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>{values}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>{values}}  {target}")


if __name__ == "__main__":
    main()
