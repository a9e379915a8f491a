// Group overage: read the user's groups (transitively, with paging) from Microsoft Graph with the session's
// access token, as oauth2-proxy's entra-id provider does, but fail closed: a Graph failure denies the login with a
// clear error instead of continuing with no groups (oauth2-proxy logs and continues).
// https://learn.microsoft.com/graph/api/user-list-transitivememberof
import type { FetchLike } from '../oidc/client.ts';

const MAX_PAGES = 100;
const TIMEOUT_MS = 10_000;

export class GraphGroupsError extends Error {}

export async function graphGroups(fetchImpl: FetchLike, graphHost: string, accessToken: string): Promise<string[]> {
  const origin = `https://${graphHost}`;
  let next: string | undefined = `${origin}/v1.0/me/transitiveMemberOf?$select=id&$top=100`;
  const groups = new Set<string>();
  for (let page = 0; next; page++) {
    if (page >= MAX_PAGES) throw new GraphGroupsError(`more than ${MAX_PAGES} pages of groups`);
    // The token goes only to the Graph host: a nextLink elsewhere is refused.
    if (new URL(next).origin !== origin) throw new GraphGroupsError('Graph paging link points to another host');
    let response: Response;
    try {
      response = await fetchImpl(next, {
        headers: { authorization: `Bearer ${accessToken}`, consistencylevel: 'eventual', accept: 'application/json' },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (error) {
      throw new GraphGroupsError(`Microsoft Graph unreachable: ${(error as Error).message}`);
    }
    if (!response.ok) {
      const body = await response.text().catch(() => '');
      const code = /"code"\s*:\s*"([^"]+)"/.exec(body)?.[1];
      throw new GraphGroupsError(
        `Microsoft Graph answered ${response.status}${code ? ` (${code})` : ''}; the app needs the delegated User.Read permission`,
      );
    }
    const body = (await response.json()) as { value?: { id?: unknown }[]; '@odata.nextLink'?: string };
    for (const item of body.value ?? []) if (typeof item.id === 'string') groups.add(item.id);
    next = body['@odata.nextLink'];
  }
  return [...groups];
}
