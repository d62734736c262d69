/* global module */
/**
 * The layers of src/ run one way (see README, "Layers"): `npm run deps` fails on an import cycle or on
 * an import from the bottom layer (src/util/, src/errors.ts) into anything above it.
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: modules that need each other belong in one module, or the shared part below both.',
      from: {},
      to: {circular: true},
    },
    {
      name: 'util-imports-nothing-above',
      severity: 'error',
      comment: 'src/util/ and src/errors.ts are the bottom layer: they import only each other and node/npm modules.',
      from: {path: '^src/(util/|errors\\.ts$)'},
      to: {path: '^src/', pathNot: '^src/(util/|errors\\.ts$)'},
    },
  ],
  options: {
    doNotFollow: {path: 'node_modules'},
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
  },
}
