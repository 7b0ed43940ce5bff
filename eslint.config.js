import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * Imports only go down the data flow: shared/ (config, data, plan, model, math, protocol) below
 * everything; compute/ (the gradient engines) above shared/ and below both sides; worker/ and
 * coordinator/ at the top, neither importing the other; within coordinator/, the pure stages
 * (reduce/, optimize/) below everything else. A wrong arrow fails lint.
 */
const wrongWay = (folder, forbidden, why, extra = []) => ({
  files: [`${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((f) => ({ group: [`**/${f}/**`, `../${f}/*`, `../../${f}/*`], message: `${folder}/ must not import ${f}/: ${why}` })),
          ...extra,
        ],
      },
    ],
  },
});

/** The coordinator's pure stages (reduce, optimize) sit below its participants, callbacks, fit loop and job. */
const pureStage = (stage) =>
  wrongWay(`coordinator/${stage}`, ['participants', 'callbacks', 'fit', 'worker', 'compute'], 'the pure stages know no participant, callback or loop (they are tested with exact numbers)', [
    { group: ['../*.js'], message: `coordinator/${stage}/ must not import the coordinator's own files above it: the pure stages know no participant, callback or loop` },
  ]);

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'runs/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly', Buffer: 'readonly', URL: 'readonly', performance: 'readonly', SharedArrayBuffer: 'readonly', structuredClone: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' } },
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  wrongWay('shared', ['compute', 'worker', 'coordinator'], 'shared code sits below every other layer'),
  wrongWay('compute', ['worker', 'coordinator'], 'the engines are used by both sides and know neither'),
  wrongWay('worker', ['coordinator'], 'the two sides meet only through shared/ and compute/'),
  wrongWay('coordinator', ['worker'], 'the two sides meet only through shared/ and compute/'),
  pureStage('reduce'),
  pureStage('optimize'),
);
