// The cipher the agent's ssh asks for first: AES-GCM where the CPU has AES
// instructions and ssh has it, ssh's own order otherwise; checked on real
// /proc/cpuinfo lines, then with the real ssh against a real sshd, where the
// server's own limits still decide and a user's Ciphers option still wins.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { AES_FIRST, cipherArgs, cipherOrder, cpuHasAes } from '../../agent/ssh-ciphers.ts';
import { sshArgs, destination } from '../../agent/ssh.ts';
import { startSshd, type Sshd } from '../../proxy/provision/loopback-sshd.ts';
import type { StandbyTarget } from '../../config/agent.ts';

const run = promisify(execFile);

const X86 = 'processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme sse sse2 pclmulqdq ssse3 aes avx avx2 vaes\n';
const X86_NO_AES = 'processor\t: 0\nflags\t\t: fpu vme sse sse2 ssse3 avx vaesx\n';
const ARM = 'processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n';
const ARM_NO_AES = 'processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n';
const OPENSSH_9 = ['3des-cbc', 'aes128-cbc', 'aes192-cbc', 'aes256-cbc', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr', 'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'chacha20-poly1305@openssh.com'];
const NO_OPENSSL = ['aes128-ctr', 'aes192-ctr', 'aes256-ctr', 'chacha20-poly1305@openssh.com'];

describe('cpuHasAes', () => {
  const cases: { name: string; cpuinfo: string; want: boolean }[] = [
    { name: 'x86 with aes', cpuinfo: X86, want: true },
    { name: 'x86 without (vaes-like words do not count)', cpuinfo: X86_NO_AES, want: false },
    { name: 'Arm with the crypto extension', cpuinfo: ARM, want: true },
    { name: 'Arm without', cpuinfo: ARM_NO_AES, want: false },
    { name: 'aes last on the line', cpuinfo: 'flags\t\t: sse2 aes\n', want: true },
    { name: 'aes outside the flags line', cpuinfo: 'model name\t: aes box\nflags\t\t: sse2\n', want: false },
    { name: 'nothing readable', cpuinfo: '', want: false },
  ];
  for (const c of cases) test(c.name, () => assert.equal(cpuHasAes(c.cpuinfo), c.want));
});

describe('cipherOrder', () => {
  test('AES-GCM first, then the rest of OpenSSH\'s default set', () => {
    assert.equal(cipherOrder(X86, OPENSSH_9), AES_FIRST.join(','));
    assert.equal(cipherOrder(ARM, OPENSSH_9), AES_FIRST.join(','));
  });
  test('no AES instructions: ssh\'s own order (chacha20 is the faster one there)', () => {
    assert.equal(cipherOrder(X86_NO_AES, OPENSSH_9), undefined);
    assert.equal(cipherOrder(ARM_NO_AES, OPENSSH_9), undefined);
  });
  test('an ssh without AES-GCM: its own order', () => assert.equal(cipherOrder(X86, NO_OPENSSL), undefined));
  test('only names this ssh lists', () => {
    assert.equal(cipherOrder(X86, ['aes128-gcm@openssh.com', 'chacha20-poly1305@openssh.com', 'aes128-ctr']), 'aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr');
  });
});

/** The cipher ssh negotiated, client to server, from its -v output. */
async function negotiated(args: string[], dest: string): Promise<string> {
  const { stderr } = await run('ssh', ['-v', ...args, dest, 'true'], { timeout: 20_000 });
  const m = /kex: client->server cipher: (\S+)/.exec(stderr);
  assert.ok(m, `no cipher in ssh -v's output: ${stderr.slice(-500)}`);
  return m[1]!;
}

function targetOf(sshd: Sshd, own: string[] = []): StandbyTarget {
  return { host: sshd.host, port: sshd.port, user: sshd.user, path: '/', identityFile: sshd.identityFile, sshOptions: [...sshd.sshOptions, ...own] };
}

describe('the agent\'s ssh against a real sshd', () => {
  const hasAes = cpuHasAes(readFileSync('/proc/cpuinfo', 'utf8'));

  test('asks for AES-GCM where this CPU has AES instructions, ssh\'s first choice otherwise', async (t) => {
    const sshd = await startSshd();
    t.after(() => sshd.close());
    const target = targetOf(sshd);
    assert.equal(cipherArgs().length > 0, hasAes);
    assert.equal(await negotiated(sshArgs(target), destination(target)), hasAes ? 'aes128-gcm@openssh.com' : 'chacha20-poly1305@openssh.com');
  });

  test('a server that allows only chacha20 still gets a connection', async (t) => {
    const sshd = await startSshd({ config: ['Ciphers chacha20-poly1305@openssh.com'] });
    t.after(() => sshd.close());
    const target = targetOf(sshd);
    assert.equal(await negotiated(sshArgs(target), destination(target)), 'chacha20-poly1305@openssh.com');
  });

  test('a Ciphers option of the user\'s (standby.sshOptions) wins', async (t) => {
    const sshd = await startSshd();
    t.after(() => sshd.close());
    for (const own of [['-o', 'Ciphers=aes256-ctr'], ['-c', 'aes256-ctr']]) {
      const target = targetOf(sshd, own);
      assert.equal(await negotiated(sshArgs(target), destination(target)), 'aes256-ctr', own.join(' '));
    }
  });
});
