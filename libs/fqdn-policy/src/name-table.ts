// The compiled fqdns: one open-addressing hash table keyed by a name, holding for each key the rules
// that match it exactly ("self": `x` and `.x`) and the rules that match its strict subdomains ("sub":
// `*.x` and `.x`). The hash is FNV-1a taken from the LAST character towards the first, so one pass
// over a name yields the hash of each of its label suffixes (c.com, b.c.com, a.b.c.com) without
// slicing a string: per-decision cost is O(length of the name), whatever the number of names.
// Keys are always compared in full after a hash match; a hash collision can never make a name match.
// The keys live packed in one byte buffer rather than as strings: with a million names a string
// compare costs a cache miss for the array of keys, one for the string and often one for the
// string it was sliced from, while a packed key is one miss, next to its own length.

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

/** The prefilter word of a hash: the high bits of a multiply, independent of the low bits slotOf mostly uses. */
export function filterWord(h: number, filterShift: number): number {
  return Math.imul(h, 0x9e3779b1) >>> filterShift;
}

/** The two prefilter bits of a hash within its word, from a second multiply (a blocked Bloom filter: one cache line per probe). */
export function filterBits(h: number): number {
  const g = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  return (1 << (g >>> 27)) | (1 << ((g >>> 22) & 31));
}

export function hashName(name: string): number {
  let h = FNV_OFFSET;
  for (let i = name.length - 1; i >= 0; i--) h = Math.imul(h ^ name.charCodeAt(i), FNV_PRIME);
  return h;
}

/** Slot layout: [hash, key offset in `chars` + 1 (0 = empty), self, sub]. self/sub: -1 none, >= 0 one rule, <= -2 list (-v - 2). */
export const SLOT_WIDTH = 4;
export const NO_RULE = -1;
/** Keys are normalised names (at most 253 characters), so one length byte always holds a length. */
const MAX_KEY = 255;

/** Is the key stored at `off` in `chars` (a length byte, then the characters) equal to `name.slice(from)`? */
export function keyEquals(chars: Uint8Array, off: number, name: string, from: number): boolean {
  const n = name.length - from;
  if (chars[off] !== n) return false;
  for (let j = 0; j < n; j++) if (chars[off + 1 + j] !== name.charCodeAt(from + j)) return false;
  return true;
}

export interface NameTable {
  /**
   * Two bits in one 32-bit word per (hash of a) key, 8 bits per key: a cache-sized prefilter so that
   * probing the suffixes of a name that are not keys (most of them: "example", "corp.example") rarely
   * touches the big table (about 5% of them do, against 12% with one bit per key).
   */
  filter: Int32Array;
  /** filterWord's shift: 32 - log2(filter.length). */
  filterShift: number;
  slots: Int32Array;
  /** Every key once, packed: a length byte, then its ASCII characters. */
  chars: Uint8Array;
  /** Slot-count mask (slots.length / SLOT_WIDTH - 1). */
  mask: number;
  /** Rule-index lists, ascending, for keys that more than one rule names. */
  lists: Int32Array[];
  /** The number of distinct keys. */
  size: number;
}

export class NameTableBuilder {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private chars: Uint8Array;
  private used = 0;
  private size = 0;
  private readonly lists: number[][] = [];

  /** `capacity`: an upper bound on the number of distinct keys. */
  constructor(capacity: number) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.slots = new Int32Array(size * SLOT_WIDTH);
    this.mask = size - 1;
    this.chars = new Uint8Array(Math.min(Math.max(1024, capacity * 32), 1 << 30));
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
        slots[at] = h;
        slots[at + 1] = this.store(name) + 1;
        slots[at + 2] = NO_RULE;
        slots[at + 3] = NO_RULE;
        this.size++;
        if (self) this.append(at + 2, rule);
        if (sub) this.append(at + 3, rule);
        return;
      }
      if (slots[at] === h && keyEquals(this.chars, k - 1, name, 0)) {
        if (self) this.append(at + 2, rule);
        if (sub) this.append(at + 3, rule);
        return;
      }
      slot = (slot + 1) & this.mask;
    }
  }

  /** Appends `name` to the packed keys; its offset. */
  private store(name: string): number {
    const n = name.length;
    // a bug, not a profile problem: keys come from normalised patterns, which are short and ASCII
    if (n > MAX_KEY) throw new Error(`name table key of ${n} characters is not a normalised name`);
    if (this.used + 1 + n > this.chars.length) {
      const grown = new Uint8Array(Math.max(this.chars.length * 2, this.used + 1 + n));
      grown.set(this.chars.subarray(0, this.used));
      this.chars = grown;
    }
    const off = this.used;
    this.chars[off] = n;
    for (let j = 0; j < n; j++) {
      const c = name.charCodeAt(j);
      if (c > 0x7f) throw new Error(`name table key ${JSON.stringify(name.slice(0, 64))} is not a normalised (ASCII) name`);
      this.chars[off + 1 + j] = c;
    }
    this.used += 1 + n;
    return off;
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
    let words = 32;
    let filterShift = 27;
    while (words * 32 < this.size * 8 && filterShift > 5) {
      words *= 2;
      filterShift--;
    }
    const filter = new Int32Array(words);
    for (let at = 0; at < this.slots.length; at += SLOT_WIDTH) {
      if (this.slots[at + 1] === 0) continue;
      const h = this.slots[at] ?? 0;
      const w = filterWord(h, filterShift);
      filter[w] = (filter[w] ?? 0) | filterBits(h);
    }
    const chars = this.chars.slice(0, this.used);
    return { filter, filterShift, slots: this.slots, chars, mask: this.mask, lists: this.lists.map((l) => Int32Array.from(l)), size: this.size };
  }
}
