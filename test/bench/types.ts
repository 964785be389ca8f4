export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  /** value relative to the scenario's baseline measured in the same run */
  ratio?: number;
  target?: string;
  /** smallest and largest value across the rounds (when `value` is their median) */
  min?: number;
  max?: number;
  /** whether `target` is met (absent: no target, or not decidable) */
  met?: boolean;
}

export interface BenchScenario {
  name: string;
  run(): Promise<{ rows: BenchRow[]; notes?: string[] }>;
}
