// The npm registry this project is built against serves only the linux-x64 builds of @napi-rs/webcodecs, so
// `npm install` writes a lock without the other platforms' optional packages and `npm ci` then refuses it.
// This adds lock entries (optional, with os/cpu) for those platforms; npm skips them on non-matching machines.
// Run after any `npm install` that rewrites package-lock.json.
import { readFileSync, writeFileSync } from 'node:fs';

const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
const platforms = {
  'darwin-arm64': ['darwin', 'arm64'],
  'darwin-x64': ['darwin', 'x64'],
  'linux-arm-gnueabihf': ['linux', 'arm'],
  'linux-arm64-gnu': ['linux', 'arm64'],
  'linux-arm64-musl': ['linux', 'arm64'],
  'win32-arm64-msvc': ['win32', 'arm64'],
  'win32-x64-msvc': ['win32', 'x64'],
};
const parent = lock.packages['node_modules/@napi-rs/webcodecs'];
if (parent) {
  for (const [suffix, [os, cpu]] of Object.entries(platforms)) {
    const key = `node_modules/@napi-rs/webcodecs-${suffix}`;
    lock.packages[key] ??= {
      version: parent.version,
      cpu: [cpu],
      license: 'MIT',
      optional: true,
      os: [os],
      engines: { node: '>= 10' },
    };
  }
  writeFileSync('package-lock.json', JSON.stringify(lock, null, 2) + '\n');
}
