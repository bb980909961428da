// output.test.mjs: what loco writes is well-formed whatever the model or the user feeds it:
// `loco run --json` is valid UTF-8 JSON even when generation cuts a character (U+FFFD in its
// place), and input echoed to the terminal or the log (a model name, a sample id) carries no
// terminal escape sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, gateway, post, waitFor } from './helpers.mjs';
import { synthTinyModel } from './hub_standin.mjs';

const SANITIZER = /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
// C0 controls but tab and newline (log lines end in newlines), DEL and the C1 CSI/OSC that
// terminals act on.
const TERMINAL_CONTROL = /[\x00-\x08\x0b-\x1f\x7f\u0080-\u009f]/;

function run(args, opts = {}) {
  return new Promise((resolve) => {
    execFile(LOCO_BIN, args, { encoding: 'buffer', maxBuffer: 64 << 20, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr: stderr.toString('utf8') });
    });
  });
}

test('loco run --json is valid UTF-8 JSON when the model cuts a character', { timeout: 300000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-out-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const model = synthTinyModel(dir, LOCO_BIN, { template: false });
  // random weights: a strong repeat penalty and a high temperature sample the whole vocabulary,
  // whose byte-level pieces include partial UTF-8 sequences
  let replaced = 0;
  for (let seed = 1; seed <= 4 && !replaced; seed++) {
    const r = await run(['run', '--model', model, '--prompt', 'hello', '--json', '--max-tokens', '200',
      '--temp', '2', '--top-k', '0', '--top-p', '1', '--repeat-penalty', '50', '--ignore-eos',
      '--seed', String(seed), '--threads', '2']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, SANITIZER);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(r.stdout); // throws on invalid UTF-8
    const out = JSON.parse(text);
    assert.equal(out.ids.length, 200);
    replaced += (out.text.match(/\uFFFD/g) ?? []).length;
  }
  assert.ok(replaced > 0, 'no sampled text cut a character: the test proved nothing');
});

test('a model name with escape sequences reaches the log escaped', { timeout: 60000 }, async (t) => {
  const g = await gateway(t, { local: false });
  const evil = '\u001b]0;pwned\u0007\u001b[2J\nreq=forged status=200';
  const r = await post(`${g.loco.url}/v1/messages`, { model: evil, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, r.text);
  await waitFor(() => g.loco.log().includes('pwned'), 10000, 'the request log line');
  const lines = g.loco.log().split('\n');
  const line = lines.find((l) => l.includes('pwned'));
  assert.ok(line, g.loco.log());
  assert.doesNotMatch(line, TERMINAL_CONTROL);
  assert.match(line, /model=\\e\]0;pwned\\x07\\e\[2J\\nreq=forged/);
  assert.ok(!lines.some((l) => l.startsWith('req=forged')));
});

test('sample ids with escape sequences are shown escaped by loco eval', { timeout: 60000 }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-out-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const id = '\u001b[31mq1\u001b]0;pwned\u0007';
  const sample = { id, messages: [{ role: 'user', content: 'find main' }], label: 'I will look.' };
  fs.writeFileSync(path.join(dir, 'samples.jsonl'), `${JSON.stringify(sample)}\n${JSON.stringify(sample)}\n`);
  fs.writeFileSync(path.join(dir, 'pred.jsonl'), `${JSON.stringify({ id, output: 'ok' })}\n${JSON.stringify({ id: `${id}x`, output: 'ok' })}\n`);
  const r = await run(['eval', path.join(dir, 'samples.jsonl'), '--predictions', path.join(dir, 'pred.jsonl')], { cwd: dir });
  const all = r.stderr + r.stdout.toString('utf8');
  assert.match(all, /duplicate/);
  assert.doesNotMatch(all.replace(/\r/g, ''), TERMINAL_CONTROL, all);
  assert.doesNotMatch(r.stderr, SANITIZER);
});
