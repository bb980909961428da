// cli.test.mjs: the command line as a new user meets it, on the real binary: llama.cpp's flag
// spellings, "did you mean", `-` for standard input, `loco version`, base URLs with or without
// /v1, a model file selecting the built-in engine, the --ctx warning, `loco setup` run twice,
// the turn lines of `loco ask`, `loco analyze` outside the checkout (installed by
// scripts/install.sh with its man page and completions), and `loco eval` stopping at an
// unreachable server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, REPO_ROOT, gateway, anthropic, HAIKU } from './helpers.mjs';
import { call, startModel } from './agent_standin.mjs';
import { startEvalStandin } from './eval_standin.mjs';
import { synthTinyModel } from './hub_standin.mjs';

const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
const EVAL_SAMPLES = path.join(REPO_ROOT, 'tests', 'data', 'eval', 'samples.jsonl');
const EVAL_PREDICTIONS = path.join(REPO_ROOT, 'tests', 'data', 'eval', 'predictions.jsonl');

function scratch() {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'loco-cli-')));
}

function makeRepo(dir) {
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'src', 'config.py'), 'CONFIG_VALUE = 42\n');
  return dir;
}

// Runs loco; resolves {code, stdout, stderr}. opts: cwd, env (added to a clean one), input
// (standard input; else closed), bin.
function run(args, opts = {}) {
  return new Promise((resolve, reject) => {
    const cwd = opts.cwd ?? scratch();
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: cwd,
      LANG: 'C.UTF-8',
      LOCO_MODELS: path.join(cwd, 'no-models'),
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
      ...(opts.env ?? {}),
    };
    const proc = spawn(opts.bin ?? LOCO_BIN, args, { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60000);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (SANITIZER.test(stderr)) reject(new Error(`sanitizer report from loco ${args.join(' ')}:\n${stderr}`));
      else resolve({ code, signal, stdout, stderr });
    });
    proc.stdin.on('error', () => {}); // loco may exit before reading it
    proc.stdin.end(opts.input ?? '');
  });
}

test('loco version, -V and --version print the version', async () => {
  for (const args of [['version'], ['-V'], ['--version']]) {
    const r = await run(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^loco \d+\.\d+\.\d+\nbuilt for \S+ \S+ with /);
  }
  const r = await run(['version', 'extra']);
  assert.equal(r.code, 2);
});

test('did you mean: a mistyped command, subcommand or flag', async () => {
  let r = await run(['serv']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /'serv' is not a loco command/);
  assert.match(r.stderr, /did you mean 'serve'\?/);
  r = await run(['analyse', 'x']);
  assert.match(r.stderr, /did you mean 'analyze'\?/);
  r = await run(['model', 'lsit']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /loco model: did you mean 'list'\?/);
  r = await run(['serve', '--lisen', '127.0.0.1:1']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /loco serve: did you mean '--listen'\?/);
  const dir = scratch();
  r = await run(['ask', makeRepo(path.join(dir, 'r')), 'q', '--modle', 'x'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /loco ask: did you mean '--model'\?/);
  r = await run(['model', 'list', '--jsno']);
  assert.match(r.stderr, /loco model list: did you mean '--json'\?/);
  // a value that looks like a flag is not "corrected"
  r = await run(['eval', 'x.jsonl', '--model-label', '--oops', '--bogus']);
  assert.doesNotMatch(r.stderr, /did you mean '--model-label'/);
});

test('help --man and completion scripts come from the help texts', async () => {
  const man = await run(['help', '--man']);
  assert.equal(man.code, 0, man.stderr);
  assert.match(man.stdout, /^\.\\" loco\(1\)/);
  assert.match(man.stdout, /\n\.TH LOCO 1 /);
  for (const c of ['pull', 'serve', 'setup', 'run', 'tokenize', 'ask', 'analyze', 'eval', 'model list', 'model synth']) {
    assert.ok(man.stdout.includes(`.SS "loco ${c}"\n`), `man page lacks loco ${c}`);
  }
  assert.ok(man.stdout.includes('\\-\\-local\\-url URL'), 'serve flags in the man page');
  const r = await run(['help', 'eval']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^usage: loco eval /);

  const bash = await run(['completion', 'bash']);
  assert.equal(bash.code, 0, bash.stderr);
  const file = path.join(scratch(), 'loco.bash');
  fs.writeFileSync(file, bash.stdout);
  const complete = (words) => spawnSync('bash', ['-c', `source ${file}; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]}-1)); _loco; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).stdout.trim();
  assert.equal(complete('loco se'), 'serve setup');
  const loc = complete('loco serve --loc').split(' ');
  assert.ok(loc.includes('--local-url') && loc.includes('--local-wait') && loc.every((f) => f.startsWith('--loc')), loc.join(' '));
  assert.equal(complete('loco ask repo -m'), '-m');
  assert.equal(complete('loco model l'), 'list');
  assert.equal(complete('loco completion ""'), 'bash zsh');
  const zsh = await run(['completion', 'zsh']);
  assert.equal(zsh.code, 0);
  assert.match(zsh.stdout, /^#compdef loco\n/);
  if (spawnSync('zsh', ['-c', 'true']).status === 0) {
    const zfile = path.join(scratch(), '_loco');
    fs.writeFileSync(zfile, zsh.stdout);
    assert.equal(spawnSync('zsh', ['-n', zfile]).status, 0);
  }
  assert.equal((await run(['completion', 'fish'])).code, 2);
});

test('ask: llama.cpp spellings, the question from stdin, a base URL ending in /v1, turn lines', async (t) => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  const model = await startModel((v) => (v.turn === 0
    ? { text: call('Read', { file_path: path.join(repo, 'src', 'config.py') }), usage: { prompt_tokens: 321, completion_tokens: 12 } }
    : { text: 'It is 42.', usage: { prompt_tokens: 400, completion_tokens: 5 } }));
  t.after(() => model.stop());
  const r = await run(['ask', repo, '-', '--backend', `openai:${model.url}/v1`, '-m', 'my-model',
    '-n', '99', '-c', '8192', '--temp', '0.25', '-t', '2'], { cwd: dir, input: 'Where is CONFIG_VALUE set?\n' });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'It is 42.\n');
  assert.equal(model.requests.length, 2);
  for (const q of model.requests) {
    assert.equal(q.path, '/v1/chat/completions'); // not /v1/v1/...
    assert.equal(q.body.model, 'my-model');
    assert.equal(q.body.max_tokens, 99);
    assert.equal(q.body.temperature, 0.25);
  }
  assert.match(model.requests[0].firstUser, /Where is CONFIG_VALUE set\?/);
  // each model turn: its tokens and time; then the tool call
  assert.match(r.stderr, /\n {2}turn 1: 321 prompt \+ 12 generated tokens, \d+\.\d s\n/);
  assert.match(r.stderr, /\n {2}Read\(src\/config\.py\) \d+ ms\n/);
  assert.match(r.stderr, /\n {2}turn 2: 400 prompt \+ 5 generated tokens, \d+\.\d s, no tool call\n/);
  // -p is the question too
  const r2 = await run(['ask', repo, '-p', 'Again?', '--backend', `openai:${model.url}/v1/chat/completions`, '-q'], { cwd: dir });
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(r2.stderr, '');
  assert.equal(model.requests.at(-1).path, '/v1/chat/completions');
});

test('URLs that are not URLs are usage errors', async () => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  let r = await run(['ask', repo, 'q', '--backend', 'hybrid', '--local-url', 'foo'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--local-url wants an http:\/\/ or https:\/\/ URL, got 'foo'/);
  r = await run(['ask', repo, 'q', '--backend', 'openai:127.0.0.1:8080'], { cwd: dir });
  assert.equal(r.code, 2);
  r = await run(['analyze', 'demo', '--cloud-url', 'openrouter.ai'], { cwd: dir });
  assert.equal(r.code, 2);
});

test('serve: a cloud URL ending in /v1 and a local URL ending in /v1 reach /v1/messages and /v1/chat/completions', async (t) => {
  const { startLocal, startCloud } = await import('./standins.mjs');
  const local = await startLocal();
  const cloud = await startCloud({ base: '/api' });
  t.after(async () => {
    await local.stop();
    await cloud.stop();
  });
  const g = await gateway(t, { local: false, cloud: false, localUrls: [`${local.url}/v1`], cloudUrl: `${cloud.url}/api/v1` });
  const client = anthropic(g.loco);
  await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
  await client.messages.create({ model: HAIKU, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
  const cloudPaths = cloud.requests.map((q) => q.path ?? q.url);
  const localPaths = local.requests.map((q) => q.path ?? q.url);
  assert.ok(cloudPaths.some((p) => p.split('?')[0] === '/api/v1/messages'), JSON.stringify(cloudPaths));
  assert.ok(!cloudPaths.some((p) => p.includes('/v1/v1/')), JSON.stringify(cloudPaths));
  assert.ok(localPaths.some((p) => p.split('?')[0] === '/v1/chat/completions'), JSON.stringify(localPaths));
  assert.ok(!localPaths.some((p) => p.includes('/v1/v1/')), JSON.stringify(localPaths));
});

test('serve waits for a local server that is still loading its model instead of falling back', async (t) => {
  const { startLocal, startCloud } = await import('./standins.mjs');
  const local = await startLocal({ loading: true });
  const cloud = await startCloud({ base: '/api' });
  t.after(async () => {
    await local.stop();
    await cloud.stop();
  });
  const g = await gateway(t, { local: false, cloud: false, localUrls: [local.url], cloudUrl: `${cloud.url}/api`,
    args: ['--ping-interval', '200'] });
  const client = anthropic(g.loco);
  const t0 = Date.now();
  setTimeout(() => { local.loading = false; }, 1200);
  const msg = await client.messages.create({ model: HAIKU, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(Date.now() - t0 >= 1000, 'answered before the local server was ready');
  assert.equal(local.requests.length, 1, g.loco.log());
  assert.equal(cloud.requests.filter((q) => q.path.startsWith('/api/v1/messages')).length, 0, g.loco.log());
  assert.equal(msg.content[0].text, 'OK.');
  assert.doesNotMatch(g.loco.log(), /local_down/);
  // with --local-wait 0 it falls back at once, as before
  const local2 = await startLocal({ loading: true });
  t.after(() => local2.stop());
  const g2 = await gateway(t, { local: false, cloud: false, localUrls: [local2.url], cloudUrl: `${cloud.url}/api`,
    args: ['--local-wait', '0'] });
  await anthropic(g2.loco).messages.create({ model: HAIKU, max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(local2.requests.length, 0);
  assert.match(g2.loco.log(), /falling back to the cloud \(local_(down|error)\)/);
});

test('a .gguf file or a pulled model given to --model runs the built-in engine', async () => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  fs.mkdirSync(path.join(dir, 'data', 'queries'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'data', 'queries', 'demo-queries.txt'), '1\tWhat is it?\n');
  const missing = path.join(dir, 'missing.gguf');
  // today these went to http://127.0.0.1:8080 as a model name
  let r = await run(['ask', repo, 'q', '-m', missing], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot open '.*missing\.gguf'/);
  assert.doesNotMatch(r.stderr, /8080/);
  r = await run(['analyze', 'demo', '--repos', dir, '--model', missing], { cwd: dir });
  assert.match(r.stderr, /cannot open '.*missing\.gguf'/);
  r = await run(['eval', EVAL_SAMPLES, '-m', missing], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot open '.*missing\.gguf'/);
  // a pulled model by name: the store's file is found and loaded
  const store = path.join(dir, 'store');
  fs.mkdirSync(path.join(store, 'acme', 'tiny-GGUF'), { recursive: true });
  const tiny = synthTinyModel(path.join(store, 'acme', 'tiny-GGUF'), LOCO_BIN);
  fs.writeFileSync(`${tiny}.json`, JSON.stringify({ repo: 'acme/tiny-GGUF', file: path.basename(tiny), quant: 'Q8_0', size: fs.statSync(tiny).size }));
  r = await run(['ask', repo, 'What is it?', '-m', 'acme/tiny-GGUF:Q8_0', '--max-turns', '1', '-n', '16', '-t', '1'],
    { cwd: dir, env: { LOCO_MODELS: store }, timeoutMs: 120000 });
  assert.match(r.stderr, /loco ask: engine /);
  assert.match(r.stderr, /loco ask: model loaded in \d+\.\d s/);
  assert.match(r.stderr, /turn 1: /);
  assert.doesNotMatch(r.stderr, /8080/);
  // its trained context is 40960 tokens (qwen3.context_length): the default 51200 warns, once
  assert.equal((r.stderr.match(/warning: a context of 51200 tokens is more than the 40960 /g) ?? []).length, 1, r.stderr);
  r = await run(['ask', repo, 'What is it?', '-m', tiny, '--max-turns', '1', '-n', '16', '-t', '1', '-c', '4096'],
    { cwd: dir, timeoutMs: 120000 });
  assert.doesNotMatch(r.stderr, /warning: a context/);
});

test('setup: the key from the environment, a second run exits 0, --auth-token, no file the user lacks', async () => {
  const dir = scratch();
  let r = await run(['setup'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /OPENROUTER_API_KEY is not set/);
  assert.doesNotMatch(r.stderr, /\.env\.example/);
  r = await run(['setup'], { cwd: dir, env: { OPENROUTER_API_KEY: 'sk-or-v1-env' } });
  assert.equal(r.code, 0, r.stderr);
  r = await run(['setup'], { cwd: dir, env: { OPENROUTER_API_KEY: 'sk-or-v1-env' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Up to date: .*settings\.local\.json/);
  r = await run(['setup', '--auth-token', 'gw-secret', '--force'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(fs.readFileSync(path.join(dir, '.claude', 'settings.local.json'), 'utf8'));
  assert.equal(s.env.ANTHROPIC_AUTH_TOKEN, 'gw-secret');
  assert.ok(fs.existsSync(path.join(REPO_ROOT, '.env.example')));
});

test('analyze outside the checkout: installed with its queries, man page and completions', async () => {
  const prefix = path.join(scratch(), 'prefix');
  const inst = spawnSync('bash', [path.join(REPO_ROOT, 'scripts', 'install.sh')], {
    env: { ...process.env, LOCO_SKIP_DEPS: '1', LOCO_BIN, PREFIX: prefix }, encoding: 'utf8',
  });
  assert.equal(inst.status, 0, inst.stderr + inst.stdout);
  for (const f of ['bin/loco', 'share/loco/queries/tqdm-queries.txt', 'share/man/man1/loco.1',
    'share/bash-completion/completions/loco', 'share/zsh/site-functions/_loco', 'share/doc/loco/env.example']) {
    assert.ok(fs.existsSync(path.join(prefix, f)), `${f} not installed`);
  }
  const bin = path.join(prefix, 'bin', 'loco');
  const dir = scratch(); // no data/ here
  makeRepo(path.join(dir, 'repos', 'tqdm'));
  const out = path.join(dir, 'out', 'tqdm');
  fs.mkdirSync(out, { recursive: true });
  for (let i = 1; i < 200; i++) fs.writeFileSync(path.join(out, `q${String(i).padStart(3, '0')}.md`), 'done\n');
  const model = await startModel(() => 'Answer.');
  try {
    const r = await run(['analyze', 'tqdm', '--repos', path.join(dir, 'repos'), '--out', path.join(dir, 'out'),
      '--backend', `openai:${model.url}`], { cwd: dir, bin });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /200 questions \(199 already answered\)/);
    assert.equal(model.requests.length, 1);
    assert.match(model.requests[0].firstUser, /performance best practices/);
    assert.equal(fs.readFileSync(path.join(out, 'q200.md'), 'utf8'), 'Answer.\n');
  } finally {
    await model.stop();
  }
  // a project without questions: the message points at the help, not at repository files
  const r = await run(['analyze', 'nothing'], { cwd: dir, bin });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /see loco analyze --help/);
  assert.doesNotMatch(r.stderr, /README/);
  // questions from standard input
  const model2 = await startModel(() => 'Piped.');
  try {
    const r2 = await run(['analyze', 'tqdm', '--queries', '-', '--repos', path.join(dir, 'repos'),
      '--out', path.join(dir, 'out2'), '--backend', `openai:${model2.url}`], { cwd: dir, bin, input: '7\tFrom a pipe?\n' });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(fs.readFileSync(path.join(dir, 'out2', 'tqdm', 'q007.md'), 'utf8'), 'Piped.\n');
  } finally {
    await model2.stop();
  }
});

test('eval: samples from stdin, llama.cpp spellings, a base URL with /v1; an unreachable server stops at once', async (t) => {
  const standin = await startEvalStandin({ predictions: EVAL_PREDICTIONS });
  t.after(() => standin.close());
  const samples = fs.readFileSync(EVAL_SAMPLES, 'utf8');
  let r = await run(['eval', '-', '--backend', `anthropic:${standin.url}/v1`, '-m', 'claude-haiku', '-j', '2',
    '-n', '77', '--temp', '0.5', '--format', 'json', '-q'], { input: samples });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(standin.requests.length >= 11);
  for (const q of standin.requests) {
    assert.equal(q.path.split('?')[0], '/v1/messages');
    assert.equal(q.body.max_tokens, 77);
    assert.equal(q.body.temperature, 0.5);
  }
  r = await run(['eval', '-', '--predictions', '-']);
  assert.equal(r.code, 2);
  r = await run(['eval', EVAL_SAMPLES, '--backend', 'openai:http://127.0.0.1:9', '-j', '4']);
  assert.equal(r.code, 1);
  assert.equal((r.stderr.match(/127\.0\.0\.1:9/g) ?? []).length, 1, r.stderr);
});

test('bench: --json fields, a list of depths in one context, --kv-type q8_0 halves kv_bytes, bad options', async () => {
  const dir = scratch();
  const tiny = synthTinyModel(dir, LOCO_BIN);
  const json = async (extra) => {
    const r = await run(['bench', '--model', tiny, '--pp', '16', '--tg', '4', '--threads', '1', '--json', ...extra], { cwd: dir, timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  };
  const rows = await json(['--depth', '0,64']);
  assert.equal(rows.length, 2);
  assert.deepEqual(rows.map((o) => o.depth), [0, 64]);
  for (const o of rows) {
    for (const k of ['pp_tps', 'tg_tps', 'ttft_s', 'peak_rss_bytes', 'depth', 'threads', 'kernel_path', 'kv_bytes', 'file_bytes'])
      assert.ok(k in o, `${k} missing from ${JSON.stringify(o)}`);
    assert.ok(o.pp_tps > 0 && o.tg_tps > 0 && o.ttft_s > 0 && o.peak_rss_bytes > o.file_bytes / 2, JSON.stringify(o));
    assert.equal(o.threads, 1);
    assert.equal(o.kv_type, 'f16');
  }
  // the second depth's cache holds the first's prompt and generation too: depth 64 >= 16 + 4
  const [q8] = await json(['--kv-type', 'q8_0']);
  assert.equal(q8.kv_type, 'q8_0');
  // head_dim 32, one KV head, one layer, 20 positions: f16 2 * 20 * 64 bytes, q8_0 2 * 20 * 34
  assert.equal(rows[0].kv_bytes, 2 * 20 * 64);
  assert.equal(q8.kv_bytes, 2 * 20 * 34);
  let r = await run(['bench', '--model', tiny, '--kv-type', 'q4_0'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--kv-type is f16 or q8_0, got 'q4_0'/);
  r = await run(['bench', '--model', tiny, '--kv-type', 'q8_0', '--parity'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--parity needs the f16 KV cache/);
  r = await run(['bench', '--model', tiny, '--depth', '64,0'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /ascending/);
});
