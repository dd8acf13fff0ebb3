#!/usr/bin/env node
// novamon-api: starts the compiled composition root (npm ci / npm run build produce dist/).
import '../dist/src/main/api.js';
