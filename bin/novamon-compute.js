#!/usr/bin/env node
// novamon-compute: starts the compiled composition root (npm ci / npm run build produce dist/).
import '../dist/src/main/compute.js';
