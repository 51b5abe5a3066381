"""The `system` speech engine's helper process: pyttsx3 (espeak-ng on Linux) speaking one utterance per request.

Run as ``python -m pipeline.stages.audio.system_voice LANGUAGE VOICE RATE``;
it answers on standard output, one JSON line each: first
``{"voice": id, "rate": wpm}`` (or ``{"error": …}``), then one line for
every request read from standard input (``{"text": …, "wav": path}``):
``{"samples": n}`` or ``{"error": …}``.

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
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import sys
import wave

RATE = 22050            # espeak-ng's sample rate


def _answer(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def choose_voice(available, language: str, wanted: str) -> str | None:
    """The id of the voice called *wanted* (as espeak-ng names it, e.g. `en-us`), else one for the language."""
    wanted = (wanted or language).lower()
    for voice in available:
        if voice.id.lower() == wanted or voice.id.lower().endswith("/" + wanted):
            return voice.id
    for voice in available:             # a voice named by its language (`en-gb` is the voice gmw/en)
        if wanted in [str(code).lower() for code in voice.languages]:
            return voice.id
    for voice in available:
        if wanted.split("-")[0] in [str(code).lower() for code in voice.languages]:
            return voice.id
    return None


class EspeakSpeaker:
    """espeak-ng through pyttsx3's binding, in synchronous mode: each Synth call returns with all its sound."""

    def __init__(self, language: str, wanted: str, rate: int):
        import pyttsx3
        from pyttsx3.drivers import _espeak
        from pyttsx3.drivers import espeak as driver
        self.espeak = _espeak
        if _espeak.Initialize(_espeak.AUDIO_OUTPUT_SYNCHRONOUS, 1000) == -1:
            raise RuntimeError("espeak-ng could not be initialised")
        # pyttsx3 would initialise espeak-ng again, in its queued mode: tell its driver that it is done
        driver.EspeakDriver._moduleInitialized = True
        driver.EspeakDriver._defaultVoice = "en"
        engine = pyttsx3.init("espeak")
        self.voice = choose_voice(engine.getProperty("voices"), language, wanted)
        if self.voice is None:
            raise LookupError(f"espeak-ng has no voice for `{wanted or language}`")
        self.rate = rate
        self.pcm = bytearray()
        self.failure: BaseException | None = None
        _espeak.SetSynthCallback(self._collect)          # in place of pyttsx3's driver, which writes the file
        self._settings()

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
                self.pcm += ctypes.string_at(wav, count * 2)
            return 0
        except BaseException as exc:          # an error here must stop espeak-ng, not vanish in ctypes
            self.failure = exc
            return 1                          # espeak-ng: abort this synthesis

    def speak(self, text: str) -> tuple[bytes, int]:
        """The utterance's samples, and the rate the engine was set to when it spoke them (read back).
        Voice and rate were set before the fork, in synchronous mode, where nothing can drop them."""
        fault = os.environ.get("PUBLISH_TEST_WRONG_RATE", "")     # tests: as if the rate had been dropped
        if fault and not fault.endswith("!"):
            self.espeak.SetParameter(self.espeak.RATE, int(fault), 0)
        rate = self.espeak.dll.espeak_GetParameter(self.espeak.RATE, 1)
        if fault.endswith("!"):                                   # tests: unseen by the read-back, only by length
            self.espeak.SetParameter(self.espeak.RATE, int(fault[:-1]), 0)
        self.pcm, self.failure = bytearray(), None
        flags = self.espeak.ENDPAUSE | self.espeak.CHARS_UTF8
        if text.startswith("<speak>"):        # a phrase in another language, in a <voice> of its own (script.py)
            flags |= self.espeak.SSML
        status = self.espeak.Synth(text.encode("utf-8"), flags=flags)
        if self.failure:
            raise self.failure
        if status != 0:
            raise RuntimeError(f"espeak-ng failed to speak (error {status})")
        return bytes(self.pcm), rate


def main(argv: list[str]) -> int:
    language, wanted, rate = argv[0], argv[1], int(argv[2])
    try:
        speaker = EspeakSpeaker(language, wanted, rate)
    except Exception as exc:                      # the build reports it, naming the engine
        _answer({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _answer({"voice": speaker.voice, "rate": speaker.rate})
    gc.freeze()             # the children share this process's memory: the collector must not touch (copy) it
    for line in sys.stdin:
        request = json.loads(line)
        # Each utterance is spoken in a child forked from this process as it was before any speech, so
        # that what was spoken before cannot change it (espeak-ng keeps state between utterances that
        # moved some of them by a few samples: setting the voice again does not reset it). In synchronous
        # mode espeak-ng runs no thread of its own, so forking it is safe; a fork costs about a millisecond.
        sys.stdout.flush()
        child = os.fork()
        if child == 0:
            gc.disable()
            os._exit(_speak_one(speaker, request))
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) < 0:
            _answer({"error": f"espeak-ng crashed (signal {-os.waitstatus_to_exitcode(status)})"})
        os.environ.pop("PUBLISH_TEST_WRONG_RATE", None)           # the injected fault hits the first utterance only
    return 0


def _speak_one(speaker: EspeakSpeaker, request: dict) -> int:
    """Speak one request into its WAV file and answer; the return value is the child's exit status."""
    tmp = f"{request['wav']}.part"
    try:
        pcm, rate = speaker.speak(request["text"])
        with wave.open(tmp, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(pcm)
        os.replace(tmp, request["wav"])
    except Exception as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        _answer({"error": f"{type(exc).__name__}: {exc}", "errno": getattr(exc, "errno", None)})
        return 1
    _answer({"samples": len(pcm) // 2, "rate": rate})
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
