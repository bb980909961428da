// End-to-end: the real Claude Code CLI drives `loco serve` between two scripted
// upstreams (cc_standins.mjs). The main agent (cloud) spawns a haiku Explore
// sub-agent whose requests must take the local route and whose tool calls Claude
// Code must really execute. Run: node --test tests/integration/claude_code.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCloud, startLocal, contentText, TASK_PHRASE } from './cc_standins.mjs';
import { synthModel } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');
const LOCO_BIN = process.env.LOCO_BIN || path.join(ROOT, 'build', 'loco');
const HAIKU_MODEL = 'claude-haiku-4-5-20251001';
const CLOUD_KEY = 'test-cloud-key-3f9a';
const RUN_TIMEOUT_MS = 45000;

// Claude Code ships its native binary in a per-platform package; the wrapper's
// bin/claude.exe is the same file once installed. CLAUDE_BIN overrides.
function findClaude() {
  const nm = path.join(ROOT, 'tests', 'node_modules');
  const candidates = [
    process.env.CLAUDE_BIN,
    path.join(nm, '@anthropic-ai', `claude-code-${process.platform}-${process.arch}`, 'claude'),
    path.join(nm, '@anthropic-ai', 'claude-code', 'bin', 'claude.exe'),
    path.join(nm, '.bin', 'claude'),
  ];
  return candidates.find((p) => p && fs.existsSync(p)) || null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A throwaway repository with the marker in one file among a few others.
function makeRepo(marker) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-cc-'));
  const repo = path.join(dir, 'repo');
  fs.mkdirSync(path.join(repo, 'src'), { recursive: true });
  fs.mkdirSync(path.join(repo, 'docs'));
  fs.writeFileSync(path.join(repo, 'README.md'), '# demo\nNothing to see here.\n');
  fs.writeFileSync(path.join(repo, 'src', 'main.c'), 'int main(void) { return 0; }\n');
  const file = path.join(repo, 'docs', 'release.txt');
  fs.writeFileSync(file, `Release notes\ncodename: ${marker}\n`);
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  return { dir, repo, file, home };
}

// Starts `loco serve` and waits for GET /health to answer 200. local: a --local-url, or
// ['--model', FILE, ...] for the in-process engine.
async function startLoco(port, local, cloudUrl, cwd) {
  const args = ['serve', '--listen', `127.0.0.1:${port}`,
    ...(Array.isArray(local) ? local : ['--local-url', local]),
    '--cloud-url', cloudUrl, '--cloud-key-env', 'LOCO_TEST_CLOUD_KEY'];
  const proc = spawn(LOCO_BIN, args, {
    cwd, env: { PATH: process.env.PATH, HOME: cwd, LOCO_TEST_CLOUD_KEY: CLOUD_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = { text: '' };
  proc.stdout.on('data', (d) => { log.text += d; });
  proc.stderr.on('data', (d) => { log.text += d; });
  let exited = null;
  proc.on('exit', (code, sig) => { exited = `${code ?? sig}`; });
  for (let i = 0; i < 100 && exited === null; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/health`);
      if (r.status === 200) return { proc, log };
    } catch { /* not up yet */ }
    await sleep(100);
  }
  proc.kill('SIGKILL');
  throw new Error(`loco serve did not come up (exit ${exited}): ${log.text.slice(-2000)}`);
}

async function stopLoco(loco) {
  if (loco.proc.exitCode !== null || loco.proc.signalCode !== null) return;
  const done = new Promise((r) => loco.proc.on('exit', r));
  loco.proc.kill('SIGTERM');
  const t = setTimeout(() => loco.proc.kill('SIGKILL'), 3000);
  await done;
  clearTimeout(t);
}

function runClaude(claude, baseUrl, env) {
  const prompt = 'Use an Explore agent to find the release codename marker in this repository.';
  return new Promise((resolve) => {
    const proc = spawn(claude, ['-p', prompt, '--permission-mode', 'bypassPermissions'], {
      cwd: env.repo,
      env: {
        PATH: process.env.PATH, HOME: env.home, TERM: 'dumb',
        ANTHROPIC_BASE_URL: baseUrl, ANTHROPIC_API_KEY: 'x', IS_SANDBOX: '1',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        ANTHROPIC_DEFAULT_HAIKU_MODEL: HAIKU_MODEL,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), RUN_TIMEOUT_MS);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function summary(reqs) {
  return reqs.map((r) => `${r.method} ${r.url} model=${r.body && r.body.model} msgs=${r.body && r.body.messages && r.body.messages.length}`).join('\n');
}

function lastUserText(body) {
  const msgs = (body && body.messages) || [];
  for (let i = msgs.length - 1; i >= 0; i--) {
    if (msgs[i].role === 'user') return contentText(msgs[i].content);
  }
  return '';
}

// One scenario: the local stand-in's sub-agent makes one tool call (`variant`)
// and answers with the marker it finds in the tool output.
async function scenario(t, variant, mode = {}) {
  const claude = findClaude();
  assert.ok(claude, 'Claude Code is not installed: run `npm ci` in tests/ (or set CLAUDE_BIN)');
  assert.ok(fs.existsSync(LOCO_BIN), `no loco binary at ${LOCO_BIN}: build it first (or set LOCO_BIN)`);
  const marker = `LOCO_MARKER_${variant}${crypto.randomBytes(4).toString('hex')}`;
  const env = makeRepo(marker);
  const opts = { repo: env.repo, file: env.file, variant, noModel: !!mode.setup };
  if (mode.setup) {
    // `loco setup` in the project: its .claude/agents/Explore.md pins the Explore
    // sub-agent to haiku (and offers Grep/Glob), so the main agent need not name a model.
    fs.writeFileSync(path.join(env.repo, '.env'), 'OPENROUTER_API_KEY=sk-or-v1-test\n');
    const r = spawnSync(LOCO_BIN, ['setup', '--dir', env.repo], { encoding: 'utf8' });
    assert.equal(r.status, 0, `loco setup failed: ${r.stderr}`);
    assert.ok(fs.existsSync(path.join(env.repo, '.claude', 'agents', 'Explore.md')));
    // the settings point at a fixed port; the test's own env vars take precedence
    fs.rmSync(path.join(env.repo, '.claude', 'settings.local.json'));
  }
  const cloud = await startCloud(opts);
  const local = await startLocal(opts);
  const port = await freePort();
  let loco = null;
  t.after(async () => {
    if (loco) await stopLoco(loco);
    await cloud.close();
    await local.close();
    fs.rmSync(env.dir, { recursive: true, force: true });
  });
  loco = await startLoco(port, local.url, cloud.url, env.dir);
  const run = await runClaude(claude, `http://127.0.0.1:${port}`, env);
  const why = () => `\nclaude exit=${run.code} signal=${run.signal}\nstdout: ${run.stdout}\nstderr: ${run.stderr.slice(-1500)}` +
    `\ncloud requests:\n${summary(cloud.requests)}\nlocal requests:\n${summary(local.requests)}\nloco log:\n${loco.log.text.slice(-3000)}`;

  assert.equal(run.code, 0, `claude failed${why()}`);
  assert.ok(run.stdout.includes(marker), `final answer lacks the marker${why()}`);

  // The sub-agent's requests reached the local stand-in, streamed, with the
  // training prompt as system, and the tool output came back as <tool_response>.
  const sub = local.requests.filter((r) => r.body && JSON.stringify(r.body.messages || []).includes(TASK_PHRASE));
  assert.ok(sub.length >= 2, `expected >= 2 sub-agent requests on the local route${why()}`);
  for (const r of sub) {
    assert.equal(r.method, 'POST');
    assert.equal(r.url.split('?')[0], '/v1/chat/completions');
    assert.equal(r.body.stream, true);
    assert.equal(r.body.messages[0].role, 'system');
    assert.ok(contentText(r.body.messages[0].content).startsWith("You are a Claude agent, built on Anthropic's Claude Agent SDK."),
      'local system prompt is not the training prompt');
  }
  // The prompt diet: the training prompt gets the ENV line of the training data, and the
  // first user turn is the task alone (Claude Code's reminders are dropped).
  const training = fs.readFileSync(path.join(ROOT, 'prompts', 'local_system.txt'), 'utf8').trim();
  const system = contentText(sub[0].body.messages[0].content);
  const envLine = system.slice(training.length);
  assert.ok(system.startsWith(training), `system is not the training prompt:\n${system}`);
  const cwd = /^\n\nENV: Working directory is (.+) \(Linux, bash\)\.$/.exec(envLine);
  assert.ok(cwd, `no ENV line after the training prompt: ${JSON.stringify(envLine)}`);
  assert.equal(fs.realpathSync(cwd[1]), fs.realpathSync(env.repo));
  const task = contentText(sub[0].body.messages[1].content);
  assert.ok(task.startsWith(TASK_PHRASE), `the first user turn is not the bare task: ${task.slice(0, 500)}`);
  assert.doesNotMatch(task, /system-reminder/);
  const withResult = sub.find((r) => lastUserText(r.body).includes('<tool_response>'));
  assert.ok(withResult, `no local request whose last user turn holds a <tool_response>${why()}`);
  const resultText = lastUserText(withResult.body);
  assert.ok(resultText.includes(`codename: ${marker}`), `tool_response lacks the file content: ${resultText}`);
  // The history carries the call Claude Code executed, rendered as <tool_call>.
  const history = withResult.body.messages.map((m) => `${m.role}: ${contentText(m.content)}`).join('\n');
  assert.match(history, /<tool_call>/);
  if (variant === 'grep') {
    // Explore offers no Grep tool: loco must have mapped the call onto Bash,
    // and the grep output names the file.
    assert.match(history, /"name":\s*"Bash"/, `Grep was not mapped onto Bash:\n${history.slice(-1500)}`);
    assert.match(history, /grep/);
    assert.ok(resultText.includes(env.file), `grep output should name ${env.file}: ${resultText}`);
  } else {
    const name = variant === 'read' ? 'Read' : 'Bash';
    assert.match(history, new RegExp(`"name":\\s*"${name}"`));
  }

  // The cloud saw the main agent (with the cloud key) and never a haiku request.
  const haikuOnCloud = cloud.requests.filter((r) => r.body && /haiku/i.test(r.body.model || ''));
  assert.equal(haikuOnCloud.length, 0, `haiku requests reached the cloud${why()}`);
  const main = cloud.requests.filter((r) => r.body && Array.isArray(r.body.tools) && r.body.tools.some((x) => x.name === 'Agent' || x.name === 'Task'));
  assert.ok(main.length >= 2, `expected >= 2 main-agent requests on the cloud${why()}`);
  for (const r of main) {
    assert.equal(r.headers.authorization, `Bearer ${CLOUD_KEY}`);
    assert.equal(r.headers['anthropic-version'], '2023-06-01');
  }
}

test('Claude Code sub-agent on the local route: Read', { timeout: 60000 }, (t) => scenario(t, 'read'));

// The whole product in one process: `loco serve --model tiny-synth.gguf` serves the haiku
// sub-agent with the in-process engine (random weights: whatever it writes, the streams must
// be well-formed and every tool call Claude Code receives must be valid), the scripted cloud
// plays the main agent.
test('Claude Code with loco serve --model: the sub-agent runs on the in-process engine', { timeout: 120000 }, async (t) => {
  const claude = findClaude();
  assert.ok(claude, 'Claude Code is not installed: run `npm ci` in tests/ (or set CLAUDE_BIN)');
  const model = synthModel();
  const marker = `LOCO_MARKER_engine${crypto.randomBytes(4).toString('hex')}`;
  const env = makeRepo(marker);
  const record = path.join(env.dir, 'record');
  const cloud = await startCloud({ repo: env.repo, file: env.file, variant: 'read' });
  const port = await freePort();
  let loco = null;
  t.after(async () => {
    if (loco) await stopLoco(loco);
    await cloud.close();
    fs.rmSync(env.dir, { recursive: true, force: true });
  });
  // --local-max-tokens keeps random text short (the sub-agent asks for 32000 tokens; after a
  // max_tokens stop Claude Code asks it to go on, a few times)
  loco = await startLoco(port, ['--model', model, '--ctx', '2048', '--local-max-tokens', '16', '--record', record],
    cloud.url, env.dir);
  const run = await runClaude(claude, `http://127.0.0.1:${port}`, env);
  const why = () => `\nclaude exit=${run.code} signal=${run.signal}\nstdout: ${run.stdout}\nstderr: ${run.stderr.slice(-1500)}` +
    `\ncloud requests:\n${summary(cloud.requests)}\nloco log:\n${loco.log.text.slice(-3000)}`;
  assert.equal(run.code, 0, `claude failed${why()}`);
  assert.match(run.stdout, /Sub-agent report/, `the main agent did not get the sub-agent's report${why()}`);
  // the sub-agent's turns were served locally, none reached the cloud
  const local = loco.log.text.split('\n').filter((l) => /endpoint=messages model=claude-haiku\S* route=local reason=- status=200/.test(l));
  assert.ok(local.length >= 1, `no haiku request served by the engine${why()}`);
  assert.equal(cloud.requests.filter((r) => /haiku/i.test(r.body?.model || '')).length, 0, `haiku reached the cloud${why()}`);
  // every tool call Claude Code received (the recording holds each finished exchange) is a
  // JSON object naming a tool the sub-agent was offered, with its required arguments
  const lines = fs.existsSync(record) ? fs.readdirSync(record).flatMap((f) =>
    fs.readFileSync(path.join(record, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l))) : [];
  const mine = lines.filter((l) => l.route === 'local');
  assert.ok(mine.length >= 1, `no local exchange recorded${why()}`);
  for (const ex of mine) {
    const offered = new Map((ex.tools ?? []).map((x) => [x.function.name, x.function.parameters]));
    const answer = ex.messages.at(-1);
    assert.equal(answer.role, 'assistant');
    for (const m of answer.content.matchAll(/<tool_call>\n([\s\S]*?)\n<\/tool_call>/g)) {
      const call = JSON.parse(m[1]);
      assert.ok(offered.has(call.name), `a call to ${call.name}, which was not offered`);
      for (const req of offered.get(call.name)?.required ?? []) assert.ok(req in call.arguments, `${call.name} without ${req}`);
    }
  }
});
test('Claude Code sub-agent on the local route: Bash', { timeout: 60000 }, (t) => scenario(t, 'bash'));
test('Claude Code sub-agent on the local route: Grep mapped onto Bash', { timeout: 60000 }, (t) => scenario(t, 'grep'));
test('Claude Code with loco setup: Explore runs on haiku without the main agent naming a model', { timeout: 60000 },
  (t) => scenario(t, 'grep', { setup: true }));
