// Serves the browser side of the console: our page and script, and noVNC's ES modules (`/core/…`,
// `/vendor/…`) straight from the installed @novnc/novnc package, never from a copy in our tree.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { CONSOLE_PAGE_HTML, CONSOLE_PAGE_SCRIPT } from './page.js';

/** Page names Nova's base URLs use; all get our auto-connecting page. */
export const CONSOLE_PAGE_PATHS = new Set(['/', '/vnc_auto.html', '/vnc_lite.html', '/vnc.html']);
const SCRIPT_PATH = '/novamon-console.js';
const LIBRARY_DIRS = ['core', 'vendor'];

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.wasm': 'application/wasm',
};

/** The directory of the installed @novnc/novnc package (its `exports` only names core/rfb.js). */
export function novncPackageDir(): string {
  const entry = createRequire(import.meta.url).resolve('@novnc/novnc');
  return path.resolve(path.dirname(entry), '..');
}

const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  // The page's URL carries the token: keep it out of caches.
  'Cache-Control': 'no-store',
};

export class ConsoleStaticFiles {
  constructor(private readonly novncDir: string = novncPackageDir()) {}

  /** Answers GET/HEAD for the page, our script and noVNC's files; 404 for anything else. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { ...COMMON_HEADERS, Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('Method not allowed\n');
      return;
    }
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://proxy.invalid').pathname);
    } catch {
      res.writeHead(400, { ...COMMON_HEADERS, 'Content-Type': 'text/plain' }).end('Bad request\n');
      return;
    }
    if (CONSOLE_PAGE_PATHS.has(pathname)) return this.send(req, res, 'text/html; charset=utf-8', CONSOLE_PAGE_HTML);
    if (pathname === SCRIPT_PATH) return this.send(req, res, CONTENT_TYPES['.js'] as string, CONSOLE_PAGE_SCRIPT);
    const file = this.libraryFile(pathname);
    if (file === null) return this.notFound(res);
    let size: number;
    try {
      const st = await stat(file);
      if (!st.isFile()) return this.notFound(res);
      size = st.size;
    } catch {
      return this.notFound(res);
    }
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Content-Length': size,
      'Cache-Control': 'public, max-age=3600',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  /** Maps `/core/rfb.js` into the package; null for paths outside its library directories. */
  libraryFile(pathname: string): string | null {
    const rel = path.posix.normalize(pathname).replace(/^\/+/, '');
    const top = rel.split('/')[0] ?? '';
    if (!LIBRARY_DIRS.includes(top) || rel.includes('\0')) return null;
    const file = path.resolve(this.novncDir, rel);
    return file.startsWith(path.join(this.novncDir, top) + path.sep) ? file : null;
  }

  private send(req: IncomingMessage, res: ServerResponse, type: string, body: string): void {
    res.writeHead(200, {
      ...COMMON_HEADERS,
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      // Our page loads only our own scripts; the WebSocket may go to the host/port the URL names.
      'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws: wss:",
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private notFound(res: ServerResponse): void {
    res.writeHead(404, { ...COMMON_HEADERS, 'Content-Type': 'text/plain' }).end('Not found\n');
  }
}
