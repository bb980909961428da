// template.test.mjs: the engine's C chat template (bench/tool_template over src/engine/template.c)
// against the model's Jinja template rendered by @huggingface/jinja, byte for byte, for every
// conversation in tests/engine/conversations/ and both dialects (Instruct-2507, Qwen3 hybrid).
// The build folder comes from LOCO_BUILD_DIR (default build/ in the repository root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderReference, hybridTemplate, DIALECTS } from './template_ref.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const buildDir = path.resolve(root, process.env.LOCO_BUILD_DIR || 'build');
const tool = path.join(buildDir, 'tool_template');
const convDir = path.join(here, 'conversations');
const files = fs.readdirSync(convDir).filter((f) => f.endsWith('.json')).sort();

function renderC(file, dialect) {
  return execFileSync(tool, ['--dialect', dialect, file], { maxBuffer: 64 << 20 }).toString('utf8');
}

// Where the two differ, show the first differing byte with some context.
function explain(got, want) {
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  return `first difference at ${i}:\n  C:     ${JSON.stringify(got.slice(Math.max(0, i - 40), i + 40))}\n  jinja: ${JSON.stringify(want.slice(Math.max(0, i - 40), i + 40))}`;
}

test('the reference template is the Qwen3 hermes-style template with tools', () => {
  const t = hybridTemplate();
  for (const needle of ['<tools>', 'tool | tojson', '<tool_call>\\n{"name": "', '<tool_response>',
    'reasoning_content', '<|im_start|>assistant\\n']) {
    assert.ok(t.includes(needle), `chat_template lacks ${needle}`);
  }
});

test('there are at least 12 conversations', () => {
  assert.ok(files.length >= 12, `only ${files.length} conversations`);
});

for (const dialect of DIALECTS) {
  for (const f of files) {
    test(`${dialect}: ${f}`, async () => {
      const file = path.join(convDir, f);
      const conv = JSON.parse(fs.readFileSync(file, 'utf8'));
      const want = await renderReference(conv, dialect);
      const got = renderC(file, dialect);
      assert.ok(got === want, explain(got, want));
    });
  }
}

test('the dialects differ where documented (reasoning history, enable_thinking=false)', () => {
  const a = renderC(path.join(convDir, '12-reasoning-history.json'), 'instruct-2507');
  const b = renderC(path.join(convDir, '12-reasoning-history.json'), 'hybrid');
  assert.ok(a.includes('<think>\nold thoughts\n</think>\n\nA1'));
  assert.ok(!b.includes('old thoughts'));
  const c = renderC(path.join(convDir, '15-thinking-disabled.json'), 'hybrid');
  assert.ok(c.endsWith('<|im_start|>assistant\n<think>\n\n</think>\n\n'));
});
