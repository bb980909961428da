// llama_bench.mjs: llama.cpp's side of bench/run_engine_bench.sh: the same measurement as
// `loco bench` (prompt of --pp tokens after --depth tokens already in the KV cache, then --tg
// greedy tokens one forward pass each, the same token ids) through npm node-llama-cpp's prebuilt
// CPU build, set up as tests/engine/llama_ref.mjs sets it up (no GPU, no download, no build).
//
//   node bench/llama_bench.mjs --model F.gguf [--pp 512] [--tg 128] [--depth 0[,8192,...]]
//        [--threads 2] [--batch 512] [--flash-attn]
// One JSON object per depth on stdout: {depth, pp, tg, threads, pp_tps, tg_tps, ttft_s, load_s,
// peak_rss_bytes, flash_attn, build}.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const o = { pp: 512, tg: 128, depth: '0', threads: 2, batch: 512, 'flash-attn': false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--flash-attn') { o['flash-attn'] = true; continue; }
    if (!['--model', '--pp', '--tg', '--depth', '--threads', '--batch'].includes(a) || i + 1 >= argv.length) {
      throw new Error(`bad argument '${a}' (see the header of this file)`);
    }
    o[a.slice(2)] = argv[++i];
  }
  if (!o.model) throw new Error('--model F.gguf is required');
  for (const k of ['pp', 'tg', 'threads', 'batch']) {
    o[k] = Number(o[k]);
    if (!Number.isInteger(o[k]) || o[k] < 0) throw new Error(`--${k} wants a non-negative integer`);
  }
  o.depths = String(o.depth).split(',').map(Number);
  if (o.depths.some((d) => !Number.isInteger(d) || d < 0)) throw new Error('--depth wants counts');
  return o;
}

// The i-th benchmark token, as src/cli/cmd_bench.c makes it.
const benchToken = (i, vocab) => (1000 + ((i * 7919) % 90000)) % vocab;

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const base = process.env.LLREF_DIR || path.join(here, '..', 'tests');
  const require = createRequire(path.join(base, 'package.json'));
  const lib = await import(pathToFileURL(require.resolve('node-llama-cpp')).href);
  const t0 = performance.now();
  const llama = await lib.getLlama({
    gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, progressLogs: false,
    maxThreads: o.threads, logLevel: lib.LlamaLogLevel.error,
    logger: (level, msg) => process.stderr.write(`[llama.cpp ${level}] ${msg}\n`),
  });
  const model = await llama.loadModel({ modelPath: path.resolve(o.model), gpuLayers: 0, useMlock: false });
  const vocab = model.fileInfo.metadata?.tokenizer?.ggml?.tokens?.length;
  const maxDepth = Math.max(...o.depths);
  const ctxSize = maxDepth + (o.pp + o.tg) * o.depths.length + 16;
  const context = await model.createContext({
    contextSize: ctxSize, batchSize: Math.min(o.batch, ctxSize), sequences: 1,
    threads: { ideal: o.threads, min: o.threads }, flashAttention: o['flash-attn'],
    ignoreMemorySafetyChecks: true, failedCreationRemedy: false,
  });
  if (context.currentThreads !== o.threads) throw new Error(`llama.cpp uses ${context.currentThreads} threads, not ${o.threads}`);
  const seq = context.getSequence();
  const loadS = (performance.now() - t0) / 1000;
  const ids = Array.from({ length: ctxSize }, (_, i) => benchToken(i, vocab));
  let past = 0;
  const GREEDY = { temperature: 0 };
  for (const depth of o.depths) {
    if (past < depth) {
      await seq.controlledEvaluate(ids.slice(past, depth));
      past = depth;
    }
    const d = past;
    const tp = performance.now();
    let next = ids[d];
    if (o.pp > 0) {
      const input = ids.slice(d, d + o.pp).map((id, i) => (i + 1 < o.pp ? id
        : [id, { generateNext: { token: true, options: GREEDY } }]));
      const res = await seq.controlledEvaluate(input);
      next = res[o.pp - 1]?.next?.token;
      past += o.pp;
    }
    const tg0 = performance.now();
    for (let i = 0; i < o.tg; i++) {
      const r = await seq.controlledEvaluate([[next, { generateNext: { token: true, options: GREEDY } }]]);
      next = r[0]?.next?.token;
      past++;
    }
    const tg1 = performance.now();
    const ppS = (tg0 - tp) / 1000, tgS = (tg1 - tg0) / 1000;
    const out = {
      engine: 'llama.cpp', model: o.model, depth: d, pp: o.pp, tg: o.tg, threads: o.threads,
      pp_tps: o.pp ? o.pp / ppS : 0, tg_tps: o.tg ? o.tg / tgS : 0, ttft_s: ppS, load_s: loadS,
      peak_rss_bytes: process.resourceUsage().maxRSS * 1024, flash_attn: o['flash-attn'],
      build: llama.llamaCppRelease ?? null,
    };
    process.stdout.write(JSON.stringify(out) + '\n');
  }
  await llama.dispose();
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(`llama_bench: ${e?.message ?? e}\n`, () => process.exit(1));
});
