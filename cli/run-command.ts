// Runs a command handler: a StandbyError becomes one clear line on stderr and
// its exit code; anything else is a bug and shows its stack.
import { StandbyError } from '../errors.ts';

export async function runCommand(body: () => Promise<number | void>): Promise<void> {
  try {
    const code = await body();
    if (typeof code === 'number') process.exitCode = code;
  } catch (err) {
    if (err instanceof StandbyError) {
      process.stderr.write(`standby: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      process.stderr.write(`standby: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 70;
    }
  }
}
