// The shape every benchmark returns, so bench/run.ts can print and compare them. Types only; imports nothing.
// A value is always "higher is better" or says otherwise in its unit (e.g. "ms"); note holds the baseline.

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  note?: string;
}
