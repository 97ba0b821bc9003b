// Runs a command handler: a StandbyError becomes one clear line on stderr and
// its exit code; anything else is a bug and shows its stack.
import { StandbyError } from '../../core/errors.ts';

/** `label` (e.g. "install") names the command in the error line and adds the error's code, for commands run by scripts. */
export async function runCommand(body: () => Promise<number | void>, label?: string): Promise<void> {
  const who = label ? `standby ${label}` : 'standby';
  try {
    const code = await body();
    if (typeof code === 'number') process.exitCode = code;
  } catch (err) {
    if (err instanceof StandbyError) {
      process.stderr.write(`${who}: ${err.message}${label ? ` [${err.code}]` : ''}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`${who}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    }
  }
}
