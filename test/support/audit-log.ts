import { existsSync, readFileSync } from 'node:fs';
import { waitFor } from '@portcullis/testing';

export interface AuditLine {
  event: 'flow.start' | 'flow.end';
  flowId: string;
  sni: string;
  verdict: 'allow' | 'deny';
  reason: string;
  ruleId: string;
  bytesUp?: number;
  bytesDown?: number;
  closeReason?: string;
  [k: string]: unknown;
}

export function readAudit(path: string): AuditLine[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8').split('\n');
  // the last element is '' when the file ends with a newline, else a line still being written
  lines.pop();
  return lines.filter(Boolean).map((l) => JSON.parse(l) as AuditLine);
}

/** Waits until the audit log holds at least `n` lines that satisfy `pred`. */
export async function waitForAudit(path: string, pred: (l: AuditLine) => boolean, n: number, timeoutMs = 10_000): Promise<AuditLine[]> {
  await waitFor(() => readAudit(path).filter(pred).length >= n, timeoutMs, 50);
  return readAudit(path).filter(pred);
}
