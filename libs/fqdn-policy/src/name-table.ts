// The compiled fqdns: one open-addressing hash table keyed by a name, holding for each key the rules
// that match it exactly ("self": `x` and `.x`) and the rules that match its strict subdomains ("sub":
// `*.x` and `.x`). The hash is FNV-1a taken from the LAST character towards the first, so one pass
// over a name yields the hash of each of its label suffixes (c.com, b.c.com, a.b.c.com) without
// slicing a string: per-decision cost is O(length of the name), whatever the number of names.
// Keys are always compared in full after a hash match; a hash collision can never make a name match.

export const FNV_OFFSET = 0x811c9dc5 | 0;
export const FNV_PRIME = 0x01000193;

/** The slot a hash starts probing at (murmur3 finaliser, so similar names spread out). */
export function slotOf(h: number, mask: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h & mask;
}

/** The prefilter bit of a hash: its high bits, independent of the low bits slotOf mostly uses. */
export function filterBit(h: number, filterMask: number): number {
  return (Math.imul(h, 0x9e3779b1) >>> 7) & filterMask;
}

export function hashName(name: string): number {
  let h = FNV_OFFSET;
  for (let i = name.length - 1; i >= 0; i--) h = Math.imul(h ^ name.charCodeAt(i), FNV_PRIME);
  return h;
}

/** Slot layout: [hash, keyIndex + 1 (0 = empty), self, sub]. self/sub: -1 none, >= 0 one rule, <= -2 list (-v - 2). */
export const SLOT_WIDTH = 4;
export const NO_RULE = -1;

export interface NameTable {
  /**
   * One bit per (hash of a) key, 8 bits per key: a cache-sized prefilter so that probing the suffixes
   * of a name that are not keys (most of them: "example", "corp.example") rarely touches the big table.
   */
  filter: Int32Array;
  filterMask: number;
  slots: Int32Array;
  keys: string[];
  /** Slot-count mask (slots.length / SLOT_WIDTH - 1). */
  mask: number;
  /** Rule-index lists, ascending, for keys that more than one rule names. */
  lists: Int32Array[];
}

export class NameTableBuilder {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly keys: string[] = [];
  private readonly lists: number[][] = [];

  /** `capacity`: an upper bound on the number of distinct keys. */
  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.slots = new Int32Array(size * SLOT_WIDTH);
    this.mask = size - 1;
  }

  /** Adds `rule` to the self (exact) and/or sub (subdomains) list of `name`. Rules must be added in ascending order. */
  add(name: string, rule: number, self: boolean, sub: boolean): void {
    const h = hashName(name);
    const { slots } = this;
    let slot = slotOf(h, this.mask);
    for (;;) {
      const at = slot * SLOT_WIDTH;
      const k = slots[at + 1] ?? 0;
      if (k === 0) {
        this.keys.push(name);
        slots[at] = h;
        slots[at + 1] = this.keys.length;
        slots[at + 2] = NO_RULE;
        slots[at + 3] = NO_RULE;
        if (self) this.append(at + 2, rule);
        if (sub) this.append(at + 3, rule);
        return;
      }
      if (slots[at] === h && this.keys[k - 1] === name) {
        if (self) this.append(at + 2, rule);
        if (sub) this.append(at + 3, rule);
        return;
      }
      slot = (slot + 1) & this.mask;
    }
  }

  private append(at: number, rule: number): void {
    const v = this.slots[at] ?? NO_RULE;
    if (v === NO_RULE) this.slots[at] = rule;
    else if (v >= 0) {
      if (v !== rule) {
        this.lists.push([v, rule]);
        this.slots[at] = -(this.lists.length - 1) - 2;
      }
    } else {
      const list = this.lists[-v - 2] as number[];
      if (list[list.length - 1] !== rule) list.push(rule);
    }
  }

  build(): NameTable {
    let bits = 1024;
    while (bits < this.keys.length * 8) bits *= 2;
    const filter = new Int32Array(bits / 32);
    const filterMask = bits - 1;
    for (let at = 0; at < this.slots.length; at += SLOT_WIDTH) {
      if (this.slots[at + 1] === 0) continue;
      const b = filterBit(this.slots[at] ?? 0, filterMask);
      filter[b >>> 5] = (filter[b >>> 5] ?? 0) | (1 << (b & 31));
    }
    return { filter, filterMask, slots: this.slots, keys: this.keys, mask: this.mask, lists: this.lists.map((l) => Int32Array.from(l)) };
  }
}
