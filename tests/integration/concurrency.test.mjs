// concurrency.test.mjs: many things at once, for the ThreadSanitizer build (scripts/test.sh
// runs this file against build-tsan/loco; it also runs with the others against the ASan
// build): parallel streams on the local and the cloud route with clients that leave midway,
// the side endpoints polled meanwhile, and the engine's thread pool (loco run --threads 4,
// loco serve --model under parallel requests). A race report from the sanitizer fails the
// test through the fixture's stop().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, gateway, startLoco, post, get, parseSSE, checkAnthropicStream, waitFor, HAIKU, SONNET } from './helpers.mjs';
import { synthTinyModel } from './hub_standin.mjs';

const T = { timeout: 300000 };
const SANITIZER = /ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:/;
const CALL = `Looking.\n<tool_call>\n${JSON.stringify({ name: 'Bash', arguments: { command: 'ls /repo' } })}\n</tool_call>`;
const TOOLS = [{ name: 'Bash', input_schema: { type: 'object', properties: { command: { type: 'string' } }, required: ['command'] } }];

// A streaming request; leaves after the first bytes when `leave` is set.
async function stream(url, model, leave) {
  const ac = new AbortController();
  const r = await fetch(`${url}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, max_tokens: 256, stream: true, tools: TOOLS, messages: [{ role: 'user', content: 'where is main?' }] }),
    signal: ac.signal,
  });
  assert.equal(r.status, 200);
  if (leave) {
    const reader = r.body.getReader();
    await reader.read();
    ac.abort();
    return null;
  }
  return checkAnthropicStream(parseSSE(await r.text()));
}

test('parallel streams on both routes with clients leaving midway, side endpoints polled', T, async (t) => {
  const g = await gateway(t, { localOpts: { delayMs: 5, chunkSize: 3 }, cloudOpts: { delayMs: 5 } });
  g.local.handler = () => ({ text: CALL });
  g.cloud.handler = () => ({ text: 'From the cloud, in several words.' });
  let polling = true;
  const poll = (async () => {
    while (polling) {
      await get(`${g.loco.url}/metrics`);
      await get(`${g.loco.url}/health`);
    }
  })();
  const jobs = [];
  for (let i = 0; i < 24; i++) jobs.push(stream(g.loco.url, i % 2 ? HAIKU : SONNET, i % 4 === 3));
  const results = await Promise.all(jobs);
  polling = false;
  await poll;
  for (const [i, msg] of results.entries()) {
    if (i % 4 === 3) continue;
    if (i % 2) assert.equal(msg.content.at(-1).type, 'tool_use');
    else assert.match(msg.content[0].text, /cloud/);
  }
  // still serving after the aborts
  const r = await post(`${g.loco.url}/v1/messages`, { model: SONNET, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200);
});

function run(args) {
  return new Promise((resolve) => {
    execFile(LOCO_BIN, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
}

test('the engine\'s thread pool: loco run --threads 4, loco serve --model under parallel requests', T, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-conc-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = synthTinyModel(dir, LOCO_BIN, { template: false });
  const r = await run(['run', '--model', model, '--prompt', 'hello', '--max-tokens', '8', '--threads', '4', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, SANITIZER, r.stderr);
  assert.equal(JSON.parse(r.stdout).ids.length <= 8, true);

  const loco = await startLoco({ key: null, args: ['--model', model, '--threads', '4', '--ctx', '512'] });
  t.after(() => loco.stop());
  const answers = await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      post(`${loco.url}/v1/messages`, { model: HAIKU, max_tokens: 8, temperature: 0, messages: [{ role: 'user', content: `question ${i}` }] })),
  );
  for (const a of answers) assert.ok([200, 503, 529].includes(a.status), a.text);
  await waitFor(() => loco.alive(), 1000, 'loco alive');
});
