import { Field, ObjectType } from "type-graphql";
import { Entitlement, Role } from "./enums";

@ObjectType("Principal", { description: "The caller, as its token and its grants make it." })
export class PrincipalView {
  @Field()
  id: string;

  @Field(() => [Role])
  roles: Role[];

  @Field(() => [Entitlement])
  entitlements: Entitlement[];
}
