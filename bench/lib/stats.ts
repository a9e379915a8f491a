// Order statistics for the report.

/** The q-quantile of ascending-sorted values (nearest rank); undefined for none. */
export function percentile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values: readonly (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b);
  if (defined.length === 0) return undefined;
  const mid = defined.length >> 1;
  return defined.length % 2 ? defined[mid] : (defined[mid - 1]! + defined[mid]!) / 2;
}

export function range(values: readonly (number | undefined)[]): [number, number] | undefined {
  const defined = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return defined.length ? [Math.min(...defined), Math.max(...defined)] : undefined;
}
