// installProgram: the program's files land in <programDir>/<version>-<stamp>,
// hard-linked where the source file is the installing user's own and no one
// else may write it (no copy of the 120 MB Node binary per install: a local
// provider's hosts each install one), copied otherwise, so that nobody who may
// write a source file can change what root runs.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { layoutOf } from '../../installer/layout.ts';
import { installProgram } from '../../installer/program.ts';

test("a source file that is the installer's own is linked; one others may write is copied; both read the same", (t) => {
  const top = mkdtempSync(join(tmpdir(), 'standby-program-'));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const source = join(top, 'source');
  mkdirSync(join(source, 'node_modules'), { recursive: true });
  mkdirSync(join(source, 'core'));
  writeFileSync(join(source, 'package.json'), JSON.stringify({ version: '9.8.7' }));
  writeFileSync(join(source, 'package-lock.json'), JSON.stringify({ packages: { '': {} } }));
  writeFileSync(join(source, 'core', 'own.ts'), 'export const own = 1;\n', { mode: 0o644 });
  writeFileSync(join(source, 'core', 'shared.ts'), 'export const shared = 2;\n');
  chmodSync(join(source, 'core', 'shared.ts'), 0o666); // anyone may write it

  const installed = installProgram(layoutOf(join(top, 'root')), source, new Date('2026-12-05T09:00:00Z'));
  assert.equal(installed.dir, join(top, 'root/opt/standby/9.8.7-20261205T090000'));
  const own = join(installed.dir, 'core/own.ts');
  const shared = join(installed.dir, 'core/shared.ts');
  assert.equal(readFileSync(own, 'utf8'), 'export const own = 1;\n');
  assert.equal(readFileSync(shared, 'utf8'), 'export const shared = 2;\n');
  assert.equal(statSync(own).ino, statSync(join(source, 'core/own.ts')).ino, 'linked: the same file');
  assert.notEqual(statSync(shared).ino, statSync(join(source, 'core/shared.ts')).ino, 'copied: a writer of the source cannot change the installed program');
  writeFileSync(join(source, 'core', 'shared.ts'), 'changed by someone else\n');
  assert.equal(readFileSync(shared, 'utf8'), 'export const shared = 2;\n');
});
