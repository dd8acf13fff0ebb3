// Writes etc/novamon/novamon.conf.sample from the option table (npm run config-sample).
import { writeFileSync } from 'node:fs';
import { renderSample } from '../src/config/loader.js';

writeFileSync(new URL('../etc/novamon/novamon.conf.sample', import.meta.url), renderSample());
