import { Entitlement, Role } from "../../src/policy/principal";
import type { TestPlatform } from "./server";

/** The owner the helpers act as; tests never make it the grantee. */
export const TEST_OWNER = "test-owner";

/**
 * Grants `principal` the entitlements through the API, as an owner would. Tests that assert on
 * real-time or depth values use it rather than weakening their expectations.
 */
export async function grantEntitlements(
  t: TestPlatform,
  principal: string,
  entitlements: Entitlement[] = [Entitlement.REALTIME, Entitlement.DEPTH],
  expiresAt?: Date,
): Promise<void> {
  const token = await t.token(TEST_OWNER, [Role.OWNER]);
  for (const entitlement of entitlements) {
    const { body } = await t.gql(
      `mutation($p: String!, $e: Entitlement!, $x: DateTime) {
        grantEntitlement(principal: $p, entitlement: $e, expiresAt: $x) { id }
      }`,
      { token, variables: { p: principal, e: entitlement, x: expiresAt?.toISOString() ?? null } },
    );
    if (body.errors) throw new Error(`grant failed: ${JSON.stringify(body.errors)}`);
  }
}
