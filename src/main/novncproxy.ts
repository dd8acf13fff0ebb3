// novamon-novncproxy: the noVNC console proxy. Serves [vnc] novncproxy_host:novncproxy_port (noVNC's pages
// and the WebSockets bridged to guests' VNC servers) until SIGTERM/SIGINT closes every console bridge.

import 'reflect-metadata';
import { consoleProxyMain } from './consoleproxy.js';
import { runService } from './service.js';

runService('novamon-novncproxy', () => consoleProxyMain('novnc', process.argv));
