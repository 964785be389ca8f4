// Holds the compiled profile of the version the store says is active, and follows changes.
import { createHash } from 'node:crypto';
import { compileProfile, parseProfileText } from '@portcullis/fqdn-policy';
import type { CompiledPolicy } from '@portcullis/fqdn-policy';
import type { Logger } from '@portcullis/platform';
import type { PolicyStore, StoredPolicy } from './store';

export interface ActiveVersion {
  version: number;
  stored: StoredPolicy;
  compiled: CompiledPolicy;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class ActivePolicy {
  private active: ActiveVersion | undefined;
  private readonly listeners = new Set<(v: ActiveVersion) => void>();
  private loading: Promise<void> = Promise.resolve();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly store: PolicyStore,
    private readonly log: Logger,
  ) {}

  get current(): ActiveVersion | undefined {
    return this.active;
  }

  onChange(fn: (v: ActiveVersion) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.store.subscribe((version) => this.follow(version));
    await this.refresh();
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** Loads the store's current version if it is newer than ours. */
  refresh(): Promise<void> {
    this.loading = this.loading.then(async () => {
      const stored = await this.store.current();
      if (stored) this.install(stored);
    });
    return this.loading;
  }

  private follow(version: number): void {
    if (this.active && version <= this.active.version) return;
    this.refresh().catch((err: unknown) => this.log.error({ err, version }, 'policy reload failed'));
  }

  private install(stored: StoredPolicy): void {
    if (this.active && stored.version <= this.active.version) return;
    const parsed = parseProfileText(stored.content);
    if (!parsed.ok) {
      // Only validated profiles are ever stored; this means someone wrote Redis by hand.
      this.log.error({ version: stored.version, problems: parsed.problems }, 'stored policy is invalid; keeping the previous version');
      return;
    }
    const started = performance.now();
    const compiled = compileProfile(parsed.profile);
    this.active = { version: stored.version, stored, compiled };
    this.log.info({ policyVersion: stored.version, profile: stored.profileName, names: compiled.nameCount, compileMs: Math.round(performance.now() - started) }, 'policy.active');
    for (const fn of this.listeners) fn(this.active);
  }
}
