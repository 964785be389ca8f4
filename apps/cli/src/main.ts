// `portcullis`: run the services, manage policy.
import './instrument';
import { ConfigError, loadConfigFile } from '@portcullis/platform';
import { opt, parseArgs, UsageError } from './args';
import { auditCommand } from './audit-commands';
import { policyCommand } from './policy-commands';
import { runServices } from './run';

const USAGE = `usage:
  portcullis run all|edge|policy|audit --config FILE
  portcullis policy validate FILE
  portcullis policy apply FILE [--dry-run] [--comment TEXT]   (--config FILE | --server HOST:PORT --token TOKEN)
  portcullis policy diff FILE
  portcullis policy get [--version N]
  portcullis policy history [--limit N]
  portcullis policy rollback VERSION
  portcullis policy explain NAME [--port P] [--source IP]
  portcullis audit tail [--verdict allow|deny] [--sni PATTERN] [--count N] --config FILE
  portcullis audit top [--window 1h] [--limit N] --config FILE
  portcullis audit discover [--since 24h] [--log FILE] --config FILE`;

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [cmd, sub] = args.positionals;
  if (!cmd || args.options['help']) {
    console.log(USAGE);
    return cmd ? 0 : 2;
  }
  if (cmd === 'run') {
    const path = opt(args, 'config');
    if (!path) throw new UsageError('run needs --config FILE');
    await runServices(sub ?? 'all', loadConfigFile(path));
    return -1; // keep running until a signal
  }
  if (cmd === 'policy') return policyCommand(args);
  if (cmd === 'audit') return auditCommand(args);
  throw new UsageError(`unknown command "${cmd}"`);
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) console.error(`${err.message}\n\n${USAGE}`);
    else if (err instanceof ConfigError) console.error(err.message);
    else console.error(err instanceof Error ? `error: ${err.message}` : err);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
