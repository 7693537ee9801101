"""Phone-side video work: decoding/encoding, key frames, optical flow, warping. Imports nothing of ours."""
