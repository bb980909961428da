// claude_driver.test.mjs: the original pipeline, `loco ask|analyze --driver claude`: loco starts
// its gateway on a free port and runs the real Claude Code (`claude -p`) against it; the cloud
// main agent (cc_standins.mjs) spawns an Explore sub-agent that the gateway sends to the local
// model (a scripted OpenAI-compatible server) and whose Read Claude Code really runs. Answers
// land in the same files as the native driver's, with the same resume and failure isolation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LOCO_BIN, claudeBin } from './helpers.mjs';
import { startCloud, startLocal, TASK_PHRASE } from './cc_standins.mjs';

const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;
const CLOUD_KEY = 'sk-or-v1-driver-test';

// A repository whose release notes hold a marker only a tool call can find.
function setup() {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'loco-drv-')));
  const marker = `LOCO_MARKER_${crypto.randomBytes(4).toString('hex')}`;
  const repo = path.join(dir, 'repos', 'demo');
  fs.mkdirSync(path.join(repo, 'docs'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'README.md'), '# demo\n');
  const file = path.join(repo, 'docs', 'release.txt');
  fs.writeFileSync(file, `Release notes\ncodename: ${marker}\n`);
  fs.mkdirSync(path.join(dir, 'home'));
  return { dir, repo, file, marker };
}

function run(args, cwd, env = {}, onStart) {
  return new Promise((resolve, reject) => {
    const proc = spawn(LOCO_BIN, args, {
      cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: path.join(cwd, 'home'),
        LANG: 'C.UTF-8',
        TERM: 'dumb',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
        UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (process.env.LOCO_TEST_VERBOSE) process.stderr.write(d);
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), 120000);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (SANITIZER.test(stderr)) reject(new Error(`loco printed a sanitizer report:\n${stderr}`));
      else resolve({ code, signal, stdout, stderr });
    });
    onStart?.(proc);
  });
}

async function standins(t, env) {
  const opts = { repo: env.repo, file: env.file, variant: 'read' };
  const cloud = await startCloud(opts);
  const local = await startLocal(opts);
  t.after(async () => {
    await cloud.close();
    await local.close();
  });
  return { cloud, local };
}

function driverArgs(s) {
  return ['--driver', 'claude', '--backend', `openai:${s.local.url}`, '--cloud-url', s.cloud.url];
}

const driverEnv = () => ({ LOCO_CLAUDE: claudeBin(), OPENROUTER_API_KEY: CLOUD_KEY });

test('ask --driver claude: Claude Code plans in the cloud, its Explore sub-agent runs locally', { timeout: 150000 }, async (t) => {
  const env = setup();
  const s = await standins(t, env);
  const transcript = path.join(env.dir, 'ask.jsonl');
  const r = await run(['ask', env.repo, 'What is the release codename?', ...driverArgs(s), '--transcript', transcript],
    env.dir, driverEnv());
  const why = `\nstderr: ${r.stderr}\ncloud: ${s.cloud.requests.map((q) => `${q.method} ${q.url} ${q.body?.model}`).join('\n')}`;
  assert.equal(r.code, 0, why);
  assert.ok(r.stdout.includes(env.marker), `the answer lacks the marker${why}`);
  // the sub-agent's turns went to the local model with the training prompt, and its Read ran
  const sub = s.local.requests.filter((q) => JSON.stringify(q.body?.messages ?? []).includes(TASK_PHRASE));
  assert.ok(sub.length >= 2, `expected >= 2 sub-agent requests on the local model${why}`);
  assert.ok(sub.some((q) => JSON.stringify(q.body.messages).includes(`codename: ${env.marker}`)), why);
  // the cloud saw the main agent with loco's key, never the client's token
  const main = s.cloud.requests.filter((q) => q.body && !/haiku/i.test(q.body.model ?? ''));
  assert.ok(main.length >= 2, why);
  for (const q of main) assert.equal(q.headers.authorization, `Bearer ${CLOUD_KEY}`);
  // progress: the sub-agent and its tool call, as the native driver shows them
  assert.match(r.stderr, /-- sub-agent: /);
  assert.match(r.stderr, /Read\(docs\/release\.txt\) \d+ ms/);
  assert.match(r.stderr, /loco ask: \d+ turns, \d+ tool calls/);
  // the transcript is Claude Code's stream-json
  const events = fs.readFileSync(transcript, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(events.at(-1).type, 'result');
});

test('analyze --driver claude: same files, resume, one failure does not stop the batch', { timeout: 240000 }, async (t) => {
  const env = setup();
  const s = await standins(t, env);
  const queries = path.join(env.dir, 'q.txt');
  fs.writeFileSync(queries, '1\tAlready answered?\n2\tWhat is the codename?\n3\tFAIL_ME please\n4\tWRITE_IT: the codename?\n');
  const out = path.join(env.dir, 'outputs', 'demo');
  fs.mkdirSync(out, { recursive: true });
  fs.writeFileSync(path.join(out, 'q001.md'), 'kept\n');
  const args = ['analyze', 'demo', '--queries', queries, '--repos', path.join(env.dir, 'repos'),
    '--out', path.join(env.dir, 'outputs'), '--jobs', '2', ...driverArgs(s)];
  const r = await run(args, env.dir, driverEnv());
  assert.equal(r.code, 1, r.stderr); // q003 failed
  assert.match(r.stderr, /q003 failed: Claude Code failed/);
  assert.match(r.stderr, /2 done, 1 skipped, 1 failed/);
  assert.equal(fs.readFileSync(path.join(out, 'q001.md'), 'utf8'), 'kept\n');
  assert.ok(fs.readFileSync(path.join(out, 'q002.md'), 'utf8').includes(env.marker)); // its final message
  const q4 = fs.readFileSync(path.join(out, 'q004.md'), 'utf8'); // what Claude Code wrote itself
  assert.ok(q4.startsWith('# Answer\n') && q4.includes(env.marker), q4);
  assert.ok(!fs.existsSync(path.join(out, 'q003.md')));
  assert.deepEqual(fs.readdirSync(out).filter((f) => f.includes('partial')), []);
  assert.ok(fs.existsSync(path.join(out, 'q002.jsonl')));
  // a rerun only retries the failed question
  const before = s.cloud.requests.length;
  const r2 = await run(args, env.dir, driverEnv());
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /0 done, 3 skipped, 1 failed/);
  const rerun = s.cloud.requests.slice(before).map((q) => JSON.stringify(q.body?.messages ?? []));
  assert.ok(rerun.some((m) => m.includes('FAIL_ME')));
  assert.ok(!rerun.some((m) => m.includes('What is the codename?') || m.includes('WRITE_IT')),
    'the rerun asked an answered question again');
});

test('--driver claude without claude on PATH says how to install it', async () => {
  const env = setup();
  const r = await run(['ask', env.repo, 'q', '--driver', 'claude'], env.dir,
    { PATH: '/usr/bin:/bin', OPENROUTER_API_KEY: CLOUD_KEY });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no `claude` is on PATH: install it with `npm install -g @anthropic-ai\/claude-code`/);
  const queries = path.join(env.dir, 'q.txt');
  fs.writeFileSync(queries, '1\tq?\n');
  const r2 = await run(['analyze', 'demo', '--driver', 'claude', '--queries', queries, '--repos', path.join(env.dir, 'repos')],
    env.dir, { LOCO_CLAUDE: claudeBin() });
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /set OPENROUTER_API_KEY/);
});

