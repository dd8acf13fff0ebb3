// novamon-serialproxy: the serial console proxy (Nova's nova-serialproxy). Serves
// [serial_console] serialproxy_host:serialproxy_port: WebSockets bridged to guests' TCP serial ports, one
// session per port, until SIGTERM/SIGINT closes every console bridge.

import 'reflect-metadata';
import { consoleProxyMain } from './consoleproxy.js';
import { runService } from './service.js';

runService('novamon-serialproxy', () => consoleProxyMain('serial', process.argv));
