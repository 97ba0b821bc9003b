// A fuzzer of the receiver's command grammar (SSH_ORIGINAL_COMMAND, read by
// standby/receive-request.ts), bounded in count and time, deterministic: the
// seed is fixed (STANDBY_FUZZ_SEED overrides it) and printed with every
// failure, so a failing case runs again as it failed. Mutated and random
// command lines (rsync --server with every option, paths outside the roots,
// `..`, symlinks out, quoting, NUL, line breaks, very long lines, the version,
// mkdir, sync and fence forms) go to the parser, whose answer is checked by
// rules of this file's own, not the parser's lists: only whitelisted kinds,
// no option that reads from the standby or writes outside the destination,
// every path inside the roots once resolved. A smaller sample runs through
// the real `standby receive` behind a real sshd, and a sentinel tree outside
// the roots must come out unchanged.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseRequest, realPath, type ReceiveRequest, type RequestPolicy } from '../../standby/receive-request.ts';
import { StandbyError } from '../../core/errors.ts';
import { run } from '../fixtures/cli-run.ts';
import { STANDBY_CLI } from '../fixtures/program-paths.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import { snapshot } from '../fixtures/tree-snapshot.ts';
import { seededRandom } from '../fixtures/fuzz-random.ts';

const SEED = Number(process.env.STANDBY_FUZZ_SEED ?? 0x5eed10);
const PARSER_CASES = 3_000;
const PARSER_BUDGET_MS = 20_000;
const PROCESS_CASES = 12;

/** the fuzzers' seeded source (test/fixtures/fuzz-random.ts): the same seed, the same cases */
const prng = (seed: number): (() => number) => seededRandom(seed).next;

interface World {
  top: string;
  root: string;
  outside: string;
  state: string;
  home: string;
}

function makeWorld(): World {
  const top = realpathSync(mkdtempSync(join(tmpdir(), 'standby-fuzz-')));
  const w = { top, root: join(top, 'root'), outside: join(top, 'outside'), state: join(top, 'state'), home: join(top, 'home') };
  for (const d of [w.root, join(w.root, 'inside'), w.outside, join(w.outside, 'deep'), w.home]) mkdirSync(d, { recursive: true });
  writeFileSync(join(w.outside, 'sentinel.txt'), 'must not change\n');
  writeFileSync(join(w.outside, 'deep', 'keep.txt'), 'nor this\n');
  writeFileSync(join(w.root, 'inside', 'file.txt'), 'inside\n');
  symlinkSync(w.outside, join(w.root, 'link-out')); // a folder in the root that leads out of it
  symlinkSync(join(w.root, 'inside'), join(w.root, 'link-in'));
  symlinkSync('/', join(w.root, 'link-slash'));
  return w;
}

/** Options that read from the standby, write outside the destination, write in place or hide arguments: never accepted (this file's own list). */
const FORBIDDEN_LONG = [
  '--sender', '--files-from', '--exclude-from', '--include-from', '--filter', '--log-file', '--log-file-format', '--temp-dir',
  '--partial-dir', '--backup-dir', '--compare-dest', '--copy-dest', '--link-dest', '--write-batch', '--only-write-batch',
  '--read-batch', '--remove-source-files', '--rsh', '--rsync-path', '--daemon', '--config', '--password-file',
  '--partial', '--append', '--append-verify', '--secluded-args', '--protect-args', '--keep-dirlinks', '--copy-unsafe-links',
  '--super', '--usermap', '--groupmap', '--chown', '--mkpath', '--trust-sender', '--old-args', '--server', '--address', '--port',
];
/** accepted only with a check the receiver makes before rsync runs, which the request must carry: --inplace into a folder that holds nothing */
const CHECKED_LONG = ['--inplace'];
/** short letters never accepted in a bundle: secluded args, keep-dirlinks, -T (temp dir), -e as a shell */
const FORBIDDEN_SHORT = new Set(['s', 'K', 'T', 'B', 'M', 'f', 'F']);

const SAFE_LONG = ['--delete', '--force', '--stats', '--delay-updates', '--ignore-times', '--timeout=30', '--numeric-ids', '--delete-after', '--max-delete=5', '--chmod=D755', '--info=progress2', '--compress-level=1', '--size-only', '--fsync'];

function pick<T>(r: () => number, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)]!;
}

function pathPool(w: World): string[] {
  return [
    w.root, `${w.root}/`, join(w.root, 'inside'), `${w.root}/inside/`, join(w.root, 'new-folder'), join(w.root, 'link-in'),
    join(w.root, 'link-out'), join(w.root, 'link-out', 'deep'), join(w.root, 'link-slash', 'etc'), `${w.root}/../outside`,
    `${w.root}/inside/../../outside`, `${w.root}/./inside/.`, w.outside, join(w.outside, 'deep'), w.top, w.state, w.home, '/',
    '/etc', '/root/.ssh', '.', '..', '~', '~/x', '~root', '~root/.ssh', 'relative/path', `${w.root}x`, `${w.root}-evil/`,
    `${w.root}/inside/\u00e9`, `${w.root}/a b`, '', `${w.root}/${'x'.repeat(5000)}`, `${w.root}/\u0000x`, `${w.root}\n/x`,
  ];
}

const SHELLISH = [';', '|', '&', '&&', '$(id)', '`id`', '>', '<', '>>', '(', ')', '{', '}', '#', '\n', '\r', '\0', '\\', "'", '"', '$HOME', '*', '?', '[a]', '~', '!'];

/** one argument written the ways a client could write it */
function quoteVariant(r: () => number, word: string): string {
  switch (Math.floor(r() * 6)) {
    case 0: return `'${word.replace(/'/g, `'\\''`)}'`;
    case 1: return `"${word.replace(/(["\\$`])/g, '\\$1')}"`;
    case 2: return word.replace(/([ '"\\;|&$`<>(){}#*?~])/g, '\\$1');
    case 3: return word.replace(/ /g, '\\ ');
    default: return word;
  }
}

function shortBundle(r: () => number): string {
  const letters = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
  let s = '-';
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) s += letters[Math.floor(r() * letters.length)];
  return r() < 0.5 ? `${s}e.iLsfxCIvu` : s;
}

function option(r: () => number, w: World): string {
  const x = r();
  if (x < 0.3) return pick(r, SAFE_LONG);
  if (x < 0.55) {
    const name = pick(r, [...FORBIDDEN_LONG, ...CHECKED_LONG]);
    return r() < 0.6 ? `${name}=${pick(r, pathPool(w))}` : name;
  }
  if (x < 0.8) return shortBundle(r);
  return '-logDtprze.iLsfxCIvu';
}

/** a command line: a valid form, then mutated */
function commandLine(r: () => number, w: World): string {
  const paths = pathPool(w);
  const epoch = r() < 0.5 ? `STANDBY_EPOCH=${Math.floor(r() * 5)} ` : '';
  const forms: (() => string[])[] = [
    () => ['rsync', '--server', ...Array.from({ length: Math.floor(r() * 5) }, () => option(r, w)), '.', pick(r, paths)],
    () => ['rsync', '--server', '-logDtpre.iLsfxCIvu', '--delete', '--force', '--delay-updates', '.', pick(r, paths)],
    // one letter or one option at a time on an otherwise valid transfer into the root: each is judged alone
    () => ['rsync', '--server', `-logDtp${pick(r, [...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'])}re.iLsfxCIvu`, '.', `${w.root}/inside/`],
    () => ['rsync', '--server', '-logDtpre.iLsfxCIvu', option(r, w), '.', `${w.root}/inside/`],
    () => ['sync', pick(r, ['-f', '--file-system', '-d', '']), pick(r, paths)],
    () => ['mkdir', pick(r, ['-p', '-m', '--parents', '']), ...Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, paths))],
    () => ['rsync', pick(r, ['--version', '--help', '-V', '--server'])],
    () => ['standby', 'receive', pick(r, ['--fence', '--revoke', '--authorize', '--state-dir', '--root']), pick(r, ['3', 'gpu-1', w.state, '/', '../x', '-1'])],
    () => [pick(r, ['/usr/bin/rsync', '/bin/sh', 'sh', 'bash', 'cat', 'rm', 'cp', 'tee', 'env', 'STANDBY_EPOCH=1', 'PATH=/tmp', 'LD_PRELOAD=/x.so', '/usr/bin/mkdir', '/tmp/rsync']), pick(r, ['-c', '-rf', '--server', '-p']), pick(r, paths)],
  ];
  let words = pick(r, forms)().map((word) => quoteVariant(r, word));
  const mutations = Math.floor(r() * 4);
  for (let m = 0; m < mutations; m++) {
    const i = Math.floor(r() * (words.length + 1));
    switch (Math.floor(r() * 6)) {
      case 0: words.splice(i, 0, pick(r, SHELLISH)); break;
      case 1: words.splice(i, 1); break;
      case 2: words.splice(i, 0, words[Math.floor(r() * words.length)] ?? ''); break;
      case 3: if (words[i] !== undefined) words[i] = words[i] + pick(r, SHELLISH); break;
      case 4: words.splice(i, 0, option(r, w)); break;
      default: words = words.map((x) => (r() < 0.1 ? x.toUpperCase() : x));
    }
  }
  let line = epoch + words.join(pick(r, [' ', ' ', '  ', '\t']));
  if (r() < 0.01) line = line + ' ' + 'A'.repeat(100_000); // very long
  if (r() < 0.05) line = Array.from({ length: 1 + Math.floor(r() * 80) }, () => String.fromCharCode(Math.floor(r() * 0x80))).join(''); // noise
  return line;
}

function inside(path: string, roots: readonly string[]): boolean {
  const real = realPath(path.replace(/\/+$/, '') || '/');
  return roots.some((root) => {
    const rel = relative(root, real);
    return rel === '' || (!rel.startsWith('..') && !resolve(root, rel).startsWith('..') && !rel.startsWith('/'));
  });
}

/** This file's rules for an accepted request; returns what is wrong, or undefined. */
function violation(req: ReceiveRequest, line: string, policy: RequestPolicy): string | undefined {
  if (/[\0\n\r]/.test(line)) return 'accepted a line with a NUL or a line break';
  if (req.kind === 'version') return /^\s*(STANDBY_EPOCH=\d+\s+)?(\S*\/)?rsync\s+--version\s*$/.test(line.replace(/['"\\]/g, '')) ? undefined : 'version from another line';
  if (req.kind === 'fence' || req.kind === 'revoke' || req.kind === 'authorize') return policy.allowFence ? undefined : `${req.kind} accepted without --allow-fence`;
  if (policy.allowFence) return `a write (${req.kind}) accepted from the fencing key`;
  const targets = req.kind === 'mkdir' ? req.args.filter((a) => a !== '-p' && a !== '--') : [req.target];
  for (const t of targets) if (!inside(t, policy.roots)) return `${req.kind} into ${t}, outside the roots`;
  if (req.kind === 'sync' && (req.args.length !== 2 || req.args[0] !== '-f')) return `sync with ${JSON.stringify(req.args)}`;
  if (req.kind === 'mkdir' && (req.args[0] !== '-p' || req.args[1] !== '--')) return `mkdir with ${JSON.stringify(req.args)}`;
  if (req.kind === 'rsync') {
    if (req.args[0] !== '--server' || req.args.at(-2) !== '.') return `rsync args ${JSON.stringify(req.args.slice(0, 3))}`;
    for (const a of req.args.slice(1, -2)) {
      if (!a.startsWith('-')) return `rsync operand ${a}`;
      if (a.startsWith('--')) {
        const name = a.split('=')[0]!;
        if (FORBIDDEN_LONG.includes(name)) return `rsync option ${name} accepted`;
        if (name === '--inplace' && (a !== '--inplace' || !req.inplace)) return `${a} accepted without the empty-folder check`;
        if (a.includes('=') && /(^|[=,])\//.test(a.slice(name.length)) && name !== '--log-format') return `rsync option with a path: ${a}`;
      } else {
        const letters = a.slice(1).split('e')[0]!;
        for (const ch of letters) if (FORBIDDEN_SHORT.has(ch)) return `rsync short option -${ch} accepted (${a})`;
      }
    }
  }
  return undefined;
}

describe('fuzzing the receiver command grammar', () => {
  let w: World;
  before(() => {
    w = makeWorld();
  });
  after(() => rmSync(w.top, { recursive: true, force: true }));

  for (const allowFence of [false, true]) {
    test(`the parser (${allowFence ? 'the fencing key' : 'a writer key'}): ${PARSER_CASES} lines, nothing outside the rules accepted, no crash (seed ${SEED})`, (t) => {
      const policy: RequestPolicy = { roots: [realPath(w.root)], cwd: w.home, home: w.home, allowFence, stateDir: w.state };
      const r = prng(SEED + (allowFence ? 1 : 0));
      const started = performance.now();
      let accepted = 0;
      let n = 0;
      for (; n < PARSER_CASES && performance.now() - started < PARSER_BUDGET_MS; n++) {
        const line = commandLine(r, w);
        const replay = `STANDBY_FUZZ_SEED=${SEED} case ${n} (allowFence ${allowFence}): ${JSON.stringify(line.length > 400 ? `${line.slice(0, 400)}...` : line)}`;
        let req: ReceiveRequest;
        const t0 = performance.now();
        try {
          req = parseRequest(line, policy);
        } catch (err) {
          assert.ok(err instanceof StandbyError && err.code === 'STANDBY_ERR_COMMAND_REFUSED', `not a refusal: ${String(err)}; ${replay}`);
          assert.ok(err.message.length < 2_000, `a refusal message of ${err.message.length} characters; ${replay}`);
          continue;
        } finally {
          assert.ok(performance.now() - t0 < 1_000, `one parse took ${Math.round(performance.now() - t0)} ms; ${replay}`);
        }
        accepted++;
        const wrong = violation(req, line, policy);
        assert.equal(wrong, undefined, `${wrong}; ${replay}`);
      }
      t.diagnostic(`${accepted} of ${n} lines accepted`);
      assert.ok(n >= 500, `only ${n} cases in ${PARSER_BUDGET_MS} ms`);
      assert.ok(accepted > 0 || allowFence, 'the generator never made an acceptable line: it tests refusals only');
    });
  }

  describe('through the real standby receive behind sshd', () => {
    let sshd: Sshd;
    before(async () => {
      sshd = await startSshd({ keyOptions: `command="${STANDBY_CLI} receive --root ${w.root} --state-dir ${w.state}",restrict` });
    });
    after(async () => {
      await sshd?.close();
    });

    test(`${PROCESS_CASES} lines: nothing outside the roots changes (seed ${SEED})`, async () => {
      const r = prng(SEED + 2);
      const outsideBefore = snapshot(w.outside, { modes: true });
      const homeBefore = snapshot(w.home, { modes: true });
      const topBefore = Object.keys(snapshot(w.top)).filter((p) => !p.startsWith('root') && !p.startsWith('state') && !p.startsWith('outside') && !p.startsWith('home'));
      const policy: RequestPolicy = { roots: [realPath(w.root)], cwd: w.home, home: w.home, allowFence: false, stateDir: w.state };
      // lines that write outside if anything let them through, and fuzzed ones (long noise left to the parser test)
      const lines = [
        `mkdir -p ${w.outside}/made-by-fuzz`,
        `mkdir -p ${w.root}/link-out/made-by-fuzz`,
        `rsync --version; touch ${w.outside}/pwned`,
        `rsync --version && touch ${w.outside}/pwned`,
        `mkdir -p ${w.root}/ok $(touch ${w.outside}/pwned)`,
        `sync -f ${w.root}/../outside`,
        `rsync --server -logDtpre.iLsfxCIvu --delete --force . ${w.root}/link-out/`,
      ];
      while (lines.length < PROCESS_CASES) {
        const line = commandLine(r, w);
        if (line.length < 10_000 && !line.includes('\0')) lines.push(line);
      }
      for (const [n, line] of lines.entries()) {
        const replay = `STANDBY_FUZZ_SEED=${SEED} process case ${n}: ${JSON.stringify(line.slice(0, 300))}`;
        let parsed: ReceiveRequest | undefined;
        try {
          parsed = parseRequest(line, policy);
        } catch {
          parsed = undefined;
        }
        const res = await run('ssh', [...sshd.clientArgs(), '--', `${sshd.user}@${sshd.host}`, line], {}, 15_000, ''); // `--`: a line may start with "-"
        if (!parsed) assert.match(res.stderr, /refused|STANDBY_ERR_COMMAND_REFUSED/, `the parser refuses it but the receiver did not say so (exit ${res.code}): ${res.stderr.slice(-300)}; ${replay}`);
        assert.deepEqual(snapshot(w.outside, { modes: true }), outsideBefore, `something outside the roots changed; ${replay}`);
        assert.deepEqual(snapshot(w.home, { modes: true }), homeBefore, `the home folder changed; ${replay}`);
        const topNow = Object.keys(snapshot(w.top)).filter((p) => !p.startsWith('root') && !p.startsWith('state') && !p.startsWith('outside') && !p.startsWith('home'));
        assert.deepEqual(topNow, topBefore, `something appeared beside the roots; ${replay}`);
      }
    });
  });
});
