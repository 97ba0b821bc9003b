// rsync's arguments for every kind of run, for each thing the real code varies
// them on: the user's excludes, the epoch the receiver is told (with and
// without a configured standby.rsyncPath), the ssh shell, the I/O timeout, and
// the run's kind (--files-from transfer, filter rules, their dry run, full
// reconcile, its deletion count first, verify's comparison). The agent sends
// no compression, --partial or --inplace option and nothing that depends on
// the rsync version (folders are made with mkdir -p, not --mkpath): the
// tables assert exactly that no other option appears.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { baseArgs, fullArgs, rsyncPathArgs, rulesArgs, transferArgs, verifyArgs, type RootEnds, type RsyncSettings } from '../../agent/rsync-args.ts';

const ENDS: RootEnds = { from: '/workspace/', to: 'standby@10.0.0.2:/srv/standby/workspace/' };
const SHELL = "ssh -p 2222 -o BatchMode=yes -o 'ControlPath=/run/standby/cm-1'";

describe('rsyncPathArgs: how the standby side starts', () => {
  const cases: { name: string; epoch: number | undefined; rsyncPath: string | undefined; flush?: boolean; want: string[] }[] = [
    { name: 'no proxy, default rsync: nothing (the standby runs rsync from its PATH)', epoch: undefined, rsyncPath: undefined, want: [] },
    { name: 'no proxy, configured rsyncPath', epoch: undefined, rsyncPath: '/opt/rsync/bin/rsync', want: ['--rsync-path=/opt/rsync/bin/rsync'] },
    { name: 'an epoch: the receiver is told it as an env assignment before rsync', epoch: 7, rsyncPath: undefined, want: ['--rsync-path=STANDBY_EPOCH=7 rsync'] },
    { name: 'an epoch and a configured rsyncPath', epoch: 12, rsyncPath: '/opt/rsync/bin/rsync', want: ['--rsync-path=STANDBY_EPOCH=12 /opt/rsync/bin/rsync'] },
    { name: 'epoch 0 is an epoch, not "none"', epoch: 0, rsyncPath: undefined, want: ['--rsync-path=STANDBY_EPOCH=0 rsync'] },
    { name: 'a flush asked of the receiver, with an epoch', epoch: 3, rsyncPath: undefined, flush: true, want: ['--rsync-path=STANDBY_EPOCH=3 STANDBY_FLUSH=1 rsync'] },
    { name: 'a flush asked of the receiver, no proxy, configured rsyncPath', epoch: undefined, rsyncPath: '/opt/rsync/bin/rsync', flush: true, want: ['--rsync-path=STANDBY_FLUSH=1 /opt/rsync/bin/rsync'] },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(rsyncPathArgs(c.epoch, c.rsyncPath, c.flush), c.want));
  }
  test("a dry run (the deletions' count) never asks for a flush, whatever the settings say", () => {
    const s: RsyncSettings = { ioTimeoutS: 30, shell: SHELL, excludes: [], epoch: 2, rsyncPath: undefined, flush: true };
    const ends = { from: '/ws/', to: 'u@h:/ws/' };
    assert.ok(rulesArgs(s, ends).includes('--rsync-path=STANDBY_EPOCH=2 STANDBY_FLUSH=1 rsync'));
    assert.ok(rulesArgs(s, ends, { dryRun: true }).includes('--rsync-path=STANDBY_EPOCH=2 rsync'));
    assert.ok(transferArgs(s, ends).includes('--rsync-path=STANDBY_EPOCH=2 STANDBY_FLUSH=1 rsync'));
    assert.ok(fullArgs(s, ends).includes('--rsync-path=STANDBY_EPOCH=2 STANDBY_FLUSH=1 rsync'));
    assert.ok(verifyArgs(s, ends).includes('--rsync-path=STANDBY_EPOCH=2 rsync'), 'verify writes nothing');
  });
});

/** The settings combinations the agent meets, with the base options each must give. */
const SETTINGS: { name: string; s: RsyncSettings; base: string[] }[] = [
  {
    name: 'no excludes, no proxy',
    s: { ioTimeoutS: 30, shell: SHELL, excludes: [], epoch: undefined, rsyncPath: undefined },
    base: ['-a', '--delay-updates', '--timeout=30', '--stats', '-e', SHELL],
  },
  {
    name: 'excludes, no proxy',
    s: { ioTimeoutS: 30, shell: SHELL, excludes: ['node_modules/', '*.pyc', '/.cache'], epoch: undefined, rsyncPath: undefined },
    base: ['-a', '--delay-updates', '--timeout=30', '--stats', '-e', SHELL, '--exclude=node_modules/', '--exclude=*.pyc', '--exclude=/.cache'],
  },
  {
    name: 'excludes under a proxy (epoch 5), other timeout',
    s: { ioTimeoutS: 120, shell: SHELL, excludes: ['.git/'], epoch: 5, rsyncPath: undefined },
    base: ['-a', '--delay-updates', '--timeout=120', '--stats', '-e', SHELL, '--exclude=.git/', '--rsync-path=STANDBY_EPOCH=5 rsync'],
  },
  {
    name: 'a configured rsyncPath, no proxy',
    s: { ioTimeoutS: 30, shell: 'ssh', excludes: [], epoch: undefined, rsyncPath: '/usr/local/bin/rsync' },
    base: ['-a', '--delay-updates', '--timeout=30', '--stats', '-e', 'ssh', '--rsync-path=/usr/local/bin/rsync'],
  },
  {
    name: 'a configured rsyncPath under a proxy',
    s: { ioTimeoutS: 30, shell: 'ssh', excludes: ['tmp/'], epoch: 3, rsyncPath: '/usr/local/bin/rsync' },
    base: ['-a', '--delay-updates', '--timeout=30', '--stats', '-e', 'ssh', '--exclude=tmp/', '--rsync-path=STANDBY_EPOCH=3 /usr/local/bin/rsync'],
  },
];

/** Each kind of run: its options after the base ones, and what follows the two ends. */
const KINDS: { name: string; args: (s: RsyncSettings) => string[]; own: string[]; after: string[]; wholePassAtTheEnd?: false; inplace?: true }[] = [
  {
    name: 'transfer (--files-from on stdin)',
    args: (s) => transferArgs(s, ENDS),
    own: ['-r', '--files-from=-', '--from0', '--force', '--delete', '--ignore-times'],
    after: [],
  },
  {
    name: 'filter rules on stdin',
    args: (s) => rulesArgs(s, ENDS),
    own: ['--delete', '--force', '--ignore-times', '--from0', '--include-from=-', '--exclude=*'],
    after: [],
  },
  {
    name: 'filter rules, dry run (counting a folder deletion)',
    args: (s) => rulesArgs(s, ENDS, { dryRun: true }),
    own: ['--delete', '--force', '--ignore-times', '--from0', '--include-from=-', '--exclude=*'],
    after: ['--dry-run'],
  },
  {
    name: 'full reconcile',
    args: (s) => fullArgs(s, ENDS),
    own: ['--delete', '--delete-delay'],
    after: [],
    wholePassAtTheEnd: false,
  },
  {
    name: 'full reconcile, deletions counted first (guarded)',
    args: (s) => fullArgs(s, ENDS, { countDeletionsFirst: true }),
    own: ['--delete', '--delete-delay'],
    after: ['--max-delete=0'],
    wholePassAtTheEnd: false,
  },
  {
    name: 'full reconcile into a folder that held nothing (deletions counted first)',
    args: (s) => fullArgs(s, ENDS, { countDeletionsFirst: true, inplace: true }),
    own: ['--delete', '--delete-delay', '--inplace'],
    after: ['--max-delete=0'],
    wholePassAtTheEnd: false,
    inplace: true,
  },
];

describe('the runs of a pass: base options, the run\'s own, the two ends', () => {
  for (const set of SETTINGS) {
    for (const kind of KINDS) {
      test(`${kind.name}; ${set.name}`, () => {
        const base = kind.wholePassAtTheEnd === false ? set.base.filter((a) => a !== '--delay-updates') : set.base;
        assert.deepEqual(kind.args(set.s), [...base, ...kind.own, ENDS.from, ENDS.to, ...kind.after]);
      });
    }
    test(`baseArgs; ${set.name}`, () => assert.deepEqual(baseArgs(set.s), set.base));
  }
});

describe('what the argument order protects', () => {
  const s: RsyncSettings = { ioTimeoutS: 30, shell: SHELL, excludes: ['secret/'], epoch: 9, rsyncPath: undefined };
  test("the user's excludes come before a rules run's includes, so a listed path they exclude stays protected", () => {
    const args = rulesArgs(s, ENDS);
    assert.ok(args.indexOf('--exclude=secret/') < args.indexOf('--include-from=-'));
    assert.equal(args.indexOf('--exclude=*'), args.indexOf('--include-from=-') + 1, 'everything not named on stdin is left alone');
  });
  test('no run of a pass writes in place (but a full pass into a folder that held nothing), keeps partial files or compresses', () => {
    for (const kind of KINDS) {
      const args = kind.args(s);
      assert.equal(args.includes('--inplace'), kind.inplace === true, `${kind.name}: --inplace`);
      for (const banned of ['--partial', '--append', '-z', '--compress', '--mkpath', '--delete-missing-args']) {
        assert.ok(!args.includes(banned), `${kind.name} has ${banned}`);
      }
      // an incremental pass lands together at its end; a full pass each file whole, at twice the speed
      assert.equal(args.includes('--delay-updates'), kind.wholePassAtTheEnd !== false, `${kind.name}: --delay-updates`);
    }
  });
  test("a root's include list comes after the user's excludes (which stay protected) and before a rules run's own rules, and ends with everything else left out", () => {
    const args = rulesArgs({ ...s, include: ['settings.json', 'snippets/'] }, ENDS);
    const at = (a: string) => args.indexOf(a);
    assert.deepEqual(args.slice(at('--filter=+ /settings.json'), at('--filter=- *') + 1), ['--filter=+ /settings.json', '--filter=+ /snippets/***', '--filter=- *']);
    assert.ok(at('--exclude=secret/') < at('--filter=+ /settings.json'));
    assert.ok(at('--filter=- *') < at('--include-from=-'));
    assert.ok(verifyArgs({ ...s, include: ['tasks.json'] }, ENDS).includes('--filter=+ /tasks.json'), 'verify compares only the same paths');
    assert.ok(!baseArgs(s).some((a) => a.startsWith('--filter')), 'a root without a list: no filter');
  });
  test('a guarded full reconcile deletes nothing on its first run', () => {
    assert.ok(fullArgs(s, ENDS, { countDeletionsFirst: true }).includes('--max-delete=0'));
    assert.ok(!fullArgs(s, ENDS).some((a) => a.startsWith('--max-delete')));
  });
});

describe('verifyArgs: a checksum comparison that writes nothing', () => {
  const cases: { name: string; s: Omit<RsyncSettings, 'ioTimeoutS'>; want: string[] }[] = [
    {
      name: 'no proxy, no excludes',
      s: { shell: 'ssh', excludes: [], epoch: undefined, rsyncPath: undefined },
      want: ['-a', '--dry-run', '--checksum', '--delete', '--itemize-changes', '-e', 'ssh', ENDS.from, ENDS.to],
    },
    {
      name: 'excludes and the epoch the proxy named',
      s: { shell: SHELL, excludes: ['node_modules/'], epoch: 4, rsyncPath: undefined },
      want: ['-a', '--dry-run', '--checksum', '--delete', '--itemize-changes', '-e', SHELL, '--exclude=node_modules/', '--rsync-path=STANDBY_EPOCH=4 rsync', ENDS.from, ENDS.to],
    },
    {
      name: 'a configured rsyncPath, no epoch',
      s: { shell: 'ssh', excludes: [], epoch: undefined, rsyncPath: '/opt/rsync' },
      want: ['-a', '--dry-run', '--checksum', '--delete', '--itemize-changes', '-e', 'ssh', '--rsync-path=/opt/rsync', ENDS.from, ENDS.to],
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(verifyArgs(c.s, ENDS), c.want));
  }
});
