// examples.test.mjs: the shipped examples (examples/*.json, the two of the original
// LocoOperator repository written for `loco run --messages`) parse, render through the chat
// template exactly as the model's Jinja template renders them (@huggingface/jinja), tokenize
// as the real Qwen3 tokenizer does, and run, on a tiny synth model pulled from a stand-in Hub
// and named by REPO:QUANT, by file name, and not at all (the store's default).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, REPO_ROOT } from './helpers.mjs';
import { startHub, synthTinyModel } from './hub_standin.mjs';
import { renderReference } from '../engine/template_ref.mjs';
import { loadReference, encode } from '../engine/tokenizer_ref.mjs';

const EXAMPLES = ['quick_start.json', 'codebase_analysis.json'];
const SANITIZER = /ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

function run(args, env) {
  return new Promise((resolve) => {
    execFile(LOCO_BIN, args, { env, cwd: REPO_ROOT, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

test('the examples render through the template like the model\'s Jinja template and run on a pulled model', { timeout: 180000 }, async (t) => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-examples-'));
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  // no --tokenizer-config: the GGUF carries no template and loco uses Qwen3 Instruct-2507's,
  // the dialect LocoOperator-4B's GGUF has
  const model = synthTinyModel(work, LOCO_BIN, { template: false });
  const hub = await startHub({ 'Tiny/LocoOperator-Tiny-GGUF': { files: { 'LocoOperator-Tiny.Q8_0.gguf': fs.readFileSync(model) } } });
  t.after(() => hub.stop());
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: work,
    LANG: 'C.UTF-8',
    NO_PROXY: '*',
    HF_ENDPOINT: hub.url,
    LOCO_MODELS: path.join(work, 'models'),
    ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
  };
  const pulled = await run(['pull', '--quiet', 'Tiny/LocoOperator-Tiny-GGUF:q8_0'], env);
  assert.equal(pulled.code, 0, pulled.stderr);

  const { tokenizer } = loadReference();
  const names = ['Tiny/LocoOperator-Tiny-GGUF:Q8_0', 'LocoOperator-Tiny.Q8_0.gguf', null];
  for (const [i, file] of EXAMPLES.entries()) {
    const conv = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'examples', file), 'utf8'));
    const text = await renderReference(conv, 'instruct-2507');
    const want = encode(tokenizer, text, true);
    const name = names[i % names.length];
    const args = ['run', ...(name ? ['--model', name] : []), '--messages', `examples/${file}`,
      '--json', '--max-tokens', '4', '--temp', '0', '--threads', '1', '--ctx', '4096'];
    const r = await run(args, env);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, SANITIZER);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.prompt_ids, want, `${file}: loco's prompt differs from the Jinja rendering`);
    assert.equal(out.ids.length > 0 || /\d+ tokens/.test(r.stderr), true);
    if (file === 'codebase_analysis.json') {
      // the tool calls and results became the template's own markers (single tokens)
      assert.ok(text.includes('<tool_call>\n{"name": "Bash", "arguments": {"command": "ls -F /home/dev/work/projects/httpx"'));
      assert.ok(text.includes('<tool_response>\nCHANGELOG.md'));
      const special = (s) => tokenizer.model.convert_tokens_to_ids([s])[0];
      assert.equal(out.prompt_ids.filter((id) => id === special('<tool_call>')).length, 2);
      assert.equal(out.prompt_ids.filter((id) => id === special('<tool_response>')).length, 2);
    }
  }
  // the store's default without --model ran above; this one has no model at all to fall back on
  const empty = await run(['run', '--messages', 'examples/quick_start.json'], { ...env, LOCO_MODELS: path.join(work, 'none') });
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /loco pull/);
});
