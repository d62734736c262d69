/* global module */
/**
 * The layers of src/ run one way (README, "Layers"): `npm run deps` fails on an import cycle, and on
 * an import from a layer into one above it. Folders on one line of LAYERS are one layer.
 * @type {import('dependency-cruiser').IConfiguration}
 */
const LAYERS = [
  ['util', 'errors.ts'],
  ['manifest'],
  ['render'],
  ['docker'],
  ['gateway'],
  ['certs'],
  ['project'],
  ['verify', 'top', 'export'],
  ['hooks', 'commands'],
]

const pattern = (names) => `^src/(${names.map((name) => name.replace('.', '\\.')).join('|')})(/|$)`

const upward = LAYERS.slice(0, -1).map((layer, index) => ({
  name: `${layer[0]}-imports-nothing-above`,
  severity: 'error',
  comment: `src/${layer.join(', src/')} may import only from its own layer and the ones below it.`,
  from: {path: pattern(layer)},
  to: {path: pattern(LAYERS.slice(index + 1).flat())},
}))

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: modules that need each other belong in one module, or the shared part below both.',
      from: {},
      to: {circular: true},
    },
    ...upward,
  ],
  options: {
    doNotFollow: {path: 'node_modules'},
    tsPreCompilationDeps: true,
    tsConfig: {fileName: 'tsconfig.json'},
  },
}
