#!/usr/bin/env node
// novamon-novncproxy: starts the compiled composition root (npm ci / npm run build produce dist/).
import '../dist/src/main/novncproxy.js';
