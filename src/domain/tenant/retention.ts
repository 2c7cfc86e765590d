/**
 * The retention period that applies to a tenant: its own choice within what its tier allows now (a
 * lower tier since it chose bounds it); null when neither limits it (nothing is ever pruned).
 */
export function effectiveRetentionDays(tenantDays: number | null, tierMaxDays: number | null): number | null {
  if (tenantDays === null) return tierMaxDays;
  return tierMaxDays === null ? tenantDays : Math.min(tenantDays, tierMaxDays);
}
