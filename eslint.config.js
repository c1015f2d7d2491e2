import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Who may import whom (docs/ARCHITECTURE.md): per src/ folder, the folders it must not import. Lower
// layers never import higher ones; the agent gets its engines from src/wiring.ts, never by import.
const SRC = ['api', 'pki', 'kube', 'authn', 'authz', 'agent', 'engines', 'aws', 'operator', 'cli', 'wiring'];
const except = (...allowed) => SRC.filter((f) => !allowed.includes(f));
const LAYERS = {
  '{errors,log,build-info,on-first-use}.ts': except(),
  api: except(),
  pki: except(),
  kube: except('api'),
  authn: except('api', 'kube', 'pki'),
  authz: except('api', 'authn', 'kube'),
  agent: except('api', 'authn', 'authz', 'kube', 'pki'),
  'engines/postgres': [...except('api', 'authn', 'authz', 'agent'), 'engines/redis'],
  'engines/redis': [...except('api', 'authn', 'authz', 'agent'), 'engines/postgres'],
  aws: except('api'),
  operator: except('api', 'kube', 'aws', 'authn', 'authz', 'pki'),
};
// The AWS credential providers implement the agent's provider contract, and know nothing else of it.
const ALLOWED_FILES = { aws: ['!**/agent/credentials.js'] };
// An engine reaches the other as `../redis/...`: match the engine folder by its own name.
const pattern = (folder) =>
  folder === 'wiring' ? '**/wiring.js' : `**/${folder.replace(/^engines\//, '')}/**`;
const layerRules = Object.entries(LAYERS).map(([folder, banned]) => ({
  files: [folder.endsWith('.ts') ? `src/${folder}` : `src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          {
            group: [...banned.filter((b) => b !== folder).map(pattern), ...(ALLOWED_FILES[folder] ?? [])],
            message: `src/${folder} may not import this: see "Who may import whom" in docs/ARCHITECTURE.md`,
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'charts/**', 'crds/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      'no-console': ['error'],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...layerRules,
  // Tests, benches and scripts may print; the product logs through pino.
  { files: ['test/**', 'bench/**', 'scripts/**'], rules: { 'no-console': 'off' } },
);
