import { registerEnumType } from "type-graphql";
import { Classification, Entitlement, Role } from "../policy/principal";

export enum SortOrder {
  ASC = "ASC",
  DESC = "DESC",
}

registerEnumType(Role, { name: "Role" });
registerEnumType(Entitlement, { name: "Entitlement" });
registerEnumType(Classification, { name: "Classification" });
registerEnumType(SortOrder, { name: "SortOrder" });

export { Classification, Entitlement, Role };
