// A bounded memory of the most recently written event keys, so a flow event delivered twice is
// written once. Two generations of a Set: when the young one is full the old one is dropped whole,
// so memory stays between capacity/2 and capacity keys and each check or insert is O(1).

export class RecentKeys {
  private young = new Set<string>();
  private old = new Set<string>();
  private readonly half: number;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 2) throw new Error(`RecentKeys capacity must be an integer >= 2, got ${capacity}`);
    this.half = Math.floor(capacity / 2);
  }

  has(key: string): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  add(key: string): void {
    if (this.young.has(key)) return;
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Set();
    }
    this.young.add(key);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}
