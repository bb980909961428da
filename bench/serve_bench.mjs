// serve_bench.mjs: the serving benchmark of `loco serve --model` (issue 9), driven by
// bench/run_serve_bench.sh. Two parts, each against fresh `loco serve` processes:
//
//   concurrency  aggregate generation tokens/s with 1, 4 and 8 concurrent agent conversations
//                (each its own sub-agent prompt, computed and cached first; then GEN tokens each,
//                streamed, all started together; the clock runs until the last one ends);
//   diet         first-turn prompt tokens of each captured Claude Code request with and
//                without the prompt diet (the engine's exact count of the rendered prompt);
//   replay       a 10-turn explorer conversation as Claude Code sends it (the captured first
//                turn of tests/data/claude_code/explore_subagent_first.json, then one Read
//                tool call and its result per turn), time to first token per turn, with and
//                without the prefix cache and the prompt diet; then a second sub-agent of the
//                same session (same prompt, another task). "Without the prefix cache" is a
//                fresh server per turn, so every turn computes its whole prompt.
//
// TTFT is the time to answer the turn with max_tokens 1 (prompt processing plus one token).
// Usage: node bench/serve_bench.mjs --loco BIN --model FILE [--part diet|concurrency|replay|all]
//        [--threads N] [--gen N] [--ctx N] [--concs 1,4,8] [--turns 10] [--out DIR]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']);
  return acc;
}, []));
const LOCO = args.loco;
const MODEL = args.model;
const PART = args.part ?? 'all';
const THREADS = args.threads ?? '0';
const GEN = Number(args.gen ?? 32);
const CTX = args.ctx ?? '16384';
const CONCS = (args.concs ?? '1,4,8').split(',').map(Number);
const TURNS = Number(args.turns ?? 10);
const OUT = args.out ?? path.join(ROOT, 'bench', 'out');
if (!LOCO || !MODEL) {
  console.error('usage: node bench/serve_bench.mjs --loco BIN --model FILE [options]');
  process.exit(2);
}
fs.mkdirSync(OUT, { recursive: true });
const HAIKU = 'claude-haiku-4-5-20251001';
const now = () => performance.now();

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function serve(extra, tag) {
  const port = await freePort();
  const logFile = path.join(OUT, `serve-${tag}.log`);
  const log = fs.openSync(logFile, 'a');
  const proc = spawn(LOCO, ['serve', '--listen', `127.0.0.1:${port}`, '--model', MODEL, '--ctx', CTX,
    '--threads', THREADS, ...extra], { stdio: ['ignore', log, log], env: { PATH: process.env.PATH, HOME: OUT } });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health`)).status === 200) break;
    } catch { /* loading */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      await new Promise((r) => proc.on('exit', r));
      fs.closeSync(log);
    },
  };
}

async function postJson(url, body, headers = {}) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers }, body: JSON.stringify(body) });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${url}: HTTP ${r.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

// ---- part 1: concurrency ----

const TASKS = [
  'Find where the HTTP server parses request headers.', 'List the modules that read configuration files.',
  'Explain how the tokenizer handles special tokens.', 'Where are tool calls parsed out of model text?',
  'Find every place a file is written atomically.', 'How does the scheduler pick the next sequence?',
  'Where is the prefix cache evicted?', 'Which tests cover the SSE writer?',
];

// One conversation: its prompt computed first (max_tokens 1, so it sits in the prefix
// cache), then an answer of GEN tokens, streamed; returns when it ends, with its token count.
async function conversation(url, i) {
  const messages = [
    { role: 'system', content: fs.readFileSync(path.join(ROOT, 'prompts', 'local_system.txt'), 'utf8') },
    { role: 'user', content: `TASK: ${TASKS[i % TASKS.length]} (conversation ${i})` },
  ];
  const body = { model: path.basename(MODEL, '.gguf'), messages, temperature: 0.7 };
  await postJson(`${url}/v1/chat/completions`, { ...body, max_tokens: 1 });
  return async () => {
    const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, max_tokens: GEN, stream: true, stream_options: { include_usage: true } }) });
    let tokens = 0, buf = '';
    const dec = new TextDecoder();
    for await (const chunk of r.body) {
      buf += dec.decode(chunk, { stream: true });
      let k;
      while ((k = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
        const d = JSON.parse(ev.slice(6));
        if (d.usage) tokens = d.usage.completion_tokens;
      }
    }
    return { tokens };
  };
}

async function partConcurrency() {
  const rows = [];
  const maxc = Math.max(...CONCS);
  const loco = await serve(['--parallel', String(maxc)], 'concurrency');
  try {
    for (const c of CONCS) {
      const runs = [];
      for (let i = 0; i < c; i++) runs.push(await conversation(loco.url, i));
      const t0 = now(); // the prompts are cached: from here on it is generation
      const res = await Promise.all(runs.map((run) => run()));
      const t1 = now();
      const tokens = res.reduce((n, r) => n + r.tokens, 0);
      rows.push({ c, tokens, seconds: (t1 - t0) / 1000, tps: tokens / ((t1 - t0) / 1000) });
    }
  } finally {
    await loco.stop();
  }
  const one = rows.find((r) => r.c === 1)?.tps;
  console.log('\nconcurrency | generated tokens | seconds | aggregate tok/s | x one conversation');
  for (const r of rows)
    console.log(`${String(r.c).padStart(11)} | ${String(r.tokens).padStart(16)} | ${r.seconds.toFixed(2).padStart(7)} | ${r.tps.toFixed(2).padStart(15)} | ${one ? (r.tps / one).toFixed(2) : '-'}`);
  const four = rows.find((r) => r.c === 4);
  if (one && four) console.log(`goal: 4 concurrent >= 2.5x one: ${(four.tps / one).toFixed(2)}x ${four.tps / one >= 2.5 ? 'met' : 'NOT met'}`);
}

// ---- part 2: the replayed explorer conversation ----

const FILE_TEXT = Array.from({ length: 12 }, (_, i) => `${i + 1}\tstatic int helper_${i}(struct conn *c) { return c->fd > ${i} ? read_header(c, ${i}) : -1; }`).join('\n');

// The request of turn k (0-based): the captured first turn plus k tool calls and results.
function turnBody(base, k, task) {
  const body = structuredClone(base);
  body.stream = false;
  body.max_tokens = 1;
  delete body.thinking; // a thinking budget must stay below max_tokens (the API's rule, checked)
  if (task) {
    const blocks = body.messages[0].content;
    blocks[blocks.length - 1] = { type: 'text', text: task };
  }
  for (let i = 0; i < k; i++) {
    const id = `toolu_bench${i}`;
    body.messages.push({ role: 'assistant', content: [{ type: 'text', text: `Reading file ${i}.` }, { type: 'tool_use', id, name: 'Read', input: { file_path: `/tmp/cc-test/repo/src/f${i}.c` } }] });
    body.messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: `${FILE_TEXT.replaceAll('helper_', `f${i}_helper_`)}\n\n<system-reminder>\n<total_tokens>${14999000 - i * 800} tokens left</total_tokens>\n</system-reminder>` }] });
  }
  return body;
}

async function timeTurn(url, body, agent) {
  const t = now();
  const r = await postJson(`${url}/v1/messages`, body, { 'x-claude-code-session-id': 'bench-session', 'x-claude-code-agent-id': agent });
  return { ms: now() - t, input: r.usage.input_tokens, cached: r.usage.cache_read_input_tokens ?? 0 };
}

async function replay(diet, cache) {
  const base = JSON.parse(fs.readFileSync(path.join(ROOT, 'tests', 'data', 'claude_code', 'explore_subagent_first.json'), 'utf8')).body;
  const flags = diet ? [] : ['--keep-reminders'];
  const tag = `replay-${diet ? 'diet' : 'nodiet'}-${cache ? 'cache' : 'nocache'}`;
  const turns = [];
  let loco = cache ? await serve(flags, tag) : null;
  try {
    for (let k = 0; k < TURNS; k++) {
      if (!cache) loco = await serve(flags, tag);
      turns.push(await timeTurn(loco.url, turnBody(base, k), 'agent-1'));
      if (!cache) {
        await loco.stop();
        loco = null;
      }
    }
    if (!loco) loco = await serve(flags, tag);
    const second = await timeTurn(loco.url, turnBody(base, 0, 'Find where the SSE writer frames events in /tmp/cc-test/repo.'), 'agent-2');
    return { turns, second };
  } finally {
    if (loco) await loco.stop();
  }
}

// A prefix cache saves the tokens it does not compute and nothing else, so a turn can be about
// (prompt tokens / tokens it must compute) times faster than recomputing it, no more (the new
// tokens sit at depth: attention makes them dearer per token, not cheaper; a little more shows
// where the recomputing column's fresh server starts cold). That bound is printed beside each
// ratio, so a figure below 10x says whether the cache or the conversation's shape holds it back.
async function partReplay() {
  const results = {};
  for (const diet of [true, false])
    for (const cache of [true, false]) results[`${diet ? 'diet' : 'no diet'}, ${cache ? 'cache' : 'no cache'}`] = await replay(diet, cache);
  const cols = Object.keys(results);
  console.log(`\nTTFT per turn in ms (prompt tokens / from the prefix cache); columns: ${cols.join(' | ')}`);
  for (let k = 0; k < TURNS; k++)
    console.log(`turn ${String(k + 1).padStart(2)} | ${cols.map((c) => { const t = results[c].turns[k]; return `${t.ms.toFixed(0).padStart(7)} (${t.input}/${t.cached})`; }).join(' | ')}`);
  console.log(`2nd agent | ${cols.map((c) => { const t = results[c].second; return `${t.ms.toFixed(0).padStart(7)} (${t.input}/${t.cached})`; }).join(' | ')}`);
  const bound = (t) => t.input / Math.max(1, t.input - t.cached);
  for (const diet of ['diet', 'no diet']) {
    const on = results[`${diet}, cache`], off = results[`${diet}, no cache`];
    console.log(`\n${diet}: turn | TTFT cache ms | recompute ms | x faster | bound (prompt / computed tokens) | of the bound`);
    for (let k = 1; k < TURNS; k++) {
      const a = on.turns[k], b = off.turns[k], x = b.ms / a.ms;
      console.log(`${diet}: ${String(k + 1).padStart(4)} | ${a.ms.toFixed(0).padStart(13)} | ${b.ms.toFixed(0).padStart(12)} | ${x.toFixed(1).padStart(8)} | ${bound(a).toFixed(1).padStart(33)} | ${(100 * x / bound(a)).toFixed(0).padStart(11)}%`);
    }
    const later = (r) => r.turns.slice(1).reduce((n, t) => n + t.ms, 0) / (TURNS - 1);
    const meanBound = on.turns.slice(1).reduce((n, t) => n + bound(t), 0) / (TURNS - 1);
    console.log(`${diet}: turns 2-${TURNS} mean TTFT ${later(on).toFixed(0)} ms with the cache, ${later(off).toFixed(0)} ms recomputing: ${(later(off) / later(on)).toFixed(1)}x (goal >= 10x; mean bound ${meanBound.toFixed(1)}x)`);
    const s = on.second;
    console.log(`${diet}: second sub-agent's first token ${s.ms.toFixed(0)} ms vs the first's ${on.turns[0].ms.toFixed(0)} ms: ${(on.turns[0].ms / s.ms).toFixed(1)}x sooner (goal >= 10x; it computed ${s.input - s.cached} of ${s.input} tokens, the first ${on.turns[0].input - on.turns[0].cached})`);
  }
  const d = results['diet, cache'].turns[0], n = results['no diet, cache'].turns[0];
  console.log(`first turn: ${d.input} prompt tokens with the diet, ${n.input} without; TTFT ${d.ms.toFixed(0)} vs ${n.ms.toFixed(0)} ms`);
}

// ---- part 3: the prompt diet on the captured requests (exact counts of the rendered prompt) ----

async function partDiet() {
  const dir = path.join(ROOT, 'tests', 'data', 'claude_code');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  const diet = await serve([], 'diet');
  const full = await serve(['--keep-reminders'], 'nodiet');
  console.log('\ncaptured request | prompt tokens with the diet | without | saved');
  try {
    for (const f of files) {
      const body = { ...JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')).body, model: HAIKU };
      const a = (await postJson(`${diet.url}/v1/messages/count_tokens`, body)).input_tokens;
      const b = (await postJson(`${full.url}/v1/messages/count_tokens`, body)).input_tokens;
      console.log(`${f} | ${a} | ${b} | ${b - a}`);
    }
  } finally {
    await diet.stop();
    await full.stop();
  }
}

if (PART === 'diet' || PART === 'all') await partDiet();
if (PART === 'concurrency' || PART === 'all') await partConcurrency();
if (PART === 'replay' || PART === 'all') await partReplay();
