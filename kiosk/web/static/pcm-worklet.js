// An AudioWorklet that hands the microphone's samples (mono, the context's rate) to the
// page in blocks of about 40 ms; voice.js resamples and encodes them.
"use strict";
class PcmTap extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Float32Array(2048);
    this.used = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length) {
      const n = channels[0].length;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (const ch of channels) s += ch[i];
        this.block[this.used++] = s / channels.length;
        if (this.used === this.block.length) {
          this.port.postMessage(this.block);
          this.block = new Float32Array(2048);
          this.used = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-tap", PcmTap);
