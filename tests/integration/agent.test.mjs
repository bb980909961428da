// agent.test.mjs: the explorer end to end: the real `loco ask` / `loco analyze` binary with its
// real tools (Read, Grep, Glob, Bash, Write, Task) on a scratch repository, against a scripted
// model server (agent_standin.mjs) that issues <tool_call>s and checks the <tool_response>s it
// receives. analyze: resume, failure isolation, interruption (SIGINT) and rerun.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLOUD_KEY, LOCO_BIN, waitFor } from './helpers.mjs';
import { startCloud } from './standins.mjs';
import { call, startModel } from './agent_standin.mjs';

const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

function scratch() {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'loco-agent-')));
}

// A small repository: sources, a README, and an ignored build/ folder Grep and Glob must skip.
function makeRepo(dir) {
  const files = {
    'README.md': '# Demo\n\nA demo service.\n',
    'src/app.py': 'import config\n\n\ndef handle_request(req):\n    return config.CONFIG_VALUE\n',
    'src/config.py': 'CONFIG_VALUE = 42\n',
    '.gitignore': 'build/\n',
    'build/generated.py': 'def handle_request_generated():\n    pass\n',
  };
  for (const [name, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

// Runs loco; resolves {code, signal, stdout, stderr}. opts.onStart(proc) sees the process.
function runLoco(args, opts = {}) {
  return new Promise((resolve, reject) => {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: opts.cwd,
      LANG: 'C.UTF-8',
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1',
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1',
      ...(opts.env ?? {}),
    };
    const proc = spawn(LOCO_BIN, args, { cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => {
      stderr += d;
      if (process.env.LOCO_TEST_VERBOSE) process.stderr.write(d);
    });
    const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 60000);
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (SANITIZER.test(stderr)) reject(new Error(`loco printed a sanitizer report:\n${stderr}`));
      else resolve({ code, signal, stdout, stderr });
    });
    opts.onStart?.(proc, () => stderr);
  });
}

function readJsonl(file) {
  return fs.readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

test('ask: several tool calls per turn, real tool results checked, Task sub-agent, Write of the answer', async (t) => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  const out = path.join(dir, 'answers', 'demo.md');
  const transcript = path.join(dir, 'demo.jsonl');
  const question = 'Where is CONFIG_VALUE used?';
  const answer = '# Answer\n\nCONFIG_VALUE is defined in src/config.py and returned by handle_request in src/app.py.\n';
  const subAnswer = 'CONFIG_VALUE is defined in src/config.py (value 42).';
  const model = await startModel((v) => {
    if (v.firstUser.startsWith('Find where CONFIG_VALUE')) {
      // the Task sub-agent
      if (v.turn === 0) return `Searching.\n${call('Grep', { pattern: 'CONFIG_VALUE =', path: repo, output_mode: 'files_with_matches' })}`;
      assert.equal(v.responses.length, 1);
      assert.match(v.responses[0], new RegExp(`${repo}/src/config\\.py`));
      assert.doesNotMatch(v.responses[0], /app\.py/);
      return subAnswer;
    }
    switch (v.turn) {
      case 0:
        assert.match(v.system, /^You are a Claude agent, built on Anthropic's Claude Agent SDK\./);
        assert.match(v.system, /You are a read-only codebase search specialist\./);
        assert.ok(v.system.includes(`ENV: Working directory is ${repo} (`), v.system);
        assert.equal(v.firstUser, `Analyze the demo codebase at ${repo} to answer: ${question} Save your answer to ${out}`);
        assert.equal(v.body.stream, true);
        assert.equal(v.body.temperature, 0.7);
        assert.equal(v.body.model, 'LocoOperator-4B');
        return [
          'I will start by listing the files and reading the documentation.',
          call('Glob', { pattern: '**/*.py', path: repo }),
          call('Grep', { pattern: 'def handle_', path: repo, output_mode: 'content', '-n': true }),
          call('Read', { file_path: `${repo}/README.md` }),
          call('Bash', { command: `ls ${repo}`, description: 'List top-level directory' }),
        ].join('\n');
      case 1: {
        const [glob, grep, read, bash] = v.responses;
        assert.equal(v.responses.length, 4);
        assert.ok(glob.includes(`${repo}/src/app.py`) && glob.includes(`${repo}/src/config.py`), glob);
        assert.doesNotMatch(glob, /generated/);
        assert.match(grep, /src\/app\.py:4:def handle_request\(req\):/);
        assert.doesNotMatch(grep, /generated/);
        assert.match(read, /^\s*1[\t→]# Demo$/m);
        assert.match(read, /^\s*3[\t→]A demo service\.$/m);
        assert.match(bash, /README\.md/);
        assert.match(bash, /src/);
        return `Now the definition.\n${call('Task', { description: 'Find config', prompt: `Find where CONFIG_VALUE is defined in ${repo}`, subagent_type: 'Explore' })}`;
      }
      case 2:
        assert.equal(v.responses.length, 1);
        assert.equal(v.responses[0], subAnswer);
        return call('Write', { file_path: out, content: answer });
      case 3:
        assert.equal(v.responses.length, 1);
        assert.doesNotMatch(v.responses[0], /error|refused/i);
        return 'The answer is saved.';
      default:
        throw new Error(`unexpected turn ${v.turn}`);
    }
  });
  t.after(() => model.stop());
  const r = await runLoco(['ask', repo, question, '--out', out, '--transcript', transcript,
    '--backend', `openai:${model.url}`], { cwd: dir });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(out, 'utf8'), answer); // the model's Write, not overwritten
  assert.equal(r.stdout, answer);
  // one line per tool call, as they happened
  const lines = r.stderr.split('\n').filter((l) => /^\s+\w+\(.*\) \d+ ms/.test(l)).map((l) => l.trim().replace(/ \d+ ms.*/, ''));
  assert.deepEqual(lines.slice(0, 4).sort(), ['Bash(ls ' + repo + ')', 'Glob(**/*.py)', 'Grep(def handle_)', 'Read(README.md)'].sort());
  assert.deepEqual(lines.slice(4), ['Grep(CONFIG_VALUE =)', 'Task(Find config)', `Write(${out})`]);
  assert.match(r.stderr, /^ {4}Grep\(CONFIG_VALUE =\) \d+ ms$/m); // the sub-agent's call, indented
  assert.match(r.stderr, /4 turns, 7 tool calls \(0 failed\)/);
  // the transcript holds the whole conversation and the tool timings
  const tr = readJsonl(transcript);
  assert.equal(tr[0].type, 'meta');
  assert.equal(tr[1].type, 'system');
  assert.equal(tr.at(-1).type, 'end');
  assert.equal(tr.at(-1).model_wrote_answer, true);
  const tools = tr.filter((e) => e.type === 'tool');
  assert.equal(tools.length, 7);
  assert.ok(tools.every((e) => typeof e.duration_ms === 'number' && e.is_error === false));
  assert.deepEqual(tools.filter((e) => e.depth === 1).map((e) => e.name), ['Grep']);
  const msgs = tr.filter((e) => e.type === 'message');
  assert.equal(msgs.filter((m) => m.depth === 0 && m.role === 'assistant').length, 4);
  assert.equal(msgs.filter((m) => m.depth === 1).length, 4);
  const results = msgs.find((m) => m.depth === 0 && m.turn === 1 && m.role === 'user');
  assert.equal(results.content.length, 4);
  assert.ok(results.content.every((b) => b.type === 'tool_result'));
});

test('ask: sandbox refusals reach the model, turn limit asks for the answer, loco writes it', async (t) => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  const out = path.join(dir, 'out', 'a.md');
  const model = await startModel((v) => {
    if (v.lastUser.includes('Do not call any more tools')) {
      assert.equal(v.turn, 2);
      return 'Final answer text.';
    }
    if (v.turn === 0) return call('Read', { file_path: '/etc/passwd' }) + '\n' + call('Read', { file_path: `${repo}/../../../etc/passwd` });
    assert.equal(v.responses.length, 2);
    for (const resp of v.responses) {
      assert.match(resp, /outside/);
      assert.doesNotMatch(resp, /root:/);
    }
    return call('Glob', { pattern: '*.md' });
  });
  t.after(() => model.stop());
  const r = await runLoco(['ask', repo, 'What is this?', '--out', out, '--max-turns', '2',
    '--backend', `openai:${model.url}`], { cwd: dir });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'Final answer text.\n');
  assert.equal(fs.readFileSync(out, 'utf8'), 'Final answer text.\n');
  assert.match(r.stderr, /turn limit \(2\) reached/);
  assert.match(r.stderr, /Read\(\/etc\/passwd\) \d+ ms {2}error: /);
  assert.equal(model.requests.length, 3);
});

test('ask: a model server that is down is a clear error, exit 1', async () => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  const r = await runLoco(['ask', repo, 'q', '--backend', 'openai:http://127.0.0.1:9'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /loco ask: .*127\.0\.0\.1:9/);
  assert.equal(r.stdout, '');
});

test('ask --backend hybrid: the cloud takes over at the turn limit and sees the whole conversation', async (t) => {
  const dir = scratch();
  const repo = makeRepo(path.join(dir, 'demo'));
  const local = await startModel((v) => {
    assert.ok(v.turn < 2, 'the local model is not asked past the turn limit');
    if (v.turn === 1) assert.match(v.responses[0], /README\.md/);
    return call('Glob', { pattern: '*.md', path: repo });
  });
  const cloud = await startCloud({ base: '/api' });
  cloud.respondWith((record) => {
    const b = record.body;
    if (b.model !== 'qwen/qwen3-coder-next') return { text: `wrong model ${b.model}` };
    if (!b.tools?.some((tool) => tool.name === 'Grep')) return { text: 'no tools offered' };
    const results = b.messages.flatMap((m) => (Array.isArray(m.content) ? m.content : [])).filter((c) => c.type === 'tool_result');
    if (results.length !== 2) return { text: `saw ${results.length} tool results` };
    return { text: 'The cloud answer.' };
  });
  t.after(async () => {
    await local.stop();
    await cloud.stop();
  });
  const r = await runLoco(['ask', repo, 'What is this?', '--max-turns', '2', '--backend', 'hybrid',
    '--local-url', local.url, '--cloud-url', `${cloud.url}/api`], { cwd: dir, env: { OPENROUTER_API_KEY: CLOUD_KEY } });
  assert.deepEqual(local.failures, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'The cloud answer.\n');
  assert.match(r.stderr, /turn limit: the cloud model takes over/);
  assert.match(r.stderr, /cloud took over/);
  assert.equal(local.requests.length, 2);
  assert.equal(cloud.requests.length, 1);
});

// ---- analyze ----

function makeProject(dir, questions, extraLines = '') {
  makeRepo(path.join(dir, 'data', 'repos', 'demo'));
  fs.mkdirSync(path.join(dir, 'data', 'queries'), { recursive: true });
  const text = questions.map((q, i) => `${i + 1}\t${q}`).join('\n') + '\n' + extraLines;
  fs.writeFileSync(path.join(dir, 'data', 'queries', 'demo-queries.txt'), text);
  return path.join(dir, 'data', 'outputs', 'demo');
}

// The question of a request (from the task text).
function questionOf(v) {
  const m = /to answer: (.*) Save your answer to (\S+)$/.exec(v.firstUser);
  assert.ok(m, v.firstUser);
  return { question: m[1], file: m[2] };
}

// A well-behaved model: one Grep, then "answer to <question>".
function answering(v) {
  const { question } = questionOf(v);
  if (v.turn === 0) return call('Grep', { pattern: 'CONFIG_VALUE', output_mode: 'count' });
  assert.equal(v.responses.length, 1);
  assert.match(v.responses[0], /\d/);
  return `answer to ${question}`;
}

test('analyze: answers qNNN.md, skips existing answers (resume), reports bad lines', async (t) => {
  const dir = scratch();
  const outDir = makeProject(dir, ['First?', 'Second?', 'Third?'], 'oops no tab\n');
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'q002.md'), 'old answer\n');
  const model = await startModel((v) => {
    const { question, file } = questionOf(v);
    assert.equal(file, path.join(outDir, question === 'First?' ? 'q001.md' : 'q003.md'));
    return answering(v);
  });
  t.after(() => model.stop());
  const r = await runLoco(['analyze', 'demo', '--jobs', '2', '--backend', `openai:${model.url}`], { cwd: dir });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(outDir, 'q001.md'), 'utf8'), 'answer to First?\n');
  assert.equal(fs.readFileSync(path.join(outDir, 'q002.md'), 'utf8'), 'old answer\n');
  assert.equal(fs.readFileSync(path.join(outDir, 'q003.md'), 'utf8'), 'answer to Third?\n');
  assert.ok(!model.requests.some((v) => v.firstUser.includes('Second?')));
  assert.match(r.stderr, /demo-queries\.txt:4: expected id<TAB>question \(no tab\) \(skipped\)/);
  assert.match(r.stderr, /2 done, 1 skipped, 0 failed of 3/);
  const tr = readJsonl(path.join(outDir, 'q001.jsonl'));
  assert.equal(tr.at(-1).type, 'end');
  assert.equal(tr.at(-1).status, 'ok');
  // a second run has nothing left to do
  const again = await runLoco(['analyze', 'demo', '--backend', `openai:${model.url}`], { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /0 done, 3 skipped, 0 failed of 3/);
});

test('analyze: one failing question never stops the batch', async (t) => {
  const dir = scratch();
  const outDir = makeProject(dir, ['First?', 'Broken?', 'Third?']);
  const model = await startModel((v) => {
    if (questionOf(v).question === 'Broken?') return { status: 500, body: { error: { message: 'model crashed' } } };
    return answering(v);
  });
  t.after(() => model.stop());
  const r = await runLoco(['analyze', 'demo', '--jobs', '2', '--backend', `openai:${model.url}`], { cwd: dir });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(fs.existsSync(path.join(outDir, 'q001.md')));
  assert.ok(!fs.existsSync(path.join(outDir, 'q002.md')));
  assert.ok(fs.existsSync(path.join(outDir, 'q003.md')));
  assert.match(r.stderr, /q002 failed: .*model crashed/);
  assert.match(r.stderr, /2 done, 0 skipped, 1 failed of 3/);
});

test('analyze: SIGINT mid-batch exits 130 with no partial answer files; a rerun completes', async (t) => {
  const dir = scratch();
  const outDir = makeProject(dir, ['Quick?', 'Slow one?', 'Slow two?', 'Later?']);
  let hangSlow = true;
  const model = await startModel((v) => {
    const { question } = questionOf(v);
    if (hangSlow && question.startsWith('Slow')) {
      if (v.turn === 0) return call('Read', { file_path: path.join(dir, 'data', 'repos', 'demo', 'README.md') });
      return { hang: true }; // the second turn never ends
    }
    return answering(v);
  });
  t.after(() => model.stop());
  const hungTurns = () => model.requests.filter((v) => v.turn === 1 && questionOf(v).question.startsWith('Slow')).length;
  const r = await runLoco(['analyze', 'demo', '--jobs', '2', '--backend', `openai:${model.url}`], {
    cwd: dir,
    onStart: (proc) => {
      waitFor(() => fs.existsSync(path.join(outDir, 'q001.md')) && hungTurns() === 2, 20000, 'two hung questions')
        .then(() => proc.kill('SIGINT'))
        .catch(() => proc.kill('SIGKILL'));
    },
  });
  assert.deepEqual(model.failures, []);
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted/);
  const files = fs.readdirSync(outDir).sort();
  assert.ok(files.includes('q001.md'), files.join(' '));
  assert.deepEqual(files.filter((f) => f.endsWith('.md')), ['q001.md']);
  assert.deepEqual(files.filter((f) => !/^q\d{3}\.(md|jsonl)$/.test(f)), []); // no temporary files
  // the rerun skips q001 and answers the rest
  hangSlow = false;
  const again = await runLoco(['analyze', 'demo', '--jobs', '2', '--backend', `openai:${model.url}`], { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /3 done, 1 skipped, 0 failed of 4/);
  for (const [n, q] of [['q002.md', 'Slow one?'], ['q003.md', 'Slow two?'], ['q004.md', 'Later?']])
    assert.equal(fs.readFileSync(path.join(outDir, n), 'utf8'), `answer to ${q}\n`);
});
