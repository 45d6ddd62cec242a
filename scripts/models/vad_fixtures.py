"""Synthesize the Silero VAD test fixtures with espeak-ng and sox.

Regenerate (from the repo root):  /usr/bin/python3 scripts/models/vad_fixtures.py
Needs: apt-get install -y espeak-ng sox
Writes functions/vad/test/{speech.wav, speech.json, silence.wav}, all 16 kHz mono
16-bit PCM. speech.wav = 1.0 s silence, utterance 1, 1.0 s silence, utterance 2,
0.5 s silence; speech.json records where each (trimmed) utterance was placed.
"""
import json
import os
import subprocess
import tempfile
import wave

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "functions", "vad", "test")
SR = 16000
VOICE, SPEED = "en-us", 160
UTTERANCES = ["Please turn on the kitchen light.", "Thank you."]
GAPS_BEFORE = [1.0, 1.0]  # seconds of silence before each utterance
TAIL = 0.5
PEAK = 0.5  # peak amplitude after normalization (-6 dBFS)


def synthesize(text):
    """espeak-ng -> sox (16 kHz mono 16-bit) -> float samples, edge silence trimmed."""
    with tempfile.TemporaryDirectory() as tmp:
        raw, resampled = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "16k.wav")
        subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(SPEED), "-w", raw, text], check=True)
        sox = ["sox", "--no-dither", raw, "-r", str(SR), "-c", "1", "-b", "16", resampled]
        subprocess.run(sox, check=True)
        with wave.open(resampled) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    x = x[loud[0] : loud[-1] + 1]
    return x * (PEAK / np.abs(x).max())


def write_wav(path, samples):
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.tobytes())


def main():
    os.makedirs(OUT, exist_ok=True)
    parts, placed, cursor = [], [], 0
    for gap, text in zip(GAPS_BEFORE, UTTERANCES):
        speech = synthesize(text)
        parts += [np.zeros(round(gap * SR)), speech]
        start = cursor + round(gap * SR)
        cursor = start + len(speech)
        placed.append({"text": text, "start": start / SR, "end": cursor / SR})
    parts.append(np.zeros(round(TAIL * SR)))
    audio = np.concatenate(parts)

    write_wav(os.path.join(OUT, "speech.wav"), audio)
    write_wav(os.path.join(OUT, "silence.wav"), np.zeros(SR))
    meta = {"sampleRate": SR, "duration": len(audio) / SR, "utterances": placed}
    with open(os.path.join(OUT, "speech.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
