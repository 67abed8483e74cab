import { readFileSync } from "node:fs";
import { join } from "node:path";
import { buildTickgraphSchema, printTickgraphSchema } from "../../src/schema/schema";

test("schema.graphql is the schema the code builds (run `npm run schema:print` after changing it)", () => {
  const committed = readFileSync(join(__dirname, "..", "..", "schema.graphql"), "utf8");
  expect(printTickgraphSchema(buildTickgraphSchema())).toBe(committed);
});

test("governance directives are applied in the printed schema", () => {
  const sdl = printTickgraphSchema(buildTickgraphSchema());
  expect(sdl).toContain("directive @classified(level: Classification!) on OBJECT | FIELD_DEFINITION");
  expect(sdl).toMatch(/bid: Float @entitled\(to: DEPTH\)/);
  expect(sdl).toMatch(/source: String @classified\(level: CONFIDENTIAL\)/);
});
