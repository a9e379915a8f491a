// nginx allow/deny (https://nginx.org/en/docs/http/ngx_http_access_module.html): the rules are read in order and the
// first that matches the client address decides; an address no rule matches is allowed.
import net from 'node:net';
import type { IpRule } from '../config/model.ts';

/** One BlockList per rule, built the first time a rule list is used (the configuration is frozen plain data). */
const compiled = new WeakMap<readonly IpRule[], { allow: boolean; list: net.BlockList | 'all' }[]>();

export function ipAllowed(rules: readonly IpRule[] | undefined, address: string): boolean {
  if (!rules || rules.length === 0) return true;
  let lists = compiled.get(rules);
  if (!lists) {
    lists = rules.map((rule) => {
      if (rule.range === 'all') return { allow: rule.allow, list: 'all' as const };
      const list = new net.BlockList();
      list.addSubnet(rule.range.address, rule.range.bits, rule.range.family);
      return { allow: rule.allow, list };
    });
    compiled.set(rules, lists);
  }
  // An IPv4 client on a dual-stack socket is ::ffff:a.b.c.d; IPv4 rules must match it.
  const plain = address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
  const family = net.isIPv6(plain) ? 'ipv6' : 'ipv4';
  for (const { allow, list } of lists)
    if (list === 'all' || (net.isIP(plain) && list.check(plain, family))) return allow;
  return true;
}
