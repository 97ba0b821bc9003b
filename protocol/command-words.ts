// Splits the command an ssh client asked for (SSH_ORIGINAL_COMMAND) into words
// the way a POSIX shell would for the quoting rsync and the agent use, without
// running a shell. rsync (3.2.4+) escapes special characters in the arguments
// it sends with a backslash (`/ws/a\ b/`, `d\'q`) and passes its --rsync-path
// as is; the agent's `sync -f` quotes with single quotes (`'/ws/a b'`).
// What a shell would expand or interpret (`;`, `|`, `$x`, a backquote, a
// leading `#`, a line break) is refused rather than given a meaning of our own.

export class CommandWordsError extends Error {
  override name = 'CommandWordsError';
}

/** Characters that mean something to a shell when unquoted: we refuse them rather than guess. */
const SHELL_SPECIAL = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`', '{', '}']);

export interface Word {
  text: string;
  /** how many leading characters came unquoted: a shell reads `~` and `NAME=` only there */
  bare: number;
}

export function splitCommand(command: string): Word[] {
  if (/[\n\r\0]/.test(command)) throw new CommandWordsError('the command holds a line break or a NUL byte');
  const words: Word[] = [];
  let text = '';
  let bare = 0;
  let quoted = false;
  let inWord = false;
  let i = 0;
  const end = (): void => {
    if (inWord) words.push({ text, bare });
    text = '';
    bare = 0;
    quoted = false;
    inWord = false;
  };
  while (i < command.length) {
    const c = command[i]!;
    if (c === ' ' || c === '\t') {
      end();
      i++;
    } else if (c === '\\') {
      if (i + 1 >= command.length) throw new CommandWordsError('the command ends with a lone backslash');
      text += command[i + 1];
      quoted = inWord = true;
      i += 2;
    } else if (c === "'") {
      const close = command.indexOf("'", i + 1);
      if (close < 0) throw new CommandWordsError('a single quote is not closed');
      text += command.slice(i + 1, close);
      quoted = inWord = true;
      i = close + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= command.length) throw new CommandWordsError('a double quote is not closed');
        const d = command[i]!;
        if (d === '"') break;
        if (d === '$' || d === '`') throw new CommandWordsError(`"${d}" inside double quotes would be expanded by a shell`);
        if (d === '\\' && i + 1 < command.length && '$`"\\'.includes(command[i + 1]!)) {
          text += command[i + 1];
          i += 2;
        } else {
          text += d;
          i++;
        }
      }
      quoted = inWord = true;
      i++;
    } else if (c === '#' && !inWord) {
      throw new CommandWordsError('an unquoted "#" starts a shell comment');
    } else if (SHELL_SPECIAL.has(c)) {
      throw new CommandWordsError(`an unquoted "${c}" means something to a shell`);
    } else {
      text += c;
      if (!quoted) bare++;
      inWord = true;
      i++;
    }
  }
  end();
  return words;
}

/** One argument quoted so that splitCommand (and a POSIX shell) reads it back as one word. */
export function quoteWord(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function quoteWords(args: readonly string[]): string {
  return args.map(quoteWord).join(' ');
}
