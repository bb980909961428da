// limits.test.mjs: the real `loco serve` bounds what clients can hold and counts honestly:
// --max-inflight (exact counting, every 529 logged and in /metrics), --max-conns (a JSON 503,
// not a reset), --idle-timeout (slow or silent connections closed), and every error the
// HTTP layer gives by itself is JSON in the shape of the client's API.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { gateway, post, get, waitFor, metricSum, SONNET } from './helpers.mjs';

const T = { timeout: 60000 };

// Sends raw bytes on a new connection; resolves {raw, status, headers, body, json} once the
// server closes (or after `afterMs` of reading, when given). `drip` sends one byte of the
// tail every dripMs.
function raw(port, bytes, { dripTail = '', dripMs = 200, limitMs = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    let timer = null;
    let i = 0;
    const done = () => {
      clearInterval(timer);
      clearTimeout(limit);
      const text = Buffer.concat(chunks).toString('utf8');
      const sep = text.indexOf('\r\n\r\n');
      const head = sep < 0 ? text : text.slice(0, sep);
      const body = sep < 0 ? '' : text.slice(sep + 4);
      const lines = head.split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers = {};
      for (const l of lines.slice(1)) {
        const k = l.indexOf(':');
        if (k > 0) headers[l.slice(0, k).toLowerCase()] = l.slice(k + 1).trim();
      }
      let json;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      resolve({ raw: text, status, headers, body, json });
    };
    const limit = setTimeout(() => {
      sock.destroy();
      reject(new Error(`the server did not close the connection within ${limitMs} ms`));
    }, limitMs);
    sock.on('connect', () => {
      sock.write(bytes);
      if (dripTail) {
        timer = setInterval(() => {
          if (!sock.destroyed && sock.writable) sock.write(dripTail[i++ % dripTail.length]);
        }, dripMs);
      }
    });
    sock.on('data', (d) => chunks.push(d));
    sock.on('error', () => {});
    sock.on('close', done);
  });
}

// Opens a connection, has one request served on it and keeps it open.
function heldConnection(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.on('connect', () => sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
    sock.on('data', (d) => {
      text += d.toString();
      if (/^HTTP\/1\.1 \d{3} /.test(text) && text.includes('\r\n\r\n')) resolve({ sock, status: Number(text.slice(9, 12)) });
    });
    sock.on('error', reject);
  });
}

// One request on a connection of its own; resolves with the status once the whole answer
// (head and body, Content-Length or chunked) is there, whether or not the server has closed.
function answerOf(port, method, target, body = '') {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const limit = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no whole answer to ${method} ${target} within 20000 ms`));
    }, 20000);
    sock.on('connect', () => sock.write(`${method} ${target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const sep = buf.indexOf('\r\n\r\n');
      if (sep < 0) return;
      const head = buf.subarray(0, sep).toString();
      const rest = buf.subarray(sep + 4).toString();
      const len = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
      // loco's chunked answers carry no trailers: the last chunk ends them
      if (len === undefined ? !/(^|\r\n)0\r\n\r\n$/.test(rest) : Buffer.byteLength(rest) < Number(len)) return;
      clearTimeout(limit);
      sock.destroy();
      resolve({ status: Number(head.slice(9, 12)), body: len === undefined ? rest : rest.slice(0, Number(len)) });
    });
    sock.on('error', reject);
  });
}

const anthropicError = (json, type) => {
  assert.equal(json?.type, 'error', JSON.stringify(json));
  assert.equal(json.error.type, type);
  assert.equal(typeof json.error.message, 'string');
};
const openaiError = (json) => {
  assert.equal(typeof json?.error?.message, 'string', JSON.stringify(json));
  assert.equal(json.type, undefined);
};

const MSG = { model: SONNET, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] };

describe('--max-inflight', () => {
  test('clients that keep at most --max-inflight requests in flight never get 529', T, async (t) => {
    const N = 4;
    const g = await gateway(t, { local: false, args: ['--max-inflight', String(N)] });
    const statuses = [];
    await Promise.all(
      Array.from({ length: N }, async () => {
        for (let i = 0; i < 40; i++) statuses.push((await post(`${g.loco.url}/v1/messages`, MSG)).status);
      }),
    );
    assert.equal(statuses.length, N * 40);
    assert.deepEqual([...new Set(statuses)], [200]);
  });

  test('a request counts out when its answer is complete, not when loco is done with it', T, async (t) => {
    // --record appends each exchange after its answer went out. Its file for today is a FIFO
    // that nobody reads yet, so every handler stays busy after its answer (like a slow disk):
    // a count that dropped only when the handler returned would make the next request 529.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-inflight-'));
    const day = (ms) => new Date(ms).toISOString().slice(0, 10).replace(/-/g, '');
    const fifos = [day(Date.now()), day(Date.now() + 86400000)].map((d) => path.join(dir, `exchanges-${d}.jsonl`));
    for (const f of fifos) execFileSync('mkfifo', [f]);
    const g = await gateway(t, { local: false, args: ['--max-inflight', '1', '--record', dir] });
    // after loco stopped (hooks run in order): the readers that let the handlers finish go
    const readers = [];
    t.after(() => {
      for (const fd of readers) fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
    });
    // a connection each: a kept-alive one would wait for its busy handler
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await answerOf(g.loco.port, 'POST', '/v1/messages', JSON.stringify(MSG))).status);
    const h = await answerOf(g.loco.port, 'GET', '/health');
    // an O_RDWR open of a FIFO never blocks and lets writers through
    for (const f of fifos) readers.push(fs.openSync(f, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    assert.deepEqual(statuses, [200, 200, 200]);
    assert.equal(JSON.parse(h.body).in_flight, 0, h.body);
  });

  test('a request past the limit is 529 (503 on the OpenAI front), logged and counted', T, async (t) => {
    const g = await gateway(t, { local: false, args: ['--max-inflight', '1'] });
    g.cloud.enqueue({ hang: true });
    const ac = new AbortController();
    const first = fetch(`${g.loco.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(MSG),
      signal: ac.signal,
    }).catch(() => null);
    await waitFor(() => g.cloud.requests.length === 1, 20000, 'the first request upstream');
    const r = await post(`${g.loco.url}/v1/messages`, MSG);
    assert.equal(r.status, 529);
    anthropicError(r.json, 'overloaded_error');
    assert.match(r.json.error.message, /--max-inflight/);
    assert.equal(r.headers.get('retry-after'), '1');
    const o = await post(`${g.loco.url}/v1/chat/completions`, { model: SONNET, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(o.status, 503);
    openaiError(o.json);
    const m = await get(`${g.loco.url}/metrics`);
    assert.equal(metricSum(m.text.split('\n').filter((l) => l.includes('status="529"')).join('\n'), /^loco_requests_total$/), 1);
    assert.equal(metricSum(m.text.split('\n').filter((l) => l.includes('status="503"')).join('\n'), /^loco_requests_total$/), 1);
    assert.match(g.loco.log(), /endpoint=messages .*reason=max_inflight status=529/);
    assert.match(g.loco.log(), /endpoint=chat_completions .*reason=max_inflight status=503/);
    ac.abort();
    await first;
  });
});

describe('--max-conns and --idle-timeout', () => {
  test('one connection past --max-conns is answered 503 as JSON, not reset', T, async (t) => {
    const g = await gateway(t, { local: false, args: ['--max-conns', '2'] });
    // the fixture's own health checks may hold a connection: open until one is refused
    const held = [];
    let refused = null;
    for (let i = 0; i < 4 && !refused; i++) {
      const c = await heldConnection(g.loco.port);
      if (c.status === 503) refused = c;
      else held.push(c);
    }
    assert.ok(refused, 'no connection was refused');
    assert.ok(held.length <= 2);
    refused.sock.destroy();
    const a = await raw(g.loco.port, `POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    assert.equal(a.status, 503);
    assert.equal(a.headers['content-type'], 'application/json');
    assert.equal(a.headers['retry-after'], '1');
    anthropicError(a.json, 'overloaded_error');
    assert.match(a.json.error.message, /maximum of 2 connections/);
    const o = await raw(g.loco.port, `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    assert.equal(o.status, 503);
    openaiError(o.json);
    for (const c of held) c.sock.destroy();
    await waitFor(async () => (await post(`${g.loco.url}/v1/messages`, MSG).catch(() => ({}))).status === 200, 20000, 'a free connection');
    const m = await get(`${g.loco.url}/metrics`);
    assert.ok(metricSum(m.text, /^loco_connections_refused_total$/) >= 3);
  });

  test('a connection that trickles a byte at a time is answered 408 and closed after --idle-timeout', T, async (t) => {
    const g = await gateway(t, { local: false, args: ['--idle-timeout', '1'] });
    const r = await raw(g.loco.port, 'POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow: ', { dripTail: 'abc' });
    assert.equal(r.status, 408);
    anthropicError(r.json, 'invalid_request_error');
    const silent = await raw(g.loco.port, '');
    assert.equal(silent.raw, '');
    const m = await get(`${g.loco.url}/metrics`);
    assert.ok(metricSum(m.text, /^loco_connections_timed_out_total$/) >= 2);
  });
});

describe('errors of the HTTP layer are JSON', () => {
  test('431, 414, bad Content-Length, bad chunking, unsupported version: the front\'s JSON shape', T, async (t) => {
    const g = await gateway(t, { local: false });
    const big = 'a'.repeat(70000);
    const cases = [
      [`POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`, 431, 'anthropic'],
      [`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\n\r\n`, 431, 'openai'],
      [`GET /${big} HTTP/1.1\r\nHost: x\r\n\r\n`, 414, 'anthropic'],
      ['POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n', 400, 'anthropic'],
      ['POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n', 400, 'openai'],
      ['POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n', 400, 'anthropic'],
      ['POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n', 413, 'anthropic'],
      ['GET /health HTTP/2.0\r\nHost: x\r\n\r\n', 505, 'anthropic'],
    ];
    for (const [req, status, shape] of cases) {
      const r = await raw(g.loco.port, req);
      assert.equal(r.status, status, `${req.slice(0, 60)} -> ${r.raw.slice(0, 200)}`);
      assert.equal(r.headers['content-type'], 'application/json');
      assert.doesNotMatch(r.body, /<html/i);
      if (shape === 'anthropic') anthropicError(r.json, status === 413 ? 'request_too_large' : status >= 500 ? 'api_error' : 'invalid_request_error');
      else openaiError(r.json);
    }
  });
});
