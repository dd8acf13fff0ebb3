#!/usr/bin/env node
// novamon-serialproxy: starts the compiled composition root (npm ci / npm run build produce dist/).
import '../dist/src/main/serialproxy.js';
