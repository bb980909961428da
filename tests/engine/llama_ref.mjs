// llama_ref.mjs: the llama.cpp reference for the engine tests: runs a GGUF through npm node-llama-cpp's
// prebuilt CPU libraries (no GPU, no download, no build) to give token ids, logits and greedy output
// that loco's tokenizer and forward pass are compared with. See README.md beside this file.
//
// Usage (JSON on stdout, errors on stderr with exit status 1, usage errors 2):
//   node llama_ref.mjs system
//   node llama_ref.mjs serve     (stdin: one JSON argument list per line; stdout: one answer per line)
//   node llama_ref.mjs info     --model F.gguf
//   node llama_ref.mjs tokenize --model F.gguf [--special] (--text T | --file F | --texts-file F.json)
//   node llama_ref.mjs generate --model F.gguf (--prompt-ids 1,2,3[;4,5,...] | --prompt-file F | --prompt T)
//                               [--n 64] [--ctx 2048] [--threads 1] [--batch 512]
//                               [--kv-type f16|f32] [--flash-attn] [--logits-out FILE] [--top 20]
//                               [--steps-top K]
// Module lookup: env LLREF_DIR (a dir holding node_modules/node-llama-cpp), else tests/.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

class UsageError extends Error {}

const FLAGS = new Set(['--special', '--flash-attn']);
const VALUES = new Set(['--model', '--text', '--file', '--texts-file', '--prompt-ids', '--prompt-file',
  '--prompt', '--n', '--ctx', '--threads', '--batch', '--kv-type', '--logits-out', '--top', '--steps-top']);

function parseArgs(argv) {
  const cmd = argv[0];
  if (!['system', 'info', 'tokenize', 'generate', 'serve'].includes(cmd)) throw new UsageError(`unknown command '${cmd ?? ''}' (system, info, tokenize, generate, serve)`);
  const o = { cmd };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (FLAGS.has(a)) o[a.slice(2)] = true;
    else if (VALUES.has(a)) {
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
      o[a.slice(2)] = argv[++i];
    } else throw new UsageError(`unknown argument '${a}'`);
  }
  if (!o.model && cmd !== 'system' && cmd !== 'serve') throw new UsageError('--model F.gguf is required');
  return o;
}

function intArg(o, name, def, min, max) {
  if (o[name] === undefined) return def;
  const s = o[name];
  if (!/^[0-9]+$/.test(s)) throw new UsageError(`--${name} must be a non-negative integer, got '${s}'`);
  const v = Number(s);
  if (v < min || v > max) throw new UsageError(`--${name} must be in ${min}..${max}, got ${v}`);
  return v;
}

async function loadLib() {
  const base = process.env.LLREF_DIR || path.join(here, '..');
  const require = createRequire(path.join(base, 'package.json'));
  let entry;
  try {
    entry = require.resolve('node-llama-cpp');
  } catch {
    throw new Error(`node-llama-cpp not found under ${base}/node_modules (set LLREF_DIR or install it, see tests/engine/README.md)`);
  }
  return import(pathToFileURL(entry).href);
}

// A Llama instance on the prebuilt CPU binary only: never builds, never downloads, no GPU.
async function openLlama(lib, threads) {
  return lib.getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: threads,
    logLevel: lib.LlamaLogLevel.error,
    logger: (level, msg) => process.stderr.write(`[llama.cpp ${level}] ${msg}${msg.endsWith('\n') ? '' : '\n'}`),
  });
}

// The Llama instance one command runs on: the serve loop's (kept for the next command), or a new
// one that release() disposes with everything loaded on it.
async function acquire(lib, threads, shared) {
  if (shared) {
    if (threads !== shared.threads) throw new UsageError(`serve runs ${shared.threads} thread(s); --threads ${threads} needs a process of its own`);
    return { llama: shared.llama, release: async () => {} };
  }
  const llama = await openLlama(lib, threads);
  return { llama, release: () => llama.dispose() };
}

async function loadModel(llama, file, vocabOnly) {
  if (!existsSync(file)) throw new Error(`model file not found: ${file}`);
  return llama.loadModel({ modelPath: path.resolve(file), gpuLayers: 0, vocabOnly, useMlock: false });
}

function readText(o) {
  if ((o.text === undefined) === (o.file === undefined)) throw new UsageError('give exactly one of --text T or --file F');
  return o.text !== undefined ? o.text : readFileSync(o.file, 'utf8');
}

// Which of node-llama-cpp's libggml-cpu-<variant>.so builds this process runs (ggml loads every
// x86 variant, scores it against the CPU and keeps the best): its SIMD level decides the
// numerics (docs/internals/qwen3.md). null when none is mapped.
function cpuVariant() {
  let maps = '';
  try { maps = readFileSync('/proc/self/maps', 'utf8'); } catch { return null; }
  const found = new Set([...maps.matchAll(/libggml-cpu-([A-Za-z0-9_]+)\.so/g)].map((m) => m[1]));
  return found.size === 1 ? [...found][0] : (found.size ? [...found].sort().join('+') : null);
}

// The x86 features that select llama.cpp's CPU build and its kernels.
const FEATURES = ['avx', 'f16c', 'fma', 'avx2', 'avx_vnni', 'avx512f', 'avx512dq', 'avx512bw',
  'avx512vl', 'avx512vbmi', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_int8', 'amx_bf16'];

function cpuInfo() {
  let text = '';
  try { text = readFileSync('/proc/cpuinfo', 'utf8'); } catch { /* not Linux */ }
  const model = text.match(/^model name\s*:\s*(.*)$/m)?.[1] ?? os.cpus()[0]?.model ?? null;
  const flags = new Set((text.match(/^flags\s*:\s*(.*)$/m)?.[1] ?? '').split(/\s+/));
  return { cpu_model: model, cpu_features: FEATURES.filter((f) => flags.has(f)) };
}

async function cmdSystem(lib, o, shared) {
  const { llama, release } = await acquire(lib, 1, shared);
  const out = { ...cpuInfo(), cpu_variant: cpuVariant(), llama_cpp_release: llama.llamaCppRelease ?? null };
  await release();
  return out;
}

async function cmdInfo(lib, o, shared) {
  const { llama, release } = await acquire(lib, 1, shared);
  const model = await loadModel(llama, o.model, true);
  const md = model.fileInfo.metadata ?? {};
  const arch = md.general?.architecture;
  const out = {
    architecture: arch ?? null,
    name: md.general?.name ?? null,
    vocab_size: md.tokenizer?.ggml?.tokens?.length ?? null,
    n_ctx_train: (arch ? md[arch]?.context_length : undefined) ?? null,
    n_embd: (arch ? md[arch]?.embedding_length : undefined) ?? null,
    tokenizer_model: md.tokenizer?.ggml?.model ?? null,
    tokenizer_pre: md.tokenizer?.ggml?.pre ?? null,
    bos: model.tokens.bos, eos: model.tokens.eos, eot: model.tokens.eot,
    add_bos: model.tokens.shouldPrependBosToken,
    hparams: arch ? (md[arch] ?? null) : null,
    tensor_count: model.fileInfo.totalTensorCount ?? null,
    file_type: md.general?.file_type ?? null,
    llama_cpp_build: llama.llamaCppRelease ?? null,
  };
  await model.dispose();
  await release();
  return out;
}

// --texts-file F.json (a JSON list of strings) tokenizes them all with one model load:
// {"ids": [[...], ...]} in the same order.
async function cmdTokenize(lib, o, shared) {
  const many = o['texts-file'] !== undefined;
  if (many && (o.text !== undefined || o.file !== undefined)) throw new UsageError('--texts-file excludes --text and --file');
  const texts = many ? JSON.parse(readFileSync(o['texts-file'], 'utf8')) : [readText(o)];
  if (!Array.isArray(texts) || !texts.every((t) => typeof t === 'string')) throw new UsageError('--texts-file must hold a JSON list of strings');
  const { llama, release } = await acquire(lib, 1, shared);
  const model = await loadModel(llama, o.model, true);
  const ids = texts.map((t) => model.tokenize(t, !!o.special));
  await model.dispose();
  await release();
  return { ids: many ? ids : ids[0] };
}

// The prompts as lists of ids: --prompt-ids may hold several, separated by ';'.
function promptIds(model, o) {
  const given = ['prompt-ids', 'prompt-file', 'prompt'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one of --prompt-ids 1,2,3 / --prompt-file F / --prompt T');
  if (o['prompt-ids'] !== undefined) {
    return o['prompt-ids'].split(';').map((p) => {
      const s = p.trim();
      if (!/^[0-9]+(\s*,\s*[0-9]+)*$/.test(s)) throw new UsageError(`--prompt-ids must be comma-separated token ids (prompts separated by ';'), got '${s}'`);
      return s.split(',').map((x) => Number(x.trim()));
    });
  }
  const text = o['prompt-file'] !== undefined ? readFileSync(o['prompt-file'], 'utf8') : o.prompt;
  return [model.tokenize(text, true)]; // special tokens parsed, no BOS (node-llama-cpp never adds one here)
}

// The k highest logits of a Map id -> logit, highest first (ties by id).
function topOf(logits, k) {
  const pairs = logits ? [...logits.entries()] : [];
  pairs.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  return pairs.slice(0, k).map(([id, v]) => [id, v]);
}

// Greedy = llama.cpp's greedy sampler alone: temperature 0 makes node-llama-cpp build the chain
// [greedy] (top-k/top-p/min-p/dist are not added); no repeat/DRY penalty (no punish tokens given),
// no token bias, no grammar. Tokens are stepped one at a time, so EOG never stops generation.
const GREEDY = { temperature: 0 };

async function cmdGenerate(lib, o, shared) {
  const n = intArg(o, 'n', 64, 0, 1 << 20);
  const ctxSize = intArg(o, 'ctx', 2048, 16, 1 << 20);
  const threads = intArg(o, 'threads', 1, 1, 1024);
  const batch = intArg(o, 'batch', 512, 1, 1 << 20);
  const top = intArg(o, 'top', 20, 0, 1 << 20);
  const stepsK = intArg(o, 'steps-top', 0, 0, 1 << 20);
  const kvType = (o['kv-type'] ?? 'f16').toUpperCase();
  if (kvType !== 'F16' && kvType !== 'F32') throw new UsageError(`--kv-type must be f16 or f32, got '${o['kv-type']}'`);

  const t0 = performance.now();
  const { llama, release } = await acquire(lib, threads, shared);
  const model = await loadModel(llama, o.model, false);
  try {
    return await generate(model, o, { n, ctxSize, threads, batch, top, stepsK, kvType, t0 });
  } finally {
    await model.dispose();
    await release();
  }
}

async function generate(model, o, { n, ctxSize, threads, batch, top, stepsK, kvType, t0 }) {
  const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
  const prompts = promptIds(model, o);
  for (const prompt of prompts) {
    if (prompt.length === 0) throw new UsageError('the prompt is empty');
    for (const id of prompt) if (!(id < vocab)) throw new UsageError(`prompt token id ${id} is outside the vocabulary (${vocab})`);
    if (prompt.length + n > ctxSize) throw new Error(`prompt (${prompt.length}) + n (${n}) exceeds --ctx ${ctxSize}`);
  }
  const context = await model.createContext({
    contextSize: ctxSize, batchSize: Math.min(batch, ctxSize), sequences: 1,
    threads: { ideal: threads, min: threads }, flashAttention: !!o['flash-attn'],
    experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType,
    ignoreMemorySafetyChecks: true, failedCreationRemedy: false,
  });
  const seq = context.getSequence();
  if (context.currentThreads !== threads) throw new Error(`llama.cpp uses ${context.currentThreads} threads, not ${threads}`);
  const t1 = performance.now();

  const runs = [];
  const firstLogits = [];
  let promptMs = 0;
  for (const prompt of prompts) {
    if (runs.length) await seq.clearHistory(); // an empty cache, as in a fresh context
    const tp = performance.now();
    const ids = [];
    const stepsTop = [];
    let firstTop = [];
    if (n > 0) {
      const topWant = Math.max(top, stepsK);
      const want = o['logits-out'] !== undefined ? true : (topWant > 0 ? { filter: { tokens: [], includeTop: topWant } } : false);
      const input = prompt.map((id, i) => (i + 1 < prompt.length ? id
        : [id, { generateNext: { token: true, logits: want, options: GREEDY } }]));
      const res = await seq.controlledEvaluate(input);
      const next = res[prompt.length - 1]?.next;
      if (next?.token == null) throw new Error('llama.cpp produced no token for the prompt');
      ids.push(next.token);
      firstTop = topOf(next.logits, top);
      if (stepsK) stepsTop.push(topOf(next.logits, stepsK));
      if (o['logits-out'] !== undefined) {
        if (next.logits?.size !== vocab) throw new Error(`got ${next.logits.size} logits, expected ${vocab}`);
        const all = new Float32Array(vocab);
        for (const [id, v] of next.logits) all[id] = v;
        firstLogits.push(all);
      }
      promptMs += performance.now() - tp;
      const stepWant = stepsK ? { filter: { tokens: [], includeTop: stepsK } } : false;
      while (ids.length < n) {
        const r = await seq.controlledEvaluate([[ids[ids.length - 1], { generateNext: { token: true, logits: stepWant, options: GREEDY } }]]);
        const tok = r[0]?.next?.token;
        if (tok == null) throw new Error(`llama.cpp produced no token at step ${ids.length}`);
        ids.push(tok);
        if (stepWant) stepsTop.push(topOf(r[0].next.logits, stepsK));
      }
    }
    const run = { prompt_ids: prompt, ids, first_logits_top: firstTop };
    if (stepsK) run.steps_top = stepsTop;
    runs.push(run);
  }
  let logitsFile = null;
  if (o['logits-out'] !== undefined && firstLogits.length) {
    writeFileSync(o['logits-out'], Buffer.concat(firstLogits.map((a) => Buffer.from(a.buffer))));
    logitsFile = path.resolve(o['logits-out']);
  }
  const t2 = performance.now();
  const variant = cpuVariant();
  const common = {
    threads, ctx: ctxSize, kv_type: kvType.toLowerCase(), flash_attn: !!o['flash-attn'], cpu_variant: variant,
    timing_ms: { load: round(t1 - t0), prompt: round(promptMs), generate: round(t2 - t1 - promptMs) },
  };
  if (logitsFile) common.first_logits_file = logitsFile;
  return runs.length === 1 ? { ...runs[0], ...common } : { runs, ...common };
}

const round = (x) => Math.round(x * 10) / 10;

const COMMANDS = { system: cmdSystem, info: cmdInfo, tokenize: cmdTokenize, generate: cmdGenerate };

// serve: one process for many commands (node, node-llama-cpp and the CPU backend load once,
// ~1.7 s of CPU saved per command). Each stdin line is a JSON list of the arguments of one
// command (["generate", "--model", ...]); each answer is one stdout line, {"ok":true,"result":
// <what the command prints>} or {"ok":false,"error":"..."}, in order. 1 llama.cpp thread. Ends
// at the end of stdin.
async function serve(lib) {
  const shared = { threads: 1, llama: await openLlama(lib, 1) };
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let reply;
    try {
      const argv = JSON.parse(line);
      if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw new UsageError('each line must be a JSON list of strings');
      const o = parseArgs(argv);
      if (!COMMANDS[o.cmd]) throw new UsageError(`'${o.cmd}' cannot be served`);
      reply = { ok: true, result: await COMMANDS[o.cmd](lib, o, shared) };
    } catch (e) {
      reply = { ok: false, error: e?.message ?? String(e) };
    }
    await new Promise((r) => process.stdout.write(JSON.stringify(reply) + '\n', r));
  }
  await shared.llama.dispose();
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`llama_ref: ${e.message}\n`);
    process.exit(2);
  }
  try {
    const lib = await loadLib();
    if (o.cmd === 'serve') {
      await serve(lib);
      process.exit(0);
    }
    const out = await COMMANDS[o.cmd](lib, o, null);
    // exit only once stdout is flushed: on a pipe, process.exit() would cut a large JSON short.
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
  } catch (e) {
    const code = e instanceof UsageError ? 2 : 1;
    process.stderr.write(`llama_ref: error: ${e?.message ?? e}\n`, () => process.exit(code));
  }
}

await main();
