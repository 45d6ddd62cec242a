/**
 * Reading WAV files into mono float samples: PCM 8/16/24/32-bit integers and 32/64-bit floats,
 * any number of channels (averaged), any sample rate (resampled linearly when asked).
 */
import { HttpError } from '../../runtime/index.ts';

export interface Audio {
  sampleRate: number;
  /** Mono samples in [-1, 1]. */
  samples: Float32Array;
}

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;

function bad(message: string): never {
  throw new HttpError(400, `not a usable WAV file: ${message}`);
}

/**
 * Decodes a WAV file.
 *
 * @example const { sampleRate, samples } = decodeWav(new Uint8Array(await c.req.arrayBuffer()));
 */
export function decodeWav(bytes: Uint8Array): Audio {
  if (bytes.length < 12) bad(`${bytes.length} bytes is too short for a RIFF header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const tag = (at: number) => String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  if (tag(0) !== 'RIFF' || tag(8) !== 'WAVE') bad('it does not start with RIFF....WAVE');
  let format = 0;
  let channels = 0;
  let sampleRate = 0;
  let bits = 0;
  let data: { start: number; size: number } | undefined;
  for (let pos = 12; pos + 8 <= bytes.length;) {
    const id = tag(pos);
    const size = view.getUint32(pos + 4, true);
    const start = pos + 8;
    if (id === 'fmt ') {
      if (size < 16 || start + size > bytes.length) bad('the fmt chunk is truncated');
      format = view.getUint16(start, true);
      channels = view.getUint16(start + 2, true);
      sampleRate = view.getUint32(start + 4, true);
      bits = view.getUint16(start + 14, true);
      // WAVE_FORMAT_EXTENSIBLE keeps the real format in the first two bytes of its sub-format GUID.
      if (format === EXTENSIBLE && size >= 26) format = view.getUint16(start + 24, true);
    } else if (id === 'data') {
      // Streaming writers leave the size unset; the data then runs to the end of the file.
      data = { start, size: Math.min(size, bytes.length - start) };
      if (format) break;
    }
    pos = start + size + (size & 1);
  }
  if (!format) bad('it has no fmt chunk');
  if (!data) bad('it has no data chunk');
  if (channels < 1) bad('it declares 0 channels');
  if (sampleRate < 1000 || sampleRate > 384000) bad(`sample rate ${sampleRate} Hz is out of range`);
  const supported = (format === PCM && [8, 16, 24, 32].includes(bits)) || (format === FLOAT && (bits === 32 || bits === 64));
  if (!supported) bad(`format ${format} with ${bits} bits per sample is not supported (PCM 8/16/24/32-bit or float 32/64-bit)`);

  const width = bits / 8;
  const frames = Math.floor(data.size / (width * channels));
  const read = (at: number): number => {
    if (format === FLOAT) return bits === 32 ? view.getFloat32(at, true) : view.getFloat64(at, true);
    switch (bits) {
      case 8: return (bytes[at] - 128) / 128;
      case 16: return view.getInt16(at, true) / 32768;
      case 24: return (((bytes[at + 2] << 24) | (bytes[at + 1] << 16) | (bytes[at] << 8)) >> 8) / 8388608;
      default: return view.getInt32(at, true) / 2147483648;
    }
  };
  const samples = new Float32Array(frames);
  for (let f = 0, at = data.start; f < frames; f++) {
    let sum = 0;
    for (let ch = 0; ch < channels; ch++, at += width) sum += read(at);
    samples[f] = sum / channels;
  }
  return { sampleRate, samples };
}

/** Linear resampling; enough for voice activity detection, not for listening. */
export function resample(audio: Audio, rate: number): Audio {
  if (audio.sampleRate === rate) return audio;
  const { samples } = audio;
  const ratio = audio.sampleRate / rate;
  const out = new Float32Array(Math.floor(samples.length / ratio));
  for (let i = 0; i < out.length; i++) {
    const x = i * ratio;
    const j = Math.floor(x);
    const next = j + 1 < samples.length ? samples[j + 1] : samples[j];
    out[i] = samples[j] + (next - samples[j]) * (x - j);
  }
  return { sampleRate: rate, samples: out };
}
