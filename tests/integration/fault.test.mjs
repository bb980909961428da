// fault.test.mjs: failure injection on a request's whole path through the real `loco serve`
// (a build with -DLOCO_FAULT=ON: the ASan build in CI; skipped otherwise). Counting starts
// at the request (LOCO_FAULT_ARM=request); for each kind of call (allocation, read, write) a
// fresh loco serves one streaming request on the local route with the Nth call failing, for
// every N of reads and writes and an even sample of allocations. Each must give the whole
// answer, a JSON error, a stream that ends in an error event, or a cut connection (never a
// stream that ends as if complete while it is not), then stop cleanly with no sanitizer
// report (leaks included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, freePort, parseSSE, checkAnthropicStream, sleep, HAIKU } from './helpers.mjs';
import { startLocal } from './standins.mjs';

const SANITIZER = /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
const ALLOC_SAMPLES = 40;
const CALL = `I will list it.\n<tool_call>\n${JSON.stringify({ name: 'Bash', arguments: { command: 'ls /repo' } })}\n</tool_call>`;
const BODY = JSON.stringify({
  model: HAIKU,
  max_tokens: 256,
  stream: true,
  tools: [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }],
  messages: [{ role: 'user', content: 'What is in /repo?' }],
});

function faultBuild() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-fault-'));
  const report = path.join(dir, 'report');
  try {
    execFileSync(LOCO_BIN, ['--version'], { env: { ...process.env, LOCO_FAULT_REPORT: report }, stdio: 'ignore' });
  } catch {
    /* the exit code does not matter */
  }
  const yes = fs.existsSync(report);
  fs.rmSync(dir, { recursive: true, force: true });
  return yes;
}

// One loco with env; one request; then SIGTERM. Returns {outcome, log, code, signal, report}.
async function once(localUrl, env, dir) {
  const port = await freePort();
  const report = path.join(dir, `report-${port}`);
  const proc = spawn(LOCO_BIN, ['serve', '--listen', `127.0.0.1:${port}`, '--local-url', localUrl, '--ping-interval', '-1'], {
    env: { PATH: process.env.PATH, HOME: dir, LANG: 'C.UTF-8', ASAN_OPTIONS: 'detect_leaks=1', LOCO_FAULT_ARM: 'request', LOCO_FAULT_REPORT: report, ...env },
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout.on('data', (d) => (log += d));
  proc.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 20000;
  while (!log.includes('listening on')) { // not a probe: the first connection arms the counting
    if (Date.now() > deadline) throw new Error(`loco did not listen:\n${log}`);
    await sleep(20);
  }
  let outcome;
  try {
    const r = await fetch(`http://127.0.0.1:${port}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: BODY,
      signal: AbortSignal.timeout(30000),
    });
    let text = null;
    try {
      text = await r.text();
    } catch {
      outcome = 'cut'; // the connection broke mid-answer: the client knows it is incomplete
    }
    if (text !== null) {
      if (r.status !== 200) {
        const j = JSON.parse(text); // a JSON error body
        assert.equal(j.type, 'error', text);
        outcome = `error ${r.status}`;
      } else {
        const events = parseSSE(text);
        if (events.some((e) => e.event === 'error')) {
          outcome = 'error event';
        } else {
          const msg = checkAnthropicStream(events); // whole, or this throws: partial output
          assert.equal(msg.content.at(-1).type, 'tool_use');
          outcome = 'whole';
        }
      }
    }
  } catch (err) {
    if (err?.name === 'AssertionError' || err instanceof SyntaxError || /SSE contract|without message_stop/.test(err.message)) throw err;
    outcome = 'cut'; // refused or reset before a status line
  }
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
  const { code, signal } = await exited;
  clearTimeout(t);
  const counts = fs.existsSync(report) ? fs.readFileSync(report, 'utf8') : '';
  return { outcome, log, code, signal, counts };
}

function countOf(counts, kind) {
  return Number(new RegExp(`^${kind} (\\d+)$`, 'm').exec(counts)?.[1] ?? 0);
}

test('every read and write, and a sample of the allocations, of a request may fail cleanly', { timeout: 900000 }, async (t) => {
  if (!faultBuild()) {
    t.skip('loco is not a -DLOCO_FAULT=ON build');
    return;
  }
  const local = await startLocal({ delayMs: 1, chunkSize: 8 });
  local.handler = () => ({ text: CALL });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-fault-'));
  t.after(async () => {
    await local.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const ref = await once(local.url, {}, dir);
  assert.equal(ref.outcome, 'whole', ref.log);
  assert.equal(ref.code, 0, ref.log);
  const failures = [];
  const seen = {};
  for (const [kind, envName] of [['alloc', 'LOCO_FAULT_ALLOC'], ['read', 'LOCO_FAULT_READ'], ['write', 'LOCO_FAULT_WRITE']]) {
    const total = countOf(ref.counts, kind);
    const ns = total <= ALLOC_SAMPLES ? Array.from({ length: total }, (_, i) => i + 1)
      : Array.from({ length: ALLOC_SAMPLES }, (_, i) => 1 + Math.floor((i * total) / ALLOC_SAMPLES));
    for (const n of ns) {
      let r;
      try {
        r = await once(local.url, { [envName]: String(n) }, dir);
      } catch (err) {
        failures.push(`${kind} ${n}/${total}: ${err.message.slice(0, 400)}`);
        continue;
      }
      seen[r.outcome] = (seen[r.outcome] ?? 0) + 1;
      if (/^error 4/.test(r.outcome)) failures.push(`${kind} ${n}/${total}: a server fault answered as the client's (${r.outcome})`);
      if (SANITIZER.test(r.log)) failures.push(`${kind} ${n}/${total}: sanitizer report:\n${r.log.slice(r.log.search(SANITIZER), r.log.search(SANITIZER) + 3000)}`);
      else if (r.signal || (r.code !== 0 && r.code !== 1)) failures.push(`${kind} ${n}/${total}: loco ended with ${r.signal ?? r.code}:\n${r.log.slice(-1500)}`);
    }
    t.diagnostic(`${kind}: ${total} calls on the request's path, ${ns.length} runs`);
  }
  t.diagnostic(`outcomes: ${JSON.stringify(seen)}`);
  assert.deepEqual(failures, []);
});
