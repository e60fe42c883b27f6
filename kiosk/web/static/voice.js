// Push-to-talk: the microphone through Web Audio to a 16 kHz mono 16-bit WAV, encoded
// here (what the voice-ai model reads), base64 for the JSON API.  Recording stops by
// itself after a pause that follows speech, when stop() is called, or at maxSeconds.
"use strict";
const Voice = {
  RATE: 16000,
  SPEECH_RMS: 0.015,    // louder than this is speech (about -36 dBFS)
  PAUSE_MS: 900,        // this much quiet after speech ends the recording
  session: null,

  supported() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.AudioContext &&
              window.AudioWorkletNode && window.OfflineAudioContext);
  },

  // Records until a pause after speech, stop(), or maxSeconds; resolves to
  // {audio: base64 WAV, seconds, heardSpeech}.  onState("listening" | "speech") reports progress.
  async record({maxSeconds = 8, onState} = {}) {
    if (this.session) throw new Error("already recording");
    const stream = await navigator.mediaDevices.getUserMedia(
      {audio: {channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true}});
    const ctx = new AudioContext();
    const session = {stream, ctx, blocks: [], stopped: false};
    this.session = session;
    try {
      await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
      const source = ctx.createMediaStreamSource(stream);
      const tap = new AudioWorkletNode(ctx, "pcm-tap");
      const quiet = ctx.createGain();
      quiet.gain.value = 0;  // the tap must be pulled by the graph, but nothing is played back
      source.connect(tap).connect(quiet).connect(ctx.destination);
      await ctx.resume();
      if (onState) onState("listening");
      await new Promise(resolve => {
        let heard = false, lastLoud = 0;
        const started = performance.now();
        session.finish = resolve;
        tap.port.onmessage = ev => {
          const block = ev.data;
          session.blocks.push(block);
          let sum = 0;
          for (let i = 0; i < block.length; i++) sum += block[i] * block[i];
          const now = performance.now();
          if (Math.sqrt(sum / block.length) > this.SPEECH_RMS) {
            if (!heard && onState) onState("speech");
            heard = true;
            lastLoud = now;
          }
          session.heard = heard;
          if ((heard && now - lastLoud > this.PAUSE_MS) || now - started > maxSeconds * 1000) resolve();
        };
        session.timer = setTimeout(resolve, maxSeconds * 1000 + 500);
      });
      clearTimeout(session.timer);
      const samples = this.concat(session.blocks);
      const pcm = await this.resample(samples, ctx.sampleRate);
      return {audio: this.base64(this.wav(pcm)), seconds: pcm.length / this.RATE, heardSpeech: !!session.heard};
    } finally {
      this.release(session);
    }
  },

  stop() {
    if (this.session && this.session.finish) this.session.finish();
  },

  // Drop the microphone at once (logout, idle timeout): nothing is kept or sent.
  cancel() {
    const s = this.session;
    if (!s) return;
    s.blocks = [];
    if (s.finish) s.finish();
    this.release(s);
  },

  release(session) {
    if (!session || session.stopped) return;
    session.stopped = true;
    session.stream.getTracks().forEach(t => t.stop());
    session.ctx.close().catch(() => {});
    if (this.session === session) this.session = null;
  },

  concat(blocks) {
    const out = new Float32Array(blocks.reduce((n, b) => n + b.length, 0));
    let at = 0;
    for (const b of blocks) { out.set(b, at); at += b.length; }
    return out;
  },

  // the browser's own resampler (band-limited), to 16 kHz
  async resample(samples, rate) {
    if (!samples.length) return new Float32Array(0);
    if (rate === this.RATE) return samples;
    const length = Math.max(1, Math.round(samples.length * this.RATE / rate));
    const off = new OfflineAudioContext(1, length, this.RATE);
    const buffer = off.createBuffer(1, samples.length, rate);
    buffer.copyToChannel(samples, 0);
    const src = off.createBufferSource();
    src.buffer = buffer;
    src.connect(off.destination);
    src.start();
    return (await off.startRendering()).getChannelData(0);
  },

  // RIFF/WAVE, PCM, mono, 16 kHz, 16-bit little endian
  wav(samples) {
    const view = new DataView(new ArrayBuffer(44 + samples.length * 2));
    const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
    text(0, "RIFF");
    view.setUint32(4, 36 + samples.length * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    view.setUint32(16, 16, true);            // fmt chunk size
    view.setUint16(20, 1, true);             // PCM
    view.setUint16(22, 1, true);             // mono
    view.setUint32(24, this.RATE, true);
    view.setUint32(28, this.RATE * 2, true); // bytes per second
    view.setUint16(32, 2, true);             // block align
    view.setUint16(34, 16, true);            // bits per sample
    text(36, "data");
    view.setUint32(40, samples.length * 2, true);
    for (let i = 0; i < samples.length; i++) {
      const s = Math.max(-1, Math.min(1, samples[i]));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return view.buffer;
  },

  base64(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  },
};
