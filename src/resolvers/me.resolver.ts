import { Ctx, Query, Resolver } from "type-graphql";
import type { Context } from "./context.type";
import { PrincipalView } from "./principal.type";

@Resolver()
export class MeResolver {
  @Query(() => PrincipalView, { description: "The caller: its id, roles and current entitlements." })
  async me(@Ctx() ctx: Context): Promise<PrincipalView> {
    const entitlements = ctx.policy
      ? [...ctx.policy.entitlements]
      : (await ctx.governance.grants.snapshot(ctx.principal.id)).entitlements;
    return { id: ctx.principal.id, roles: ctx.principal.roles, entitlements: entitlements.sort() };
  }
}
