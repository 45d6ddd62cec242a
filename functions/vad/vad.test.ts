import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorOf, openFunctionDir } from 'modelfn/testing';
import { decodeWav, resample } from './wav.ts';

const fixture = (name: string) => readFileSync(new URL(`./test/${name}`, import.meta.url));
const truth = JSON.parse(fixture('speech.json').toString()) as { utterances: { start: number; end: number }[] };
const wav = (body: Uint8Array, type = 'audio/wav'): RequestInit => ({ method: 'POST', headers: { 'Content-Type': type }, body: body as Uint8Array<ArrayBuffer> });

/** Builds a WAV file: PCM of the given bit depth, or 32-bit float. */
function makeWav(samples: number[][], rate: number, bits: 8 | 16 | 24 | 32, float = false): Buffer {
  const channels = samples.length;
  const frames = samples[0].length;
  const width = bits / 8;
  const data = Buffer.alloc(frames * channels * width);
  for (let f = 0; f < frames; f++) {
    for (let ch = 0; ch < channels; ch++) {
      const v = samples[ch][f];
      const at = (f * channels + ch) * width;
      if (float) data.writeFloatLE(v, at);
      else if (bits === 8) data.writeUInt8(Math.round(v * 127) + 128, at);
      else if (bits === 16) data.writeInt16LE(Math.round(v * 32767), at);
      else if (bits === 24) data.writeIntLE(Math.round(v * 8388607), at, 3);
      else data.writeInt32LE(Math.round(v * 2147483647), at);
    }
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(float ? 3 : 1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * width, 28);
  header.writeUInt16LE(channels * width, 32);
  header.writeUInt16LE(bits, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

describe('vad', () => {
  it('finds each utterance of a real recording within 100 ms', async () => {
    const { app } = await openFunctionDir('functions/vad');
    const res = await app.request('/segments', wav(fixture('speech.wav')));
    expect(res.status).toBe(200);
    const body = (await res.json()) as { sample_rate: number; duration: number; segments: { start: number; end: number }[] };
    expect(body.sample_rate).toBe(16000);
    expect(body.duration).toBeCloseTo(4.752, 2);
    expect(body.segments).toHaveLength(truth.utterances.length);
    body.segments.forEach((s, i) => {
      expect(Math.abs(s.start - truth.utterances[i].start)).toBeLessThan(0.1);
      expect(Math.abs(s.end - truth.utterances[i].end)).toBeLessThan(0.1);
    });
  });

  it('finds no speech in silence', async () => {
    const { app } = await openFunctionDir('functions/vad');
    const body = (await (await app.request('/segments', wav(fixture('silence.wav')))).json()) as { segments: unknown[] };
    expect(body.segments).toEqual([]);
  });

  it('accepts other sample rates by resampling (the same speech at 48 kHz stereo float)', async () => {
    const { app } = await openFunctionDir('functions/vad');
    const speech = decodeWav(fixture('speech.wav'));
    const up = Array.from(resample(speech, 48000).samples);
    const res = await app.request('/segments', wav(makeWav([up, up], 48000, 32, true), 'audio/x-wav'));
    const body = (await res.json()) as { sample_rate: number; segments: { start: number }[] };
    expect(body.sample_rate).toBe(48000);
    expect(body.segments).toHaveLength(2);
    expect(Math.abs(body.segments[0].start - truth.utterances[0].start)).toBeLessThan(0.1);
  });

  it('refuses what is not a usable WAV, or not audio, with a clear 4xx', async () => {
    const { app } = await openFunctionDir('functions/vad');
    expect(await errorOf(await app.request('/segments', wav(Buffer.from('hello'))))).toEqual({ status: 400, error: expect.stringContaining('not a usable WAV file') });
    const truncated = fixture('speech.wav').subarray(0, 30);
    expect((await errorOf(await app.request('/segments', wav(truncated)))).status).toBe(400);
    const json = await errorOf(await app.request('/segments', wav(Buffer.from('{}'), 'application/json')));
    expect(json.status).toBe(415);
    expect(json.error).toContain('audio/wav');
    // 11 minutes of 8-bit audio at 1 kHz: a small upload, too long to analyse in one request.
    const long = await errorOf(await app.request('/segments', wav(makeWav([new Array(660_000).fill(0)], 1000, 8))));
    expect(long).toEqual({ status: 413, error: 'the recording lasts 660 s; at most 600 s per request' });
    const threshold = await errorOf(await app.request('/segments?threshold=2', wav(fixture('silence.wav'))));
    expect(threshold).toEqual({ status: 400, error: expect.stringContaining('threshold') });
  });
});

describe('decodeWav', () => {
  const tone = Array.from({ length: 160 }, (_, i) => Math.sin(i / 5) * 0.5);
  for (const bits of [8, 16, 24, 32] as const) {
    it(`reads ${bits}-bit PCM`, () => {
      const audio = decodeWav(makeWav([tone], 16000, bits));
      expect(audio.sampleRate).toBe(16000);
      expect(audio.samples).toHaveLength(160);
      audio.samples.forEach((v, i) => expect(v).toBeCloseTo(tone[i], bits === 8 ? 1 : 3));
    });
  }
  it('averages channels', () => {
    const audio = decodeWav(makeWav([tone, tone.map(() => 0)], 8000, 16));
    expect(audio.samples[10]).toBeCloseTo(tone[10] / 2, 3);
  });
  it('names an unsupported format', () => {
    const bad = makeWav([tone], 16000, 16);
    bad.writeUInt16LE(2, 20);
    expect(() => decodeWav(bad)).toThrow(/format 2 with 16 bits per sample is not supported/);
  });
});

describe('a long upload whose client leaves', () => {
  it('stops running the model once the client has gone (the loop honours the request signal)', async () => {
    const { app } = await openFunctionDir(new URL('.', import.meta.url).pathname);
    // Ten minutes of 16 kHz audio: 18,750 model runs if it went to the end.
    const frames = 16000 * 600;
    const noise = Array.from({ length: frames }, (_, i) => Math.sin(i / 7) * 0.1);
    const body = makeWav([noise], 16000, 16);
    const runs = async () => Number(/modelfn_inference_duration_seconds_count\{model="vad"\} (\d+)/.exec(await (await app.request('/metrics')).text())?.[1] ?? 0);
    const client = new AbortController();
    const answer = app.request('/segments', { ...wav(body), signal: client.signal });
    // Wait until the loop is under way, then leave.
    const started = Date.now();
    while ((await runs()) < 50 && Date.now() - started < 30_000) await new Promise((r) => setTimeout(r, 10));
    client.abort();
    expect((await answer).status).toBe(499);
    const atAbort = await runs();
    await new Promise((r) => setTimeout(r, 300));
    // At most the run under way when the client left finishes; nothing after it.
    expect((await runs()) - atAbort).toBeLessThanOrEqual(1);
    expect(atAbort).toBeLessThan(18_750);
  });
});
