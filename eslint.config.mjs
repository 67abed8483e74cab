import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", ".tickgraph/", "coverage/", "test-artifacts/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.js", "**/*.cjs"],
    languageOptions: {
      sourceType: "commonjs",
      globals: {
        require: "readonly",
        module: "writable",
        process: "readonly",
        __dirname: "readonly",
        console: "readonly",
      },
    },
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    // Build configuration run by Node as ES modules (web/vite.config.mjs).
    files: ["**/*.mjs"],
    languageOptions: {
      sourceType: "module",
      globals: { URL: "readonly", process: "readonly", console: "readonly" },
    },
  },
  {
    // Type-aware rules: the application code gets typescript-eslint's type-checked set; the tests, the
    // promise rules (a test that forgets an await passes without checking anything).
    files: ["src/**/*.ts", "migrations/**/*.ts", "bench/**/*.ts", "test/**/*.ts"],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
  },
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({
    ...c,
    files: ["src/**/*.ts", "migrations/**/*.ts", "bench/**/*.ts"],
  })),
  {
    files: ["src/**/*.ts", "migrations/**/*.ts", "bench/**/*.ts"],
    // Hooks of async interfaces (Apollo plugins, DataLoader batches) read clearer as async methods.
    rules: { "@typescript-eslint/require-await": "off" },
  },
  {
    files: ["test/**/*.ts"],
    plugins: { "@typescript-eslint": tseslint.plugin },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": "error",
      "@typescript-eslint/await-thenable": "error",
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
);
