// Lint of the library's own JavaScript (the hot paths kept in JS: records, sync records,
// conversion), beside its type check (tsconfig.src.json): ESLint's recommended rules plus a few
// that catch the slips a type check does not. Run from the repository's root (run.sh does).
import js from "@eslint/js";

export default [
  {
    files: ["src/**/*.js"],
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: {
        indexedDB: "readonly",
        IDBKeyRange: "readonly",
        structuredClone: "readonly",
        TextEncoder: "readonly",
        console: "readonly",
      },
    },
    rules: {
      ...js.configs.recommended.rules,
      eqeqeq: ["error", "always"],
      "no-var": "error",
      "prefer-const": "error",
      "no-shadow": "error",
      "no-unused-vars": ["error", { args: "after-used" }],
    },
  },
];
