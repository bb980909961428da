// llama_ref.mjs: the llama.cpp reference for the engine tests: runs a GGUF through npm node-llama-cpp's
// prebuilt CPU libraries (no GPU, no download, no build) to give token ids, logits and greedy output
// that loco's tokenizer and forward pass are compared with. See README.md beside this file.
//
// Usage (JSON on stdout, errors on stderr with exit status 1, usage errors 2):
//   node llama_ref.mjs info     --model F.gguf
//   node llama_ref.mjs tokenize --model F.gguf [--special] (--text T | --file F)
//   node llama_ref.mjs generate --model F.gguf (--prompt-ids 1,2,3 | --prompt-file F | --prompt T)
//                               [--n 64] [--ctx 2048] [--threads 1] [--batch 512]
//                               [--kv-type f16|f32] [--flash-attn] [--logits-out FILE] [--top 20]
// Module lookup: env LLREF_DIR (a dir holding node_modules/node-llama-cpp), else tests/.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

class UsageError extends Error {}

const FLAGS = new Set(['--special', '--flash-attn']);
const VALUES = new Set(['--model', '--text', '--file', '--prompt-ids', '--prompt-file', '--prompt',
  '--n', '--ctx', '--threads', '--batch', '--kv-type', '--logits-out', '--top']);

function parseArgs(argv) {
  const cmd = argv[0];
  if (!['info', 'tokenize', 'generate'].includes(cmd)) throw new UsageError(`unknown command '${cmd ?? ''}' (info, tokenize, generate)`);
  const o = { cmd };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (FLAGS.has(a)) o[a.slice(2)] = true;
    else if (VALUES.has(a)) {
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
      o[a.slice(2)] = argv[++i];
    } else throw new UsageError(`unknown argument '${a}'`);
  }
  if (!o.model) throw new UsageError('--model F.gguf is required');
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

async function loadModel(llama, file, vocabOnly) {
  if (!existsSync(file)) throw new Error(`model file not found: ${file}`);
  return llama.loadModel({ modelPath: path.resolve(file), gpuLayers: 0, vocabOnly, useMlock: false });
}

function readText(o) {
  if ((o.text === undefined) === (o.file === undefined)) throw new UsageError('give exactly one of --text T or --file F');
  return o.text !== undefined ? o.text : readFileSync(o.file, 'utf8');
}

async function cmdInfo(lib, o) {
  const llama = await openLlama(lib, 1);
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
  await llama.dispose();
  return out;
}

async function cmdTokenize(lib, o) {
  const text = readText(o);
  const llama = await openLlama(lib, 1);
  const model = await loadModel(llama, o.model, true);
  const ids = model.tokenize(text, !!o.special);
  await llama.dispose();
  return { ids };
}

function promptIds(model, o) {
  const given = ['prompt-ids', 'prompt-file', 'prompt'].filter((k) => o[k] !== undefined);
  if (given.length !== 1) throw new UsageError('give exactly one of --prompt-ids 1,2,3 / --prompt-file F / --prompt T');
  if (o['prompt-ids'] !== undefined) {
    const s = o['prompt-ids'].trim();
    if (!/^[0-9]+(\s*,\s*[0-9]+)*$/.test(s)) throw new UsageError(`--prompt-ids must be comma-separated token ids, got '${s}'`);
    return s.split(',').map((x) => Number(x.trim()));
  }
  const text = o['prompt-file'] !== undefined ? readFileSync(o['prompt-file'], 'utf8') : o.prompt;
  return model.tokenize(text, true); // special tokens parsed, no BOS (node-llama-cpp never adds one here)
}

// Greedy = llama.cpp's greedy sampler alone: temperature 0 makes node-llama-cpp build the chain
// [greedy] (top-k/top-p/min-p/dist are not added); no repeat/DRY penalty (no punish tokens given),
// no token bias, no grammar. Tokens are stepped one at a time, so EOG never stops generation.
const GREEDY = { temperature: 0 };

async function cmdGenerate(lib, o) {
  const n = intArg(o, 'n', 64, 0, 1 << 20);
  const ctxSize = intArg(o, 'ctx', 2048, 16, 1 << 20);
  const threads = intArg(o, 'threads', 1, 1, 1024);
  const batch = intArg(o, 'batch', 512, 1, 1 << 20);
  const top = intArg(o, 'top', 20, 0, 1 << 20);
  const kvType = (o['kv-type'] ?? 'f16').toUpperCase();
  if (kvType !== 'F16' && kvType !== 'F32') throw new UsageError(`--kv-type must be f16 or f32, got '${o['kv-type']}'`);

  const t0 = performance.now();
  const llama = await openLlama(lib, threads);
  const model = await loadModel(llama, o.model, false);
  const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
  const prompt = promptIds(model, o);
  if (prompt.length === 0) throw new UsageError('the prompt is empty');
  for (const id of prompt) if (!(id < vocab)) throw new UsageError(`prompt token id ${id} is outside the vocabulary (${vocab})`);
  if (prompt.length + n > ctxSize) throw new Error(`prompt (${prompt.length}) + n (${n}) exceeds --ctx ${ctxSize}`);
  const context = await model.createContext({
    contextSize: ctxSize, batchSize: Math.min(batch, ctxSize), sequences: 1,
    threads: { ideal: threads, min: threads }, flashAttention: !!o['flash-attn'],
    experimentalKvCacheKeyType: kvType, experimentalKvCacheValueType: kvType,
    ignoreMemorySafetyChecks: true, failedCreationRemedy: false,
  });
  const seq = context.getSequence();
  if (context.currentThreads !== threads) throw new Error(`llama.cpp uses ${context.currentThreads} threads, not ${threads}`);
  const t1 = performance.now();

  const ids = [];
  let firstTop = [];
  let logitsFile = null;
  let promptMs = 0;
  if (n > 0) {
    const want = o['logits-out'] !== undefined ? true : (top > 0 ? { filter: { tokens: [], includeTop: top } } : false);
    const input = prompt.map((id, i) => (i + 1 < prompt.length ? id
      : [id, { generateNext: { token: true, logits: want, options: GREEDY } }]));
    const res = await seq.controlledEvaluate(input);
    const next = res[prompt.length - 1]?.next;
    if (next?.token == null) throw new Error('llama.cpp produced no token for the prompt');
    ids.push(next.token);
    const pairs = next.logits ? [...next.logits.entries()] : [];
    pairs.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    firstTop = pairs.slice(0, top).map(([id, v]) => [id, v]);
    if (o['logits-out'] !== undefined) {
      if (next.logits?.size !== vocab) throw new Error(`got ${next.logits.size} logits, expected ${vocab}`);
      const all = new Float32Array(vocab);
      for (const [id, v] of next.logits) all[id] = v;
      writeFileSync(o['logits-out'], Buffer.from(all.buffer));
      logitsFile = path.resolve(o['logits-out']);
    }
    promptMs = performance.now() - t1;
    while (ids.length < n) {
      const r = await seq.controlledEvaluate([[ids[ids.length - 1], { generateNext: { token: true, options: GREEDY } }]]);
      const tok = r[0]?.next?.token;
      if (tok == null) throw new Error(`llama.cpp produced no token at step ${ids.length}`);
      ids.push(tok);
    }
  }
  const t2 = performance.now();
  await llama.dispose();
  const out = {
    prompt_ids: prompt, ids, first_logits_top: firstTop,
    threads, ctx: ctxSize, kv_type: kvType.toLowerCase(), flash_attn: !!o['flash-attn'],
    timing_ms: { load: round(t1 - t0), prompt: round(promptMs), generate: round(t2 - t1 - promptMs) },
  };
  if (logitsFile) out.first_logits_file = logitsFile;
  return out;
}

const round = (x) => Math.round(x * 10) / 10;

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
    const run = { info: cmdInfo, tokenize: cmdTokenize, generate: cmdGenerate }[o.cmd];
    const out = await run(lib, o);
    // exit only once stdout is flushed: on a pipe, process.exit() would cut a large JSON short.
    process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0));
  } catch (e) {
    const code = e instanceof UsageError ? 2 : 1;
    process.stderr.write(`llama_ref: error: ${e?.message ?? e}\n`, () => process.exit(code));
  }
}

await main();
