// The console page a user's URL opens (`vnc_auto.html`, also served as `vnc_lite.html` and `/`): a small
// page of ours around noVNC's RFB client from the @novnc/novnc package, which ships the client library
// but not noVNC's own pages. It connects at once, like Nova's vnc_auto.html, and shows what happens.

/*
 * Query parameters, as noVNC's pages read them: `path` is the WebSocket path relative to the server root
 * (Nova puts `?token=…` there), `token` is accepted on its own, `host`/`port`/`encrypt` override where the
 * WebSocket goes (default: where the page came from), `password` answers VNC authentication, `scale`
 * fits the screen to the window, `shared` (default true) lets other viewers stay connected.
 * The page reports its state on <html data-state=…> (connecting, connected, disconnected, failed) so
 * tests and monitoring can read it without scraping text.
 */
export const CONSOLE_PAGE_HTML = `<!DOCTYPE html>
<html lang="en" data-state="loading">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Console</title>
<style>
  html, body { margin: 0; height: 100%; background: #282828; color: #eee; font: 14px sans-serif; }
  body { display: flex; flex-direction: column; }
  #bar { display: flex; gap: 1em; align-items: center; padding: 4px 8px; background: #3a3a3a; }
  #status { flex: 1; }
  #screen { flex: 1; overflow: hidden; }
  button { font: inherit; }
</style>
<script type="module" src="./novamon-console.js"></script>
</head>
<body>
<div id="bar"><span id="status">Loading</span><button id="cad" type="button" disabled>Send Ctrl-Alt-Del</button></div>
<div id="screen"></div>
</body>
</html>
`;

export const CONSOLE_PAGE_SCRIPT = `import RFB from './core/rfb.js';

const params = new URLSearchParams(window.location.search);
const statusEl = document.getElementById('status');
const cad = document.getElementById('cad');

function report(state, text) {
  document.documentElement.dataset.state = state;
  statusEl.textContent = text;
}

function websocketUrl() {
  const encrypt = params.has('encrypt') ? params.get('encrypt') === '1' || params.get('encrypt') === 'true'
    : window.location.protocol === 'https:';
  const host = params.get('host') || window.location.hostname;
  const port = params.get('port') || window.location.port;
  let path = params.get('path');
  if (path === null) path = params.has('token') ? '?token=' + encodeURIComponent(params.get('token')) : 'websockify';
  if (path.startsWith('/')) path = path.slice(1);
  const hostPart = host.includes(':') && !host.startsWith('[') ? '[' + host + ']' : host;
  return (encrypt ? 'wss' : 'ws') + '://' + hostPart + (port ? ':' + port : '') + '/' + path;
}

let rfb;
try {
  report('connecting', 'Connecting');
  rfb = new RFB(document.getElementById('screen'), websocketUrl(), {
    shared: params.get('shared') !== 'false',
    wsProtocols: ['binary'],
    credentials: params.has('password') ? { password: params.get('password') } : undefined,
  });
  rfb.scaleViewport = params.get('scale') === 'true';
  rfb.addEventListener('connect', () => {
    report('connected', 'Connected' + (document.title !== 'Console' ? ' to ' + document.title : ''));
    cad.disabled = false;
  });
  rfb.addEventListener('disconnect', (e) => {
    cad.disabled = true;
    if (e.detail.clean) report('disconnected', 'Disconnected');
    else report('failed', 'Something went wrong, connection is closed (the token may have expired)');
  });
  rfb.addEventListener('securityfailure', (e) => report('failed', 'Security failure: ' + (e.detail.reason || e.detail.status)));
  rfb.addEventListener('credentialsrequired', () => report('failed', 'The console asks for a password (add &password=…)'));
  rfb.addEventListener('desktopname', (e) => { document.title = e.detail.name; });
  cad.addEventListener('click', () => rfb.sendCtrlAltDel());
  window.novamonConsole = rfb;
} catch (err) {
  report('failed', 'Cannot connect: ' + err.message);
}
`;
