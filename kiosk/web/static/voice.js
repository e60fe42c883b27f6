// Push-to-talk: the microphone through Web Audio to a 16 kHz mono 16-bit WAV, encoded
// here (what the voice-ai model reads), base64 for the JSON API.  Recording stops by
// itself after a pause that follows speech, when stop() is called, or at maxSeconds.
// Only the utterance is sent (with a short margin): long stretches of silence around it
// make the offline recogniser hear words that were never said (measured with espeak-ng
// through Chromium's fake microphone: "where is the pool please" for "bring me two
// towels" untrimmed, the right words trimmed).
"use strict";
const Voice = {
  RATE: 16000,
  SPEECH_RMS: 0.015,    // louder than this is speech (about -36 dBFS)
  PAUSE_MS: 900,        // this much quiet after speech ends the recording
  MARGIN_BEFORE: 0.15,  // seconds kept before the first loud block ...
  MARGIN_AFTER: 0.25,   // ... and after the last one
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
      {audio: {channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
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
            if (session.firstLoud === undefined) session.firstLoud = session.blocks.length - 1;
            session.lastLoud = session.blocks.length - 1;
            heard = true;
            lastLoud = now;
          }
          session.heard = heard;
          if ((heard && now - lastLoud > this.PAUSE_MS) || now - started > maxSeconds * 1000) resolve();
        };
        session.timer = setTimeout(resolve, maxSeconds * 1000 + 500);
      });
      clearTimeout(session.timer);
      const samples = this.utterance(session, ctx.sampleRate);
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

  // the speech with a short margin (everything, if no block was loud)
  utterance(session, rate) {
    const all = this.concat(session.blocks);
    if (session.firstLoud === undefined) return all;
    const size = session.blocks[0].length;
    const from = Math.max(0, session.firstLoud * size - Math.round(this.MARGIN_BEFORE * rate));
    const to = Math.min(all.length, (session.lastLoud + 1) * size + Math.round(this.MARGIN_AFTER * rate));
    return all.subarray(from, to);
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
      // triangular dither of one step: no runs of exact digital zero, no quantisation pattern
      const v = Math.round(samples[i] * 32767 + Math.random() - Math.random());
      view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, v)), true);
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
