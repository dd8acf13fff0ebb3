#!/usr/bin/env node
// novamon-manage: starts the compiled composition root (npm ci / npm run build produce dist/).
import '../dist/src/main/manage.js';
