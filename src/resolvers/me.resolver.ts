import { Ctx, Query, Resolver } from "type-graphql";
import type { Context } from "./context.type";
import { PrincipalView } from "./principal.type";

@Resolver()
export class MeResolver {
  @Query(() => PrincipalView, { description: "The caller: its id, roles and current entitlements." })
  me(@Ctx() ctx: Context): PrincipalView {
    return { id: ctx.principal.id, roles: ctx.principal.roles, entitlements: [] };
  }
}
