#!/usr/bin/env -S node --max-semi-space-size=8
// novamon-compute: starts the compiled composition root (npm ci / npm run build produce dist/).
// The agent runs on every hypervisor, where memory belongs to the guests: V8's young generation is capped
// at 2 x 8 MB instead of 2 x 16 MB. That keeps about 20 MiB off the resident size with 100 guests and
// measured no change in CPU per call (docs/bench.md). Whoever starts it as `node bin/novamon-compute.js`
// passes the same flags (test/fixtures/launcher.ts reads them from this line).
import '../dist/src/main/compute.js';
