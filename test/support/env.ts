export const ADMIN_ENV = "TICKGRAPH_TEST_ADMIN_URL";
export const TEMPLATE_ENV = "TICKGRAPH_TEST_TEMPLATE";

/** Databases of this run share a prefix (per jest process), so teardown drops exactly them. */
export function testDbPrefix(): string {
  const runId = process.env.TICKGRAPH_TEST_RUN ?? (process.env.TICKGRAPH_TEST_RUN = String(process.pid));
  return `tickgraph_test_${runId}_`;
}
