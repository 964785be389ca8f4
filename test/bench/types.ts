export interface BenchRow {
  metric: string;
  value: number;
  unit: string;
  /** value relative to the scenario's baseline measured in the same run */
  ratio?: number;
  target?: string;
}

export interface BenchScenario {
  name: string;
  run(): Promise<{ rows: BenchRow[]; notes?: string[] }>;
}
