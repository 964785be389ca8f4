#!/usr/bin/env node
// Container health probe (Dockerfile HEALTHCHECK, compose healthcheck). Exit 0 = healthy, 1 = not.
//
//   node healthcheck.js                  pick by $APP, ports from the config at $PORTCULLIS_CONFIG:
//                                          policy-service → grpc.health.v1 Check on policy.listen
//                                          edge-proxy, audit-service → GET /readyz on metrics.listen
//                                          cli → nothing to check (exit 0)
//   node healthcheck.js grpc HOST:PORT [SERVICE]
//   node healthcheck.js http URL
//
// Uses only packages of the production image (@grpc/grpc-js, grpc-health-check, yaml).
'use strict';

const http = require('node:http');
const { readFileSync } = require('node:fs');

const TIMEOUT_MS = Number(process.env.HEALTHCHECK_TIMEOUT_MS) || 3000;
const DEFAULT_METRICS_PORT = 9464;
const DEFAULT_GRPC_PORT = 50051;

function done(ok, message) {
  (ok ? process.stdout : process.stderr).write(`healthcheck: ${message}\n`);
  process.exit(ok ? 0 : 1);
}

/** Port of a HOST:PORT value; a wildcard or any host becomes loopback (we probe from inside). */
function portOf(hostPort, fallback) {
  const m = typeof hostPort === 'string' ? /:(\d{1,5})$/.exec(hostPort) : null;
  return m ? Number(m[1]) : fallback;
}

function readConfig() {
  const path = process.env.PORTCULLIS_CONFIG || '/etc/portcullis/portcullis.yaml';
  try {
    return require('yaml').parse(readFileSync(path, 'utf8')) || {};
  } catch {
    return {}; // the service itself reports a bad config; probe the defaults
  }
}

function checkGrpc(target, service) {
  const grpc = require('@grpc/grpc-js');
  const { service: healthService } = require('grpc-health-check');
  const Health = grpc.makeClientConstructor(healthService, 'grpc.health.v1.Health');
  const client = new Health(target, grpc.credentials.createInsecure());
  client.check({ service }, { deadline: Date.now() + TIMEOUT_MS }, (err, res) => {
    client.close();
    if (err) return done(false, `grpc ${target}: ${err.message}`);
    done(res.status === 'SERVING', `grpc ${target} service="${service}": ${res.status}`);
  });
}

function checkHttp(url) {
  const req = http.get(url, { timeout: TIMEOUT_MS }, (res) => {
    res.resume();
    const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
    done(ok, `GET ${url}: ${res.statusCode}`);
  });
  req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
  req.on('error', (err) => done(false, `GET ${url}: ${err.message}`));
}

const [mode, target, service = ''] = process.argv.slice(2);
if (mode === 'grpc' && target) checkGrpc(target, service);
else if (mode === 'http' && target) checkHttp(target);
else if (mode) done(false, 'usage: healthcheck.js [grpc HOST:PORT [SERVICE] | http URL]');
else {
  const app = process.env.APP;
  const config = readConfig();
  const metricsPort = portOf(config.metrics && config.metrics.listen, DEFAULT_METRICS_PORT);
  if (app === 'policy-service') checkGrpc(`127.0.0.1:${portOf(config.policy && config.policy.listen, DEFAULT_GRPC_PORT)}`, '');
  else if (app === 'edge-proxy' || app === 'audit-service') checkHttp(`http://127.0.0.1:${metricsPort}/readyz`);
  else if (app === 'cli') done(true, 'cli image: nothing to check');
  else done(false, `unknown APP "${app ?? ''}"`);
}
