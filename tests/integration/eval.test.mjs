// eval.test.mjs: `loco eval` end to end: the real binary on the fixture set tests/data/eval
// (every expected number derived by hand below), Markdown / JSON / SVG output, and predictions
// produced through a scripted OpenAI-compatible (and Anthropic-compatible) server scoring the
// same as the same predictions given by file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { LOCO_BIN, REPO_ROOT } from './helpers.mjs';
import { startEvalStandin } from './eval_standin.mjs';

const DATA = path.join(REPO_ROOT, 'tests', 'data', 'eval');
const SAMPLES = path.join(DATA, 'samples.jsonl');
const PREDICTIONS = path.join(DATA, 'predictions.jsonl');
const SANITIZER = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer/;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-eval-'));

// Runs `loco eval` with args; resolves {code, stdout, stderr}. stdin is closed, stderr not a tty.
function loco(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(LOCO_BIN, ['eval', ...args], {
      cwd: tmp,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tmp, LANG: 'C.UTF-8', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? 'detect_leaks=1', UBSAN_OPTIONS: process.env.UBSAN_OPTIONS ?? 'print_stacktrace=1:halt_on_error=1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (SANITIZER.test(stderr)) reject(new Error(`sanitizer report from loco ${args.join(' ')}:\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

async function evalJson(args) {
  const r = await loco([SAMPLES, ...args, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return { json: JSON.parse(r.stdout), stderr: r.stderr };
}

const ratio = (hits, total) => ({ hits, total, rate: hits / total });
const near = (a, b) => Math.abs(a - b) < 1e-9;

// The metric keys that must not depend on where the predictions came from.
const METRICS = ['matched', 'missing_predictions', 'samples', 'tool_call_presence_alignment', 'first_tool_type_match',
  'json_validity', 'argument_syntax_correctness', 'label_json_validity', 'label_argument_syntax_correctness',
  'tool_distribution', 'tool_totals', 'tool_name_set', 'exact_argument_match', 'calls_per_turn', 'first_tool_confusion'];

function metricsOf(j) {
  return Object.fromEntries(METRICS.map((k) => [k, j[k]]));
}

/*
 * The fixture, per scored sample (L = label calls, P = predicted calls):
 *   s01 hf   L Read(file_path)                  P Read(same arguments)
 *   s02 hf   L -                                P -                          no calls either side
 *   s03 hf   L Bash, Read(setup.py)             P Grep, Read(setup.py), Glob several per turn
 *   s04 hf   L Read                             P {"file_path": /r/x.py}: broken JSON
 *   s05 hf   L Grep(pattern)                    P Grep with missing closers: repaired, not valid
 *   s06 anthropic L Read, Glob (tool_use)       P Read(offset: "10"): mistyped
 *   s07 openai L Edit(no new_string), Bash(args "{\"command\": \"ls\"": broken)
 *            P Edit(all arguments)              (tool_calls)
 *   s08 hf + tools [search_code]  L search_code  P Read (unknown here), search_code(max: 2.5 mistyped)
 *   s09 hf   L Task                             P -
 *   s10 hf   L -                                P {"arguments": {...}}: valid JSON, no name
 *   s11 hf   L Bash({}) (missing command)       P WebFetch (unknown tool)
 *   s12 has no prediction; "ghost" has no sample; sample lines 3, 10, 12, 18 and prediction
 *   lines 5, 10 are broken; sample line 17 repeats id s01.
 */
test('metrics of the fixture set, computed by hand', async () => {
  const { json: j, stderr } = await evalJson(['--predictions', PREDICTIONS]);
  // 17 non-blank lines, 4 broken + 1 duplicate; s06 anthropic, s07 openai, 10 hf
  assert.deepEqual(j.samples, { lines: 17, valid: 12, broken: 5, forms: { hf: 10, anthropic: 1, openai: 1 } });
  // 14 lines, 2 broken (5: not JSON, 10: no output), 12 valid (s01..s11, ghost)
  assert.deepEqual(j.predictions, { lines: 14, valid: 12, broken: 2, failed: 0 });
  assert.equal(j.matched, 11);
  assert.deepEqual(j.missing_predictions, ['s12']);
  assert.deepEqual(j.unmatched_predictions, ['ghost']);
  assert.equal(j.problems_total, 7);
  assert.deepEqual(j.problems.map((p) => [path.basename(p.source), p.line]),
    [['samples.jsonl', 3], ['samples.jsonl', 10], ['samples.jsonl', 12], ['samples.jsonl', 18],
      ['predictions.jsonl', 5], ['predictions.jsonl', 10], ['samples.jsonl', 17]]);
  assert.match(stderr, /samples\.jsonl:3: not JSON \(column 4\)/);
  assert.match(stderr, /predictions\.jsonl:10: no "output"/);
  assert.match(stderr, /sample 's12' has no prediction/);
  assert.match(stderr, /prediction 'ghost' has no sample/);

  // presence: all agree but s09 (label only) and s10 (prediction only): 9/11
  assert.deepEqual(j.tool_call_presence_alignment, ratio(9, 11));
  // first tool over s01 s03 s04 s05 s06 s07 s08 s11 (calls on both sides): equal in s01, s05, s06, s07
  assert.deepEqual(j.first_tool_type_match, ratio(4, 8));
  // predicted calls 1+3+1+1+1+1+2+1+1 = 12; s04 (broken) and s05 (repaired) not valid JSON
  assert.deepEqual(j.json_validity, ratio(10, 12));
  // correct: s01 Read, s03 Grep Read Glob, s07 Edit = 5
  assert.deepEqual(j.argument_syntax_correctness, ratio(5, 12));
  // label calls 1+2+1+1+2+2+1+1+1 = 12; s07 Bash not valid JSON; s07 Edit, s07 Bash, s11 Bash fail syntax
  assert.deepEqual(j.label_json_validity, ratio(11, 12));
  assert.deepEqual(j.label_argument_syntax_correctness, ratio(9, 12));
  assert.deepEqual(j.tool_distribution, {
    Read: { model: 4, teacher: 4 }, // model s01 s03 s06 s08; teacher s01 s03 s04 s06
    Bash: { model: 0, teacher: 3 }, // teacher s03 s07 s11
    Grep: { model: 2, teacher: 1 }, // model s03 s05; teacher s05
    Edit: { model: 1, teacher: 1 },
    Glob: { model: 1, teacher: 1 }, // model s03; teacher s06
    search_code: { model: 1, teacher: 1 },
    Task: { model: 0, teacher: 1 },
    WebFetch: { model: 1, teacher: 0 },
    '(unparsed)': { model: 2, teacher: 0 }, // s04 broken, s10 nameless
  });
  assert.deepEqual(Object.keys(j.tool_distribution), ['Read', 'Bash', 'Grep', 'Edit', 'Glob', 'search_code', 'Task', 'WebFetch', '(unparsed)']);
  assert.deepEqual(j.tool_totals, { model: 12, teacher: 12 });
  // per sample (p, r, f1) over the 10 with a call: s01 (1,1,1) s03 (1/3,1/2,2/5) s04 (0,0,0)
  // s05 (1,1,1) s06 (1,1/2,2/3) s07 (1,1/2,2/3) s08 (1/2,1,2/3) s09 (1,0,0) s10 (0,1,0) s11 (0,0,0)
  assert.equal(j.tool_name_set.samples, 10);
  assert.ok(near(j.tool_name_set.precision, 35 / 60), String(j.tool_name_set.precision));
  assert.ok(near(j.tool_name_set.recall, 0.55), String(j.tool_name_set.recall));
  assert.ok(near(j.tool_name_set.f1, 0.44), String(j.tool_name_set.f1));
  // label calls reproduced exactly: s01 Read, s03 Read, s05 Grep (arguments equal after repair)
  assert.deepEqual(j.exact_argument_match, ratio(3, 12));
  // model: 12 calls in 9 turns, s03 and s08 with several; teacher 12 in 9, s03 s06 s07
  assert.equal(j.calls_per_turn.model.calls, 12);
  assert.equal(j.calls_per_turn.model.turns, 9);
  assert.equal(j.calls_per_turn.model.multi_call_turns, 2);
  assert.ok(near(j.calls_per_turn.model.mean, 12 / 9));
  assert.equal(j.calls_per_turn.teacher.multi_call_turns, 3);
  assert.deepEqual(j.first_tool_confusion, [
    { teacher: 'Bash', model: 'Grep', count: 1 }, // s03
    { teacher: 'Bash', model: 'WebFetch', count: 1 }, // s11
    { teacher: 'Read', model: '(unparsed)', count: 1 }, // s04
    { teacher: 'search_code', model: 'Read', count: 1 }, // s08
  ]);
});

test('Markdown tables like the model card, and the SVG chart', async () => {
  const chart = path.join(tmp, 'chart.svg');
  const r = await loco([SAMPLES, '--predictions', PREDICTIONS, '--chart', chart, '--model-label', 'LocoOperator-4B', '--teacher-label', 'Qwen3-Coder-Next']);
  assert.equal(r.code, 0, r.stderr);
  for (const line of [
    '| **Tool Call Presence Alignment** | **81.8%** (9/11) |',
    '| **First Tool Type Match** | **50.0%** (4/8) |',
    '| **JSON Validity** | **83.3%** (10/12) |',
    '| **Argument Syntax Correctness** | **41.7%** (5/12) |',
    '| Tool | LocoOperator-4B | Qwen3-Coder-Next | Delta |',
    '| Read | 4 | 4 | 0 |',
    '| Bash | 0 | 3 | -3 |',
    '| **Total** | **12** | **12** | **0** |',
    '| **LocoOperator-4B** | 10/12 (83.3%) | 5/12 (41.7%) |',
    '| Qwen3-Coder-Next (labels) | 11/12 (91.7%) | 9/12 (75.0%) |',
  ]) assert.ok(r.stdout.split('\n').includes(line), `missing line: ${line}\n${r.stdout}`);
  const svg = fs.readFileSync(chart, 'utf8');
  assert.ok(svg.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg"'));
  assert.ok(svg.endsWith('</svg>\n'));
  assert.equal(svg.match(/<rect /g).length, 1 + 2 + 2 * 9); // background, legend, 2 bars x 9 tools
  assert.match(svg, /<title>Qwen3-Coder-Next, Bash: 3<\/title>/);
  assert.match(svg, />Tool calls<\/text>/);
  // every opened element is closed (a cheap well-formedness check)
  const tags = svg.match(/<(svg|g|text|rect|line|title)(\s[^>]*)?>/g) ?? [];
  const selfClosed = tags.filter((x) => x.endsWith('/>')).length;
  const open = tags.length - selfClosed;
  const closed = (svg.match(/<\/(svg|g|text|rect|line|title)>/g) ?? []).length;
  assert.equal(open, closed, `open ${open}, self-closed ${selfClosed}, closed ${closed}`);
});

test('predictions from a scripted OpenAI-compatible server score like the same predictions by file', async (t) => {
  const standin = await startEvalStandin({ predictions: PREDICTIONS });
  t.after(() => standin.close());
  const saved = path.join(tmp, 'saved-openai.jsonl');
  const { json: fromFile } = await evalJson(['--predictions', PREDICTIONS]);
  const { json: fromServer, stderr } = await evalJson(['--backend', `openai:${standin.url}`, '--model', 'loco-under-test', '--jobs', '3', '--save-predictions', saved]);
  assert.deepEqual(metricsOf(fromServer), metricsOf(fromFile));
  // s12 has no prediction: the server answers 404, a failed sample, not a fatal error
  assert.deepEqual(fromServer.predictions, { lines: 0, valid: 11, broken: 0, failed: 1 });
  assert.ok(fromServer.problems.some((p) => p.source === 'backend' && /sample 's12': .*404/.test(p.message)), JSON.stringify(fromServer.problems));
  // the progress display on a non-terminal: plain lines (at most one per tenth), the failed
  // sample named, the end at 12/12 (s01..s12, not the repeated s01)
  assert.match(stderr, /\[\d+\/12\] s12 failed: /);
  assert.match(stderr, /^100% {2}12\/12 samples/m, stderr);
  assert.ok((stderr.match(/^ *\d+% /gm) ?? []).length <= 11, stderr);
  assert.equal(standin.requests.length, 12);

  // what the model saw: qwen text, the sample's own system prompt, no tools field
  const s06 = standin.requests.find((r) => r.id === 's06').body;
  assert.equal(s06.model, 'loco-under-test');
  assert.equal(s06.tools, undefined);
  assert.deepEqual(s06.messages.map((m) => m.role), ['system', 'user', 'assistant', 'user']);
  assert.match(s06.messages[0].content, /^You are a read-only codebase search specialist\./);
  assert.equal(s06.messages[2].content, '<tool_call>\n{"name": "Glob", "arguments": {"pattern": "**/config*.py"}}\n</tool_call>');
  assert.equal(s06.messages[3].content, '<tool_response>\n/r/a.py\n</tool_response>');
  const s03 = standin.requests.find((r) => r.id === 's03').body;
  const sample03 = JSON.parse(fs.readFileSync(SAMPLES, 'utf8').split('\n')[3]);
  assert.deepEqual(s03.messages, sample03.messages); // HF text goes out byte for byte

  // the saved predictions read back give the same metrics again
  const lines = fs.readFileSync(saved, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 11);
  assert.equal(lines[0].id, 's01');
  assert.equal(lines[0].output, JSON.parse(fs.readFileSync(PREDICTIONS, 'utf8').split('\n')[0]).output);
  const { json: fromSaved } = await evalJson(['--predictions', saved]);
  assert.deepEqual(metricsOf(fromSaved), metricsOf(fromFile));
});

test('predictions from a scripted Anthropic-compatible server score the same too', async (t) => {
  const standin = await startEvalStandin({ predictions: PREDICTIONS });
  t.after(() => standin.close());
  const { json: fromFile } = await evalJson(['--predictions', PREDICTIONS]);
  const { json: fromServer } = await evalJson(['--backend', `anthropic:${standin.url}`, '--model', 'claude-haiku', '--jobs', '2', '--quiet']);
  assert.deepEqual(metricsOf(fromServer), metricsOf(fromFile));
  const s07 = standin.requests.find((r) => r.id === 's07');
  assert.equal(s07.path.split('?')[0], '/v1/messages');
  // the conversation goes as it is: tool_use and tool_result blocks
  assert.equal(s07.body.messages[1].content.find((b) => b.type === 'tool_use').name, 'Read');
  assert.equal(s07.body.messages[2].content.find((b) => b.type === 'tool_result').tool_use_id, 'call_1');
});

test('usage errors, unreadable files and nothing to score', async () => {
  let r = await loco([]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give the samples file/);
  r = await loco([SAMPLES]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /give one of --predictions FILE or --backend SPEC/);
  r = await loco([SAMPLES, '--predictions', PREDICTIONS, '--backend', 'openai:http://127.0.0.1:1']);
  assert.equal(r.code, 2);
  r = await loco([SAMPLES, '--predictions', PREDICTIONS, '--format', 'xml']);
  assert.equal(r.code, 2);
  r = await loco([SAMPLES, '--backend', 'carrier-pigeon:x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--backend is engine, openai:URL or anthropic:URL/);
  r = await loco([SAMPLES, '--backend', 'openai:localhost:8080']); // not a URL
  assert.equal(r.code, 2);
  r = await loco([path.join(tmp, 'no-such.jsonl'), '--predictions', PREDICTIONS]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no-such\.jsonl/);
  const broken = path.join(tmp, 'broken.jsonl');
  fs.writeFileSync(broken, 'not json\n{"id": 1}\n');
  r = await loco([broken, '--predictions', PREDICTIONS, '--format', 'json']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no sample could be scored/);
  assert.equal(JSON.parse(r.stdout).samples.broken, 2);
  r = await loco(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Calls per turn +mean number of calls in turns that have at least one/);
});

test('a model server that cannot be reached stops the run at the first connection error, one message', async () => {
  const r = await loco([SAMPLES, '--backend', 'openai:http://127.0.0.1:9', '--format', 'json', '--jobs', '4']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.filter((l) => /127\.0\.0\.1:9/.test(l)).length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\[\d+\/12\]/); // no sample is reported one by one
  assert.match(r.stderr, /is the model server running/);
});
