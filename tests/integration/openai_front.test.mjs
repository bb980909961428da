// openai_front.test.mjs: the official `openai` SDK against loco's OpenAI-compatible front
// (POST /v1/chat/completions), routed like /v1/messages: the local route (tool calls come
// back as tool_calls) and the cloud route (translated to and from the Anthropic API).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { gateway, openai, deadUrl, textOf, toolCallsIn, toolResponsesIn, LOCAL_SYSTEM_PROMPT, DEFAULT_FALLBACK_MODEL, CLOUD_KEY, HAIKU, SONNET } from './helpers.mjs';
import { cloudError } from './standins.mjs';

const T = { timeout: 30000 };

const fn = (name, properties, required) => ({
  type: 'function',
  function: { name, description: `${name} tool`, parameters: { type: 'object', properties, required } },
});
const TOOLS = [
  fn('Read', { file_path: { type: 'string' }, limit: { type: 'number' } }, ['file_path']),
  fn('Bash', { command: { type: 'string' }, description: { type: 'string' } }, ['command']),
  fn('Grep', { pattern: { type: 'string' }, path: { type: 'string' } }, ['pattern']),
];
const READ_INPUT = { file_path: '/repo/src/main.c', limit: 40 };
const BASH_INPUT = { command: 'ls -la /repo/src', description: 'List sources ✓' };
const INTRO = 'Reading the entry point first.';
const TWO_CALLS =
  `${INTRO}\n<tool_call>\n${JSON.stringify({ name: 'Read', arguments: READ_INPUT })}\n</tool_call>\n` +
  `<tool_call>\n${JSON.stringify({ name: 'Bash', arguments: BASH_INPUT })}\n</tool_call>`;

const ask = (extra = {}) => ({
  model: HAIKU,
  max_tokens: 2048,
  tools: TOOLS,
  messages: [
    { role: 'system', content: 'CLIENT-SYSTEM: you are a helpful agent.' },
    { role: 'user', content: 'Where is main defined in /repo?' },
  ],
  ...extra,
});

function assertToolCalls(calls) {
  assert.equal(calls.length, 2, JSON.stringify(calls));
  assert.deepEqual(calls.map((c) => c.type ?? 'function'), ['function', 'function']);
  assert.equal(calls[0].function.name, 'Read');
  assert.deepEqual(JSON.parse(calls[0].function.arguments), READ_INPUT);
  assert.equal(calls[1].function.name, 'Bash');
  assert.deepEqual(JSON.parse(calls[1].function.arguments), BASH_INPUT);
  for (const c of calls) assert.ok(typeof c.id === 'string' && c.id.length > 0);
  assert.notEqual(calls[0].id, calls[1].id);
}

// Folds chat.completion.chunk deltas into {content, tool_calls, finish_reason}.
async function collect(stream) {
  let content = '';
  let finish = null;
  let usage = null;
  const calls = [];
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const ch of chunk.choices ?? []) {
      assert.equal(ch.index, 0);
      if (ch.delta?.content) content += ch.delta.content;
      for (const tc of ch.delta?.tool_calls ?? []) {
        const slot = (calls[tc.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
        if (tc.id) slot.id = tc.id;
        if (tc.type) slot.type = tc.type;
        if (tc.function?.name) slot.function.name += tc.function.name;
        if (tc.function?.arguments) slot.function.arguments += tc.function.arguments;
      }
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { content, calls, finish, usage };
}

describe('OpenAI front, local route', () => {
  test('non-stream: <tool_call> text comes back as tool_calls', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: TWO_CALLS, usage: { prompt_tokens: 321, completion_tokens: 45 } });
    const r = await openai(g.loco).chat.completions.create(ask());
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices.length, 1);
    const m = r.choices[0].message;
    assert.equal(m.role, 'assistant');
    assert.equal((m.content ?? '').trim(), INTRO);
    assertToolCalls(m.tool_calls);
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.usage.prompt_tokens, 321);
    assert.equal(r.usage.completion_tokens, 45);
    assert.equal(g.cloud.requests.length, 0);
  });

  test('stream: content and tool_calls deltas, finish_reason tool_calls', T, async (t) => {
    const g = await gateway(t);
    g.local.enqueue({ text: TWO_CALLS, chunkSize: 2, delayMs: 0 });
    const stream = await openai(g.loco).chat.completions.create({ ...ask(), stream: true });
    const out = await collect(stream);
    assert.equal(out.content.trim(), INTRO);
    assert.doesNotMatch(out.content, /<|tool_call/);
    assertToolCalls(out.calls);
    assert.equal(out.finish, 'tool_calls');
  });

  test('the local server gets the training prompt, tool_calls and tool results as text', T, async (t) => {
    const g = await gateway(t);
    const messages = [
      { role: 'system', content: 'CLIENT-SYSTEM: replace me.' },
      { role: 'user', content: 'Find main.' },
      {
        role: 'assistant',
        content: 'Searching.',
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'Grep', arguments: JSON.stringify({ pattern: 'int main' }) } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'src/main.c:3:int main(void)' },
    ];
    const r = await openai(g.loco).chat.completions.create({ ...ask(), messages });
    assert.equal(r.choices[0].message.content, 'OK.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    const m = g.local.requests[0].body.messages;
    assert.deepEqual(m.map((x) => x.role), ['system', 'user', 'assistant', 'user']);
    assert.equal(m[0].content, LOCAL_SYSTEM_PROMPT);
    assert.ok(!g.local.requests[0].raw.includes('CLIENT-SYSTEM'));
    assert.match(textOf(m[2].content), /^Searching\.\s*<tool_call>\n/);
    assert.deepEqual(toolCallsIn(textOf(m[2].content)), [{ name: 'Grep', arguments: { pattern: 'int main' } }]);
    assert.deepEqual(toolResponsesIn(textOf(m[3].content)), ['src/main.c:3:int main(void)']);
  });

  test('local server down: falls back to the cloud with the fallback model', T, async (t) => {
    const g = await gateway(t, { localUrls: [await deadUrl()] });
    g.cloud.enqueue('Fallback answer.');
    const r = await openai(g.loco).chat.completions.create(ask());
    assert.equal(r.choices[0].message.content, 'Fallback answer.');
    assert.equal(r.choices[0].finish_reason, 'stop');
    assert.equal(g.cloud.requests.length, 1);
    assert.equal(g.cloud.requests[0].body.model, DEFAULT_FALLBACK_MODEL);
  });
});

describe('OpenAI front, cloud route', () => {
  const cloudAnswer = {
    content: [{ type: 'text', text: 'Sonnet here.' }, { type: 'tool_use', id: 'toolu_cloud1', name: 'Read', input: { file_path: '/x' } }],
    usage: { input_tokens: 11, output_tokens: 3 },
  };

  test('non-stream: translated to an Anthropic request and back', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(cloudAnswer);
    const r = await openai(g.loco).chat.completions.create(ask({ model: SONNET, max_tokens: 1234, temperature: 0.3 }));
    assert.equal(g.cloud.requests.length, 1);
    const req = g.cloud.requests[0];
    assert.equal(req.path, '/api/v1/messages');
    assert.equal(req.headers.authorization, `Bearer ${CLOUD_KEY}`);
    assert.equal(req.body.model, SONNET);
    assert.equal(req.body.max_tokens, 1234);
    assert.equal(req.body.temperature, 0.3);
    const system = typeof req.body.system === 'string' ? req.body.system : (req.body.system ?? []).map((b) => b.text).join('');
    assert.equal(system, 'CLIENT-SYSTEM: you are a helpful agent.');
    assert.equal(req.body.messages.length, 1);
    assert.equal(req.body.messages[0].role, 'user');
    assert.equal(textOf(req.body.messages[0].content), 'Where is main defined in /repo?');
    assert.deepEqual(req.body.tools.map((x) => x.name), ['Read', 'Bash', 'Grep']);
    assert.deepEqual(req.body.tools[0].input_schema, TOOLS[0].function.parameters);

    const m = r.choices[0].message;
    assert.equal(m.content, 'Sonnet here.');
    assert.equal(m.tool_calls.length, 1);
    assert.equal(m.tool_calls[0].id, 'toolu_cloud1');
    assert.equal(m.tool_calls[0].function.name, 'Read');
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { file_path: '/x' });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.usage.prompt_tokens, 11);
    assert.equal(r.usage.completion_tokens, 3);
  });

  test('stream: Anthropic SSE becomes chat.completion.chunk deltas', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(cloudAnswer);
    const stream = await openai(g.loco).chat.completions.create({ ...ask({ model: SONNET }), stream: true });
    const out = await collect(stream);
    assert.equal(g.cloud.requests[0].body.stream, true);
    assert.equal(out.content, 'Sonnet here.');
    assert.equal(out.calls.length, 1);
    assert.equal(out.calls[0].function.name, 'Read');
    assert.deepEqual(JSON.parse(out.calls[0].function.arguments), { file_path: '/x' });
    assert.equal(out.finish, 'tool_calls');
  });

  test('tool_choice maps faithfully: required -> any, a function -> that tool', T, async (t) => {
    const g = await gateway(t);
    const client = openai(g.loco);
    await client.chat.completions.create(ask({ model: SONNET, tool_choice: 'required' }));
    await client.chat.completions.create(ask({ model: SONNET, tool_choice: { type: 'function', function: { name: 'Read' } } }));
    assert.deepEqual(g.cloud.requests[0].body.tool_choice?.type, 'any');
    assert.deepEqual(g.cloud.requests[1].body.tool_choice?.type, 'tool');
    assert.equal(g.cloud.requests[1].body.tool_choice.name, 'Read');
  });

  test('assistant tool_calls and tool results are sent as tool_use / tool_result', T, async (t) => {
    const g = await gateway(t);
    const messages = [
      { role: 'user', content: 'Find main.' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_abc', type: 'function', function: { name: 'Grep', arguments: '{"pattern":"int main"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_abc', content: 'src/main.c:3:int main(void)' },
    ];
    await openai(g.loco).chat.completions.create({ ...ask({ model: SONNET }), messages });
    const sent = g.cloud.requests[0].body.messages;
    assert.deepEqual(sent.map((x) => x.role), ['user', 'assistant', 'user']);
    const use = sent[1].content.find((b) => b.type === 'tool_use');
    assert.deepEqual({ id: use.id, name: use.name, input: use.input }, { id: 'toolu_abc', name: 'Grep', input: { pattern: 'int main' } });
    const res = sent[2].content.find((b) => b.type === 'tool_result');
    assert.equal(res.tool_use_id, 'toolu_abc');
    assert.equal(textOf(res.content), 'src/main.c:3:int main(void)');
  });

  test('a cloud 529 is an error with status 529', T, async (t) => {
    const g = await gateway(t);
    g.cloud.enqueue(cloudError(529, 'overloaded_error', 'Overloaded'));
    await assert.rejects(openai(g.loco).chat.completions.create(ask({ model: SONNET })), (err) => err.status === 529);
  });
});
