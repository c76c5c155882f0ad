// Lint rules: typescript-eslint's recommended set over every TypeScript file; formatting is Prettier's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'e2e-artifacts/', '.test-tmp/', '.cache/', 'backends/assembly/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  {
    // Optional native and GPU packages are loaded by name at run time, only when present.
    files: ['backends/devices.ts', 'backends/wasm-threads.ts'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
