"""The `system` speech engine's helper process: pyttsx3 (espeak-ng on Linux) speaking one utterance per request.

Forked from the build's process, which runs `run` in the child (engines.ForkedProcess), or, where that
cannot be, run as ``python -S -P -c HELPER_START AUDIO_FOLDER LANGUAGE VOICE RATE SIBLINGS [FOLDER]``
(see engines.HELPER_START; SIBLINGS: the pipes of the helpers it may fork, see below, as
``IN:OUT,IN:OUT``, or empty; FOLDER: where pyttsx3's binding of espeak-ng,
its module `_espeak.py`, is). It reads requests on standard input and
answers each with one line on standard output, its fields separated by tabs:
- at start, ``ready VOICE RESET PID`` (RESET: how each utterance starts
  from the same state, see below) or ``error ERRNO MESSAGE``;
- for each utterance, ``ok SAMPLES RATE FIRST LAST`` (RATE: the rate
  espeak-ng was set to, read back; FIRST, LAST: the first and last sample
  louder than silence, see speech_wav.speech_span, both empty if none is)
  or ``error ERRNO MESSAGE`` (ERRNO: the system's error number when the WAV
  file could not be written, else empty).
An utterance is asked for with a line ``TEXT_BYTES PATH_BYTES`` followed
by that many bytes of its text (UTF-8) and of the path of the WAV file to
write: sizes rather than a quoting, so that any text and any path pass as
they are, read with no parser at all. A line ``fork N`` (no answer here)
forks a sibling: a copy of this helper as it was set up, which reads and
answers on the Nth pair of pipes of SIBLINGS instead, starting with its
own ``ready`` line. A build runs a helper per core; the second costs a
fork, not a start (some 40 ms of CPU, see below).

Why a process of its own, spoken to through pipes:
- the build can bound every utterance's time and end a stuck engine (a
  full disk once left pyttsx3's espeak loop waiting for ever inside a
  callback that had raised);
- on Linux, espeak-ng runs in its *synchronous* mode here, where a setting
  is applied when it is made. pyttsx3 starts espeak-ng in its queued mode, in
  which ``espeak_Cancel()`` (called by pyttsx3 at the end of each run) drops
  a rate change still waiting in the queue: now and then a whole narration
  came out at pyttsx3's default 200 words a minute. The rate is read back
  from the engine before every utterance. In the queued mode, moreover, the
  same text came out differently from one run to the next (a race in
  pyttsx3's loop); synchronously it is the same every time.
- pyttsx3's own loop writes the WAV file inside espeak-ng's callback, where an
  error cannot stop the loop; here the callback only collects samples, and
  the file is written afterwards, where an error (a full disk) is reported.

Speech is a pure function of its text: every utterance is spoken from the
state espeak-ng was in once it was set up, whatever was spoken before. What
espeak-ng 1.51 carries from one utterance to the next lives in the
library's static data: the phase of the pitch flutter (a counter that is
static inside the function advancing the pitch, reachable through no API)
and the wave generator's phase, pitch and formant state. Its heap holds
nothing that lasts: the translator's word-to-word state is cleared at the
start of every clause. So the library's writable data (its `.data` and
`.bss`, found from its program headers) is copied once set up and copied
back before every utterance, a memcpy of some 170 KB. Checked on the 231
utterances of four articles, spoken forwards, backwards and shuffled: each
is byte for byte what a freshly started engine speaks.
The helper checks at start that this restores everything that matters (a
probe spoken before and after another sentence must come out the same);
should it not, on another version of espeak-ng, each utterance is spoken
in a fresh fork of the set-up helper instead, which is pure but costs a
process per utterance (1 to 2 ms of CPU on a small virtual machine: with
utterances of some 5 ms of synthesis, more than the 10 % this engine may
cost over espeak-ng's own program).

A build starts a helper per core, and what a helper costs to start is a
share of this engine's cost over espeak-ng's own program (the benchmark's
`--voices`). A forked helper imports nothing (see engines.SystemEngine);
one started as a program imports as little as it can. It is imported from its
folder by itself, not as a module of the package, so that it imports
nothing but a few modules of the standard library, the speech cache's file
format (speech_wav.py, beside it) and pyttsx3's binding of espeak-ng: the
package's own imports (the document model, the theme) cost some 150 ms of
CPU. It is started without Python's site module, told where the binding
is instead: the `.pth` files of an environment may import anything (the
editable install's finder, certificates), 35 ms here. The binding is
imported by itself, from its folder, not through the pyttsx3 package,
whose `__init__` imports pyttsx3's engine and, through it, tracebacks,
tokenizer and weak references (some 15 ms); and requests and answers are
sizes and tab-separated fields, not JSON (whose decoder brings the regular
expressions: 11 ms), and the WAV file is written here (not with `wave`),
already sealed with its checksum (so the build reads it once, to check its
length, and never hashes it).
"""
from __future__ import annotations

import ctypes
import gc
import os
import sys

if __package__:             # imported through the package (the tests)
    from . import speech_wav
else:                       # the helper: this folder is on its module path, the package is not imported
    import speech_wav

RATE = 22050            # espeak-ng's sample rate
WAV_FORMAT = speech_wav.pcm_format(RATE)
# Spoken at start to check that restoring the library's data restores everything that matters (see above)
PROBE, OTHER = "Two.", "Three, four."


def _answer(*fields: object) -> None:
    """One line on standard output, written at once (unbuffered: a forked child answers on the same pipe)."""
    os.write(1, ("\t".join(" ".join(str(field).split()) for field in fields) + "\n").encode("utf-8"))


class _Phdr(ctypes.Structure):             # Elf64_Phdr
    _fields_ = [("p_type", ctypes.c_uint32), ("p_flags", ctypes.c_uint32), ("p_offset", ctypes.c_uint64),
                ("p_vaddr", ctypes.c_uint64), ("p_paddr", ctypes.c_uint64), ("p_filesz", ctypes.c_uint64),
                ("p_memsz", ctypes.c_uint64), ("p_align", ctypes.c_uint64)]


class _DlPhdrInfo(ctypes.Structure):      # struct dl_phdr_info (its first four fields)
    _fields_ = [("dlpi_addr", ctypes.c_uint64), ("dlpi_name", ctypes.c_char_p),
                ("dlpi_phdr", ctypes.POINTER(_Phdr)), ("dlpi_phnum", ctypes.c_uint16)]


class _DlInfo(ctypes.Structure):          # Dl_info, for dladdr
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


PT_LOAD, PT_GNU_RELRO, PF_W = 1, 0x6474E552, 2


def writable_data(function) -> tuple[str, list[tuple[int, int]]]:
    """The file of the shared library that holds *function*, and the address ranges of its writable data
    (`.data`, `.bss`): its writable loadable segment, less the part the loader made read-only after
    relocation (RELRO). Empty where the C library cannot say (not glibc, or not 64-bit ELF)."""
    if ctypes.sizeof(ctypes.c_void_p) != 8:
        return "", []
    try:
        libc = ctypes.CDLL(None)
        dladdr, iterate = libc.dladdr, libc.dl_iterate_phdr
    except (OSError, AttributeError):
        return "", []
    where = _DlInfo()
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    if not dladdr(ctypes.cast(function, ctypes.c_void_p), ctypes.byref(where)) or not where.dli_fname:
        return "", []
    library = os.path.realpath(where.dli_fname.decode())
    page = os.sysconf("SC_PAGE_SIZE")
    found: list[tuple[int, int]] = []

    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(_DlPhdrInfo), ctypes.c_size_t, ctypes.c_void_p)
    def visit(info, size, data):
        info = info.contents
        if not info.dlpi_name or os.path.realpath(info.dlpi_name.decode()) != library:
            return 0
        headers = [info.dlpi_phdr[n] for n in range(info.dlpi_phnum)]
        read_only = [(info.dlpi_addr + h.p_vaddr // page * page, info.dlpi_addr + (h.p_vaddr + h.p_memsz) // page * page)
                     for h in headers if h.p_type == PT_GNU_RELRO]
        for h in headers:
            if h.p_type == PT_LOAD and h.p_flags & PF_W:
                start, end = info.dlpi_addr + h.p_vaddr, info.dlpi_addr + h.p_vaddr + h.p_memsz
                for first, last in read_only:
                    if first <= start < last:
                        start = last
                if start < end:
                    found.append((start, end))
        return 1                              # found: stop
    iterate.argtypes = [type(visit), ctypes.c_void_p]
    iterate(visit, None)
    return library, found


class LibraryState:
    """A copy of a shared library's writable data, to put back: the library as it was when the copy was made."""

    def __init__(self, function):
        self.library, self.ranges = writable_data(function)      # (the library's file, its data's addresses)
        self.copies = [ctypes.string_at(start, end - start) for start, end in self.ranges]

    def restore(self) -> None:
        for (start, _), copy in zip(self.ranges, self.copies):
            ctypes.memmove(start, copy, len(copy))

    def unchanged(self) -> bool:
        """Whether the library's writable data is still what was copied (something found to copy)."""
        return bool(self.ranges) and all(ctypes.string_at(start, end - start) == copy
                                         for (start, end), copy in zip(self.ranges, self.copies))


def espeak_voices(espeak) -> list[tuple[str, list[str]]]:
    """(id, languages) of each voice espeak-ng has, read as pyttsx3's espeak driver reads them (without
    starting a pyttsx3 engine: its driver's imports cost the helper some 30 ms of CPU at every start)."""
    return [(voice.identifier.decode("utf-8").lower(),
             [voice.languages[1:].decode("utf-8", errors="ignore")] if voice.languages else [])
            for voice in espeak.ListVoices(None)]


def choose_voice(available: list[tuple[str, list[str]]], language: str, wanted: str) -> str | None:
    """The id of the voice called *wanted* (as espeak-ng names it, e.g. `en-us`), else one for the language."""
    wanted = (wanted or language).lower()
    for voice, _ in available:
        if voice == wanted or voice.endswith("/" + wanted):
            return voice
    for voice, languages in available:     # a voice named by its language (`en-gb` is the voice gmw/en)
        if wanted in [code.lower() for code in languages]:
            return voice
    for voice, languages in available:
        if wanted.split("-")[0] in [code.lower() for code in languages]:
            return voice
    return None


class EspeakSpeaker:
    """espeak-ng through pyttsx3's binding, in synchronous mode: each Synth call returns with all its sound."""

    def __init__(self, language: str, wanted: str, rate: int, binding=None, known_pure: bool = False):
        """*binding*: pyttsx3's module `_espeak`, if it was imported already (see main). *known_pure*: restoring
        this library's data was found pure before (engines.restoring_known_pure): the check is not made again."""
        if binding is None:
            from pyttsx3.drivers import _espeak as binding
        _espeak = self.espeak = binding
        # synchronous mode (pyttsx3's own driver would start espeak-ng in its queued mode)
        if _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 1000) == -1:
            raise RuntimeError("espeak-ng could not be initialised")
        self.voice = choose_voice(espeak_voices(_espeak), language, wanted)
        if self.voice is None:
            raise LookupError(f"espeak-ng has no voice for `{wanted or language}`")
        self.rate = rate
        self.pcm = bytearray()
        self.failure: BaseException | None = None
        _espeak.SetSynthCallback(self._collect)          # in place of pyttsx3's driver, which writes the file
        self._settings()
        # Speaking nothing once makes espeak-ng's text decoder and frees what its set-up left for the first
        # text (its table of SSML names): after that, a text only allocates what it frees itself, so the
        # copy of the library's data never points at freed memory.
        self._synth("")
        self.state = LibraryState(_espeak.dll.espeak_Synth)
        self.reset = "restored" if self.state.ranges and (known_pure or self._restoring_is_pure()) else "forked"

    def _restoring_is_pure(self) -> bool:
        """Whether a probe comes out the same before and after another sentence, the library's data restored."""
        self.state.restore()
        first = self._synth(PROBE)
        self.state.restore()
        self._synth(OTHER)
        self.state.restore()
        return self._synth(PROBE) == first

    def _settings(self) -> None:
        """Voice and rate, applied at once (synchronous mode) and read back: a wrong rate is never spoken."""
        self.espeak.SetVoiceByName(self.voice.encode())
        self.espeak.SetParameter(self.espeak.RATE, self.rate, 0)
        actual = self.espeak.dll.espeak_GetParameter(self.espeak.RATE, 1)
        if actual != self.rate:
            raise RuntimeError(f"espeak-ng kept a rate of {actual} words a minute instead of {self.rate}")

    def _collect(self, wav, count, events) -> int:
        try:
            if count > 0:
                # copied once, into pcm (string_at made a bytes object of it first)
                self.pcm += ctypes.cast(wav, ctypes.POINTER(ctypes.c_char * (count * 2))).contents
            return 0
        except BaseException as exc:          # an error here must stop espeak-ng, not vanish in ctypes
            self.failure = exc
            return 1                          # espeak-ng: abort this synthesis

    def speak(self, text: str) -> tuple[bytearray, int]:
        """The utterance's samples, and the rate the engine was set to when it spoke them (read back).
        Voice and rate were set once, in synchronous mode, where nothing can drop them, and are part of
        the state every utterance starts from (restored here, or that of the forked child)."""
        if self.reset == "restored":
            self.state.restore()
        fault = os.environ.get("PUBLISH_TEST_WRONG_RATE", "")     # tests: as if the rate had been dropped
        if fault and not fault.endswith("!"):
            self.espeak.SetParameter(self.espeak.RATE, int(fault), 0)
        rate = self.espeak.dll.espeak_GetParameter(self.espeak.RATE, 1)
        if fault.endswith("!"):                                   # tests: unseen by the read-back, only by length
            self.espeak.SetParameter(self.espeak.RATE, int(fault[:-1]), 0)
        return self._synth(text), rate

    def _synth(self, text: str) -> bytearray:
        """The samples of *text* (a buffer of their own: the next call collects into a new one)."""
        self.pcm, self.failure = bytearray(), None
        flags = self.espeak.ENDPAUSE | self.espeak.CHARS_UTF8
        if text.startswith("<speak>"):        # a phrase in another language, in a <voice> of its own (script.py)
            flags |= self.espeak.SSML
        status = self.espeak.Synth(text.encode("utf-8"), flags=flags)
        if self.failure:
            raise self.failure
        if status != 0:
            raise RuntimeError(f"espeak-ng failed to speak (error {status})")
        return self.pcm


def main(argv: list[str]) -> int:
    """The helper started as a program (see the module's docstring for *argv*)."""
    binding = None
    try:
        if argv[4:]:                          # pyttsx3's binding, imported by itself (see above)
            sys.path.insert(0, argv[4])
            import _espeak as binding
    except Exception as exc:                      # the build reports it, naming the engine
        _answer("error", "", f"{type(exc).__name__}: {exc}")
        return 1
    siblings = [tuple(int(fd) for fd in pair.split(":")) for pair in argv[3].split(",") if pair]
    return run(argv[0], argv[1], int(argv[2]), siblings, binding, sys.stdin.buffer)


def run(language: str, wanted: str, rate: int, siblings: list[tuple[int, int]], binding, requests,
        known_pure: bool = False) -> int:
    """Set espeak-ng up, say so, and answer the *requests* (a binary stream) until they end. Also the whole of
    a helper forked from the build's own process (engines.ForkedProcess), which has the *binding* loaded."""
    _name_process(b"pub-speech")
    try:
        speaker = EspeakSpeaker(language, wanted, rate, binding, known_pure)
    except Exception as exc:                      # the build reports it, naming the engine
        _answer("error", "", f"{type(exc).__name__}: {exc}")
        return 1
    if speaker.reset == "forked":
        gc.freeze()         # the children share this process's memory: the collector must not touch (copy) it
    return serve(speaker, requests, siblings)


def _name_process(name: bytes) -> None:
    """The name top and ps show for this process (Linux): a helper is told from the build's other processes."""
    try:
        ctypes.CDLL(None).prctl(15, name)       # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def serve(speaker: EspeakSpeaker, requests, siblings: list[tuple[int, int]]) -> int:
    """Say so, then answer each request read from *requests* until they end."""
    _answer("ready", speaker.voice, speaker.reset, os.getpid())
    forked = []
    while header := requests.readline():
        if header.startswith(b"fork "):
            forked.append(_fork_sibling(speaker, siblings, int(header.split()[1])))
            continue
        text_bytes, path_bytes = (int(size) for size in header.split())
        text, wav = requests.read(text_bytes).decode("utf-8"), os.fsdecode(requests.read(path_bytes))
        # An utterance with a phrase in another language switches voice inside espeak-ng, which loads that
        # voice into memory the library's restored data would no longer match (it crashed): it is spoken in a
        # child, like every utterance where restoring is not possible.
        if speaker.reset == "restored" and not text.startswith("<speak>"):
            _speak_one(speaker, text, wav)
        else:
            # The fallback: a child forked from this process as it was before any speech. In synchronous
            # mode espeak-ng runs no thread of its own, so forking it is safe.
            child = os.fork()
            if child == 0:
                gc.disable()
                os._exit(_speak_one(speaker, text, wav))
            _, status = os.waitpid(child, 0)
            if os.waitstatus_to_exitcode(status) < 0:
                _answer("error", "", f"espeak-ng crashed (signal {-os.waitstatus_to_exitcode(status)})")
        os.environ.pop("PUBLISH_TEST_WRONG_RATE", None)           # the injected fault hits the first utterance only
    for child in forked:                          # the siblings end when the build closes their pipes
        os.waitpid(child, 0)
    return 0


def _fork_sibling(speaker: EspeakSpeaker, siblings: list[tuple[int, int]], number: int) -> int:
    """Fork the sibling that answers on the pipes siblings[number] and return its process id. It starts from
    this helper's state as it was set up, restored before every utterance (or forked from), as here."""
    requests, answers = siblings[number]
    child = os.fork()
    if child == 0:
        status = 1
        try:
            os.dup2(requests, 0)
            os.dup2(answers, 1)
            for fd in {fd for pair in siblings for fd in pair}:   # the others' pipes: their ends are theirs
                os.close(fd)
            # its requests read afresh: what this helper had read ahead on its own input is not for it
            status = serve(speaker, open(0, "rb"), [])
        finally:
            os._exit(status)
    os.close(requests)
    os.close(answers)
    siblings[number] = ()                         # (closed: another sibling must not close what reuses the numbers)
    return child


def _speak_one(speaker: EspeakSpeaker, text: str, wav: str) -> int:
    """Speak *text* into the WAV file *wav* (a temporary name of the build's, which it moves into the cache) and
    answer; the return value is the exit status of a forked child."""
    try:
        pcm, rate = speaker.speak(text)
        with open(wav, "wb") as out:              # a file of the speech cache: sealed with its checksum
            out.write(speech_wav.sealed_header(WAV_FORMAT, pcm))
            out.write(pcm)
    except Exception as exc:
        _answer("error", getattr(exc, "errno", None) or "", f"{type(exc).__name__}: {exc}")
        return 1
    span = speech_wav.speech_span(pcm)
    _answer("ok", len(pcm) // 2, rate, *(span or ("", "")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
