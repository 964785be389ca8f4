// Tiny argv parser: positionals plus --flag value / --flag (boolean) options.
export interface Args {
  positionals: string[];
  options: Record<string, string | true>;
}

const BOOLEAN = new Set(['dry-run', 'json', 'help']);

export function parseArgs(argv: string[]): Args {
  const positionals: string[] = [];
  const options: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a.startsWith('--')) {
      const [k, inline] = a.slice(2).split('=', 2) as [string, string | undefined];
      if (inline !== undefined) options[k] = inline;
      else if (BOOLEAN.has(k)) options[k] = true;
      else {
        const v = argv[i + 1];
        if (v === undefined || v.startsWith('--')) throw new UsageError(`--${k} needs a value`);
        options[k] = v;
        i++;
      }
    } else positionals.push(a);
  }
  return { positionals, options };
}

export class UsageError extends Error {
  readonly code = 'PORTCULLIS_ERR_USAGE';
}

export function opt(args: Args, name: string): string | undefined {
  const v = args.options[name];
  return typeof v === 'string' ? v : undefined;
}
