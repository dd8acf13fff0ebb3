// Where one call's time goes inside novamon-compute, step by step: a preload for the service under the
// benchmark, `npm run bench:ab -- --in-flight 1 ... node:--import=./bench/step-trace.mjs` (the path as
// the service's working directory sees it, the repository root). It timestamps the entry and exit of the
// RPC server's, the manager's, the qemu driver's, the QMP connection's and the token store's steps and
// every read and write on the AMQP, PostgreSQL and monitor sockets, and writes them at exit to
// $NOVAMON_STEP_TRACE_DIR (default the temp dir) as novamon-steps-<pid>.json for bench/step-report.ts.
// Meant for 1 call in flight: a call's steps are those between its delivery and its reply's write.
// Diagnostics only: it wraps methods on prototypes, and a method that is gone stops the service at once.

import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { URL } from 'node:url';

const dist = (file) => import(new URL(`../dist/src/${file}`, import.meta.url).href);
const { RpcServer } = await dist('rpc/server.js');
const { ComputeManager } = await dist('compute/manager.js');
const { QemuDriver } = await dist('virt/qemu/driver.js');
const { QmpConnection } = await dist('qmp/connection.js');
const { KnexConsoleAuthTokenRepository } = await dist('db/console-auth-token-repository.js');
// amqplib's package exports hide lib/: resolve the package, then the file beside its entry point.
const require = createRequire(import.meta.url);
const { Channel } = require(path.join(path.dirname(require.resolve('amqplib')), 'lib', 'channel_model.js'));

const MAX_EVENTS = 4_000_000;
const events = [];
const mark = (step) => {
  if (events.length < MAX_EVENTS) events.push(step, performance.now());
};

function target(proto, name, owner) {
  if (typeof proto[name] !== 'function') throw new Error(`bench/step-trace.mjs: ${owner}.${name} is gone; update the preload`);
  return proto[name];
}

/** Marks `step>` on entry and `step<` when the returned promise settles (or on return). */
function wrap(proto, name, owner, step) {
  const original = target(proto, name, owner);
  proto[name] = function (...args) {
    mark(`${step}>`);
    const result = original.apply(this, args);
    if (result && typeof result.then === 'function') result.then(() => mark(`${step}<`), () => mark(`${step}<`));
    else mark(`${step}<`);
    return result;
  };
}

wrap(RpcServer.prototype, 'onDelivery', 'RpcServer', 'delivery');
wrap(RpcServer.prototype, 'parse', 'RpcServer', 'parse');
wrap(RpcServer.prototype, 'complete', 'RpcServer', 'complete');
wrap(RpcServer.prototype, 'publishReply', 'RpcServer', 'publishReply');
wrap(RpcServer.prototype, 'metric', 'RpcServer', 'metric');
wrap(Channel.prototype, 'publish', 'amqplib Channel', 'amqplib.publish');
wrap(Channel.prototype, 'ack', 'amqplib Channel', 'amqplib.ack');
wrap(ComputeManager.prototype, 'resolve', 'ComputeManager', 'resolve');
for (const m of ['getConsoleOutput', 'getInstanceDiagnostics', 'getVncConsole']) {
  wrap(ComputeManager.prototype, m, 'ComputeManager', `manager.${m}`);
  wrap(QemuDriver.prototype, m, 'QemuDriver', `driver.${m}`);
}
wrap(QmpConnection.prototype, 'execute', 'QmpConnection', 'qmp.execute');
wrap(KnexConsoleAuthTokenRepository.prototype, 'createMany', 'KnexConsoleAuthTokenRepository', 'tokens.insert');

const socketKind = (s) => (s.remotePort === 5672 ? 'amqp' : s.remotePort === 5432 ? 'pg' : s.remotePort === undefined ? 'monitor' : null);
const emit = target(net.Socket.prototype, 'emit', 'net.Socket');
net.Socket.prototype.emit = function (name, ...args) {
  if (name === 'data') {
    const kind = socketKind(this);
    if (kind) mark(`${kind} read`);
  }
  return emit.call(this, name, ...args);
};
for (const m of ['_write', '_writev']) {
  const original = target(net.Socket.prototype, m, 'net.Socket');
  net.Socket.prototype[m] = function (...args) {
    const kind = socketKind(this);
    if (kind) mark(`${kind} write`);
    return original.apply(this, args);
  };
}

process.on('exit', () => {
  const dir = process.env['NOVAMON_STEP_TRACE_DIR'] ?? os.tmpdir();
  fs.writeFileSync(path.join(dir, `novamon-steps-${process.pid}.json`), JSON.stringify(events));
});
