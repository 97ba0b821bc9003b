// `standby receive`: the standby's forced command (authorized_keys
// `command="standby receive --root /standby/workspace",restrict`): rsync into
// the sync roots under the fencing epoch and its lock, and nothing else.
// `--fence <epoch>` fences the standby (by hand, or by the proxy).
// sshd starts it for every transfer and every flush, so it starts lean:
// bin/standby runs this file directly (not cli.ts, whose other commands take
// about 0.6 s to load) and its options are read with node:util's parseArgs
// (yargs, 80 ms more, only for --help). It writes only to stderr: stdout
// carries rsync's protocol.
import { parseArgs } from 'node:util';
import type { ArgumentsCamelCase, Argv, CommandModule, Options } from 'yargs';
import { StandbyError } from '../core/errors.ts';
import { runCommand } from './support/run-command.ts';

interface Args {
  root?: string[];
  stateDir: string;
  fence?: number;
  waitMs: number;
  lockWaitMs: number;
  allowFence?: boolean;
  host?: string;
  authorizedKeys?: string;
  revoke?: string[];
  authorize?: string;
  key?: string;
  conflicts?: string;
  conflictsOnly?: boolean;
}

/** The options, once for both readers (yargs in cli.ts, parseArgs when run directly). */
const OPTIONS = {
  root: { type: 'string', array: true, describe: 'a folder writes may go into (repeat for each sync root)' },
  'state-dir': { type: 'string', default: '/var/lib/standby/receive', describe: 'where the epoch, the lock and the live receivers are kept' },
  fence: { type: 'number', describe: 'fence the standby at this epoch: write it durably, wait for (or kill) older writers, print a JSON line' },
  'wait-ms': { type: 'number', default: 10_000, describe: 'how long a fence waits for older writers before killing them, in ms' },
  'lock-wait-ms': { type: 'number', default: 30_000, describe: 'how long a writer waits while a fence holds the lock, in ms' },
  'allow-fence': { type: 'boolean', describe: "accept `standby receive --fence <epoch>`, `--revoke <host>` and `--authorize <host> --key <key>` as the ssh command (the proxy's key only, never a writer's)" },
  host: { type: 'string', describe: "the host this writer key belongs to: its writes are refused once the host is revoked" },
  'authorized-keys': { type: 'string', describe: "with --allow-fence: the authorized_keys file the proxy's key adds and removes per-host writer entries in" },
  revoke: { type: 'string', array: true, describe: 'revoke this host (repeat for more): with --fence, under the same lock; alone, at the current epoch' },
  authorize: { type: 'string', describe: 'authorize a writer key for this host (with --key and --authorized-keys)' },
  key: { type: 'string', describe: 'the ssh public key line --authorize puts in' },
  conflicts: { type: 'string', describe: "with --authorize: the key may write only into <first root>.conflicts/<this name> (made now), for a fenced GPU's unsent changes" },
  'conflicts-only': { type: 'boolean', describe: "a writer entry for a conflicts folder (what --authorize --conflicts writes): any epoch, no lock, nothing deleted" },
} as const satisfies Record<string, Options>;

function wholeNumber(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    throw new StandbyError('STANDBY_ERR_CONFIG_INVALID', `--${name} ${value}: expected a whole number, 0 or more`, { [name]: value });
  }
}

async function run(args: Args): Promise<number> {
  wholeNumber('fence', args.fence);
  wholeNumber('wait-ms', args.waitMs);
  wholeNumber('lock-wait-ms', args.lockWaitMs);
  const { receive } = await import('../standby/receive.ts');
  if (args.fence !== undefined || args.revoke?.length || args.authorize !== undefined) {
    // run by hand or over an unrestricted admin key: the arguments are the request
    const { quoteWords } = await import('../protocol/command-words.ts');
    const { fenceRequestArgs, RECEIVER_FLAGS } = await import('../protocol/receiver.ts');
    const words = ['standby', 'receive', ...fenceRequestArgs(args.fence, { revoke: args.revoke ?? [] })];
    if (args.authorize !== undefined) words.push(RECEIVER_FLAGS.authorize, args.authorize);
    if (args.key !== undefined) words.push(RECEIVER_FLAGS.key, args.key);
    if (args.conflicts !== undefined) words.push(RECEIVER_FLAGS.conflicts, args.conflicts);
    return receive({ ...common(args), command: quoteWords(words), allowFence: true });
  }
  return receive({ ...common(args), command: process.env['SSH_ORIGINAL_COMMAND'], allowFence: args.allowFence === true });
}

function common(args: Args) {
  return {
    roots: args.root ?? [],
    stateDir: args.stateDir,
    lockWaitMs: args.lockWaitMs,
    fenceWaitMs: args.waitMs,
    out: (line: string) => process.stdout.write(line + '\n'),
    ...(args.host === undefined ? {} : { host: args.host }),
    ...(args.authorizedKeys === undefined ? {} : { authorizedKeys: args.authorizedKeys }),
    ...(args.conflictsOnly ? { conflictsOnly: true } : {}),
  };
}

export const receiveCommand: CommandModule<object, Args> = {
  command: 'receive',
  describe: "the standby's forced command: rsync into the sync roots under the fencing epoch; --fence <epoch> fences the standby",
  builder: (y: Argv) =>
    y
      .options(OPTIONS)
      .example('command="standby receive --root /standby/workspace",restrict ssh-ed25519 AAAA... agent@gpu', 'in ~/.ssh/authorized_keys on the standby')
      .example('$0 receive --fence 7', 'fence the standby by hand at epoch 7')
      .strict() as unknown as Argv<Args>,
  handler: (argv: ArgumentsCamelCase<Args>) => runCommand(() => run(argv), 'receive'),
};

/** Reads the options without yargs; undefined when --help was asked for. Usage mistakes exit 2. */
function readArgs(argv: string[]): Args | undefined {
  const camel = (name: string): string => name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  try {
    const { values: read } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean' },
        ...Object.fromEntries(Object.entries(OPTIONS).map(([name, o]) => [name, { type: o.type === 'boolean' ? 'boolean' : 'string', multiple: 'array' in o }])),
      },
    });
    const values = read as Record<string, unknown>;
    if (values['help']) return undefined;
    const out: Record<string, unknown> = {};
    for (const [name, o] of Object.entries(OPTIONS)) {
      const value = values[name] ?? ('default' in o ? o.default : undefined);
      if (o.type === 'number' && typeof value === 'string') {
        if (!/^\d+$/.test(value)) throw new Error(`--${name} ${value}: expected a whole number, 0 or more`);
        out[camel(name)] = Number(value);
      } else {
        out[camel(name)] = value;
      }
    }
    return out as unknown as Args;
  } catch (err) {
    process.stderr.write(`standby receive: ${(err as Error).message}; see standby receive --help\n`);
    process.exit(2);
  }
}

// bin/standby runs this file itself for `standby receive`
if (import.meta.main) {
  const args = readArgs(process.argv.slice(2));
  if (args) {
    await runCommand(() => run(args), 'receive');
  } else {
    const { default: yargs } = await import('yargs');
    await yargs(['receive', '--help']).scriptName('standby').command(receiveCommand).help().parseAsync();
  }
}
