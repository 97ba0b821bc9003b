// Runs a command handler: a StandbyError becomes one clear line on stderr and
// its exit code; anything else is a bug and shows its stack.
import { StandbyError } from '../../core/errors.ts';
import { formatRefusal } from '../../protocol/receiver.ts';

/** `label` (e.g. "install") names the command in the error line and adds the error's code, for commands run by scripts (and writers reading the receiver's refusals: protocol/receiver.ts). */
export async function runCommand(body: () => Promise<number | void>, label?: string): Promise<void> {
  const who = label ? `standby ${label}` : 'standby';
  try {
    const code = await body();
    if (typeof code === 'number') process.exitCode = code;
  } catch (err) {
    if (err instanceof StandbyError) {
      process.stderr.write(`${label ? formatRefusal(who, err.message, err.code) : `${who}: ${err.message}`}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`${who}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    }
  }
}
